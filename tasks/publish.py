"""The steps only publishing a release runs, as tasks: check the release folder, wait until the scratch stack runs
the release, back it up as the release's vanilla backup (through the backup stage), write the release."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prefect import task

from incarnate import publish, settings, stages
from incarnate.backup_format import Snapshot
from incarnate.compose import ComposeProject
from incarnate.host import Host
from incarnate.pinned import PinnedStack
from incarnate.readiness import Readiness, wait_until_ready
from incarnate.registry import Registry
from incarnate.releases import Publication, ReleaseDescriptor, ReleaseStore
from incarnate.stages import backup as backup_stage
from incarnate.stages import restore as restore_stage
from tasks import NETWORK_RETRIES, STAGE, shows_progress, transient


@dataclass(frozen=True)
class CheckedRelease:
    folder: publish.ReleaseFolder
    digests: dict[str, str]  # repository:tag -> digest in the registry
    published: Publication | None  # the store has this very content already
    exceptions: list[str]  # to the compose policy, as release.yaml names them with their reasons


@task(name="check release", retry_condition_fn=transient, **NETWORK_RETRIES, **STAGE)
def check_release(folder: publish.ReleaseFolder, releases: ReleaseStore, registry: Registry) -> CheckedRelease:
    """compose.yaml through Compose (on this machine: no engine is needed) and against release.yaml, the images in
    the registry, and what the store holds of the same release: refused (bad input) on any disagreement."""
    exceptions = publish.check_compose(folder, Host(), registry.address)
    digests = publish.image_digests(folder, registry)
    return CheckedRelease(folder, digests, publish.refuse_changed(releases, folder, digests), exceptions)


@task(name=stages.migrate.NAME, **STAGE)
def wait_ready(project: ComposeProject, release: ReleaseDescriptor, http_port: int) -> Readiness:
    """The release's own containers migrate the empty data on start; wait until it reports its schema version."""
    return wait_until_ready(project, release, http_port, settings.ready_seconds())


@task(name=stages.backup.NAME, retry_condition_fn=transient, **NETWORK_RETRIES, **STAGE)
@shows_progress
def back_up_vanilla(
    project: ComposeProject, release: ReleaseDescriptor, releases: ReleaseStore, prefix: str
) -> backup_stage.BackupResult:
    """The scratch stack's data through the backup stage every stack uses, as the release's vanilla backup."""
    lock_days, lock_mode = settings.release_lock()
    return backup_stage.back_up(
        project,
        release,
        releases.store,
        prefix,
        lock_days,
        lock_mode,
        stack=release.product,
        schema_version=release.schema_version,
        config_commit=None,
        origin="vanilla",
    )


@task(name=stages.restore.NAME, **STAGE)
@shows_progress
def restore_vanilla(
    project: ComposeProject, proof: PinnedStack, compose: bytes, releases: ReleaseStore, snapshot: Snapshot
) -> dict[str, str]:
    """The vanilla backup into the proof stack through the restore every customer's install runs, with a new
    customer's secrets and the compose.yaml being published."""
    return restore_stage.load(project, proof, compose, publish.proof_secrets(proof.release), releases.store, snapshot)


@task(name="write release", retry_condition_fn=transient, **NETWORK_RETRIES, **STAGE)
def write_release(releases: ReleaseStore, record: Publication, files: dict[str, bytes]) -> None:
    """The release files, then the publication record, create-only: the record is what makes a release published."""
    lock_days, lock_mode = settings.release_lock()
    until = datetime.now(UTC) + timedelta(days=lock_days) if lock_days else None
    releases.add(record.product, record.release, files, until, lock_mode)
    releases.record(record, until, lock_mode)
