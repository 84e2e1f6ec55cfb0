"""What every flow starts with: the stack held (one run per stack), its host created, what runs there read; for a
deploying flow its config loaded first; and the steps before the first change, which undo themselves on failure."""

from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass

from blocks import resolve
from flows.report import StageReport
from flows.stack_lock import stack_lock
from incarnate import product_settings, stages
from incarnate.compose import ComposeProject
from incarnate.config import StackConfig
from incarnate.errors import kind_of
from incarnate.host import Host
from incarnate.pinned import PinnedStack
from incarnate.releases import ReleaseDescriptor, ReleaseStore
from incarnate.state import StackState, read_state
from incarnate.stores import Store
from tasks.chores import stop_app
from tasks.create_host import create_host
from tasks.fetch_backup import record_release_copy
from tasks.load_config import load_config
from tasks.start import start


@dataclass(frozen=True)
class OnHost:
    """What a flow holds once the stack is locked and its host created."""

    config: StackConfig
    store: Store
    host: Host
    project: ComposeProject
    running: StackState | None  # what the host says runs now, None if nothing


@contextmanager
def stack_on_host(
    report: StageReport,
    config: StackConfig,
    docker_host: str | None,
    *,
    prepare: bool = True,
    store: Store | None = None,
) -> Iterator[OnHost]:
    """Every flow's prologue once its config is loaded: hold the stack (one run per stack), create its host
    (with `prepare`, apply stack.yaml's host settings), read what runs there; the host is closed at the end."""
    store = store or resolve.backup_store(config)
    host = resolve.host(docker_host)
    with stack_lock(config.stack), closing(host):
        with report.stage(stages.create_host.NAME):
            project = create_host(host, config.stack, config.host if prepare else None)
        running = read_state(project)
        if running is not None:
            record_release_copy(store, running.product, running.release)
        yield OnHost(config, store, host, project, running)


@contextmanager
def deployment_on_host(
    report: StageReport, repo: str, ref: str, docker_host: str | None, releases: ReleaseStore
) -> Iterator[tuple[PinnedStack, OnHost]]:
    """The prologue of a deploying flow: load config, then the stack on its host. A deployment onto data of a
    newer schema than its release is refused here, before anything changes."""
    with report.stage(stages.load_config.NAME):
        pinned = load_config(repo, ref, releases)
        if product_settings.secret_names(pinned.release.settings):  # a required one missing: refused here
            kept = resolve.stack_secrets().load(pinned.secrets_stack) or {}
            product_settings.missing_secrets(pinned.release.settings, kept, pinned.stack)
    report.about(pinned.stack, pinned.release.product, pinned.release.release)
    with stack_on_host(report, pinned.customer.config, docker_host) as held:
        if held.running:
            pinned.refuse_downgrade(held.running.schema_version, f"the running stack (release {held.running.release})")
        yield pinned, held


@contextmanager
def before_any_change(
    report: StageReport, project: ComposeProject, what: str, runs: str
) -> Iterator[Callable[[ReleaseDescriptor], None]]:
    """The steps of a flow before it changes the stack's data: it yields `stop`, which stops the app services of
    a release (so the backup that follows holds every write the app acknowledged). Any failure among these
    steps starts what was stopped again and is raised saying the stack was not changed."""
    stopped: list[str] = []

    def stop(release: ReleaseDescriptor) -> None:
        with report.stage("stop app") as row:
            stopped.extend(stop_app(project, release))
            row["detail"] = ", ".join(stopped)

    try:
        yield stop
    except Exception as failure:
        if stopped:
            with report.stage("restart app") as row:
                start(project)
                row["detail"] = ", ".join(stopped)
        kind = kind_of(failure)
        raise kind(
            f"{what} failed before it changed the stack ({failure}); {runs} as before and was not changed."
        ) from failure
