"""What every flow shares: the prologue (load config, one run per stack, create host), the restore-start-migrate
sequence of the deploying flows, and the incarnation record."""

import getpass
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from prefect import get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from blocks import resolve
from flows.report import StageReport, artifact_key, publish_backup
from incarnate import incarnations, settings
from incarnate.backup_format import Snapshot
from incarnate.compose import ComposeProject
from incarnate.config import StackConfig
from incarnate.errors import IncarnateError, StageError
from incarnate.host import Host
from incarnate.incarnations import Incarnation
from incarnate.pinned import PinnedStack
from incarnate.readiness import Readiness
from incarnate.releases import ReleaseDescriptor, ReleaseStore
from incarnate.stages.backup import BackupResult
from incarnate.stages.restore import describe_origin, kept_all, runs_snapshot_data
from incarnate.state import StackState, read_state
from incarnate.stores import Store
from tasks.backup import backup
from tasks.chores import stop_app
from tasks.create_host import create_host
from tasks.load_config import load_config
from tasks.migrate import migrate
from tasks.restore import restore
from tasks.start import start

# The shortest lease Prefect's server takes (it refuses less than 60 s): a killed run frees its stack within it.
LOCK_LEASE_SECONDS = 60


def _ensure_limit(name: str) -> None:
    """Global concurrency limits do nothing unless they exist: create the stack's with one slot."""
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            except ObjectAlreadyExists:
                pass  # another run created it first


@contextmanager
def stack_lock(stack: str) -> Iterator[None]:
    """Two runs on one stack never interleave: the second waits, then fails with a clear message. A run renews its
    hold on the stack while it lives; one that was killed frees it within the lease."""
    name = f"stack-{stack}"
    wait_seconds = settings.lock_wait_seconds()
    _ensure_limit(name)
    acquired = False
    try:
        with concurrency(name, occupy=1, timeout_seconds=wait_seconds, lease_duration=LOCK_LEASE_SECONDS, strict=True):
            acquired = True
            yield
    except TimeoutError:
        if acquired:
            raise
        raise StageError(
            f"stack {stack} is busy: another run holds concurrency limit {name}; gave up after "
            f"{wait_seconds:.0f} s. Nothing was changed; run again when it has finished."
        ) from None


def triggered_by() -> str:
    """Who or what started the run: set INCARNATE_TRIGGERED_BY in CI, else the deployment or the user."""
    from prefect.runtime import deployment

    return os.environ.get("INCARNATE_TRIGGERED_BY") or (
        f"deployment {deployment.name}" if deployment.name else f"{getpass.getuser()}@{socket.gethostname()}"
    )


def record_incarnation(report: StageReport, incarnation: Incarnation, repo: str) -> Incarnation:
    """Tag the customer repo and publish the record; a repo that refuses the tag is reported, not fatal."""
    incarnation = incarnation.model_copy(update={"seconds": report.durations()})
    try:
        incarnation = incarnation.model_copy(update={"tag": incarnations.record(repo, incarnation)})
    except subprocess.CalledProcessError as error:
        get_run_logger().warning(f"incarnation not recorded in customer repo {repo}: {error.stderr.strip()[-300:]}")
    rows = [{"field": key, "value": str(value)} for key, value in incarnation.model_dump(exclude={"seconds"}).items()]
    rows += [
        {"field": f"seconds: {stage}", "value": f"{seconds:.1f}"} for stage, seconds in incarnation.seconds.items()
    ]
    create_table_artifact(
        key=artifact_key("incarnation", incarnation.stack),
        table=rows,
        description=f"{incarnation.flow} of {incarnation.stack}: {incarnation.result}",
    )
    return incarnation


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def incarnation(
    flow: str,
    pinned: PinnedStack,
    host: Host,
    started_at: str,
    result: str,
    restored_from: str | None = None,
    backup: str | None = None,
    error: BaseException | None = None,
    kept_data: bool = False,
) -> Incarnation:
    customer = pinned.customer
    return Incarnation(
        stack=pinned.stack,
        flow=flow,
        commit=customer.commit,
        ref=customer.ref,
        release=pinned.release.release,
        restored_from=restored_from,
        kept_data=kept_data,
        backup=backup,
        host=host.name,
        triggered_by=triggered_by(),
        result=result,
        error=str(error) if error else None,
        started_at=started_at,
    )


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
        with report.stage("create host"):
            project = create_host(host, config.stack, config.host if prepare else None)
        yield OnHost(config, store, host, project, read_state(project))


@contextmanager
def deployment_on_host(
    report: StageReport, repo: str, ref: str, docker_host: str | None, releases: ReleaseStore
) -> Iterator[tuple[PinnedStack, OnHost]]:
    """The prologue of a deploying flow: load config, then the stack on its host. A deployment onto data of a
    newer schema than its release is refused here, before anything changes."""
    with report.stage("load config"):
        pinned = load_config(repo, ref, releases)
    report.stack = pinned.stack
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
        kind = type(failure) if isinstance(failure, IncarnateError) else StageError
        raise kind(
            f"{what} failed before it changed the stack ({failure}); {runs} as before and was not changed."
        ) from failure


@dataclass(frozen=True)
class BroughtUp:
    outcome: dict[str, str]  # per artifact: loaded, or kept (not empty)
    readiness: Readiness  # what the stack reported once it ran the release

    def origin(self, snapshot_id: str) -> str:
        return describe_origin(snapshot_id, self.outcome)


def bring_up(
    report: StageReport, project: ComposeProject, pinned: PinnedStack, store: Store, snapshot: Snapshot
) -> BroughtUp:
    """Restore, start, migrate: the stages every deploying flow runs in this order, each reported."""
    with report.stage("restore") as row:
        outcome = restore(project, pinned, store, snapshot)
        row["detail"] = ", ".join(f"{artifact}: {result}" for artifact, result in outcome.items())
    with report.stage("start") as row:
        if removed := start(project):
            row["detail"] = f"{', '.join(removed)} no longer activated: container removed, volumes kept"
    with report.stage("migrate") as row:
        readiness = migrate(project, pinned, snapshot, kept_all(outcome))
        row["detail"] = readiness.describe()
    return BroughtUp(outcome, readiness)


@dataclass(frozen=True)
class Closing:
    snapshot_id: str  # the deployment's backup: a new snapshot, or the restored one when the data is exactly its
    result: BackupResult | None  # None: no backup ran


def closing_backup(
    report: StageReport,
    project: ComposeProject,
    pinned: PinnedStack,
    store: Store,
    source: Snapshot,
    brought: BroughtUp,
) -> Closing:
    """The backup a deployment ends with, unless the stack runs exactly the data it restored (every artifact loaded
    from `source`, no migration): then `source` already is that backup, and re-reading it all would store nothing."""
    with report.stage("backup") as row:
        if runs_snapshot_data(source, brought.outcome, pinned.release):
            row["detail"] = (
                f"not needed: the stack runs the data of {source.id} unchanged (schema "
                f"{source.manifest.schema_version}, nothing kept, no migration); recorded as this deployment's backup"
            )
            print(f"stack {pinned.stack}: closing backup {row['detail']}")
            return Closing(source.id, None)
        after = backup(project, store, pinned.customer.config.backup)
        row["detail"] = f"{after.snapshot.id}: {after.stats.new_bytes:,} new bytes; {after.protection}"
    publish_backup(pinned.stack, after)
    return Closing(after.snapshot.id, after)
