"""Publish a release: the vendor's CI hands over a folder (release.yaml, compose.yaml) whose images it pushed; the
release runs in a scratch stack on empty volumes until it reports its schema version (its own migrations ran),
is backed up as the release's vanilla backup, and everything is written create-only into the release store.

Publishing the same content again changes nothing; other content under a published release is refused."""

import time
from contextlib import closing
from pathlib import Path

from prefect import flow, get_run_logger

from blocks import resolve
from flows.deploy import bring_up, run_hook_points
from flows.report import StageReport, publish_backup
from flows.stack_lock import stack_lock
from incarnate import publish, stages
from incarnate.datasources.helper import ensure_helper
from incarnate.errors import IncarnateError, StageError
from incarnate.host import Host, free_port
from incarnate.registry import Registry
from incarnate.releases import Publication, ReleaseStore, digest_overrides
from incarnate.stages.restore import Recovery
from tasks.chores import tear_down
from tasks.create_host import create_host
from tasks.publish import CheckedRelease, back_up_vanilla, check_release, restore_vanilla, wait_ready, write_release
from tasks.start import start


@flow(name="publish-release", log_prints=True)
def publish_release(folder: str, docker_host: str | None = None) -> dict:
    """Publish the release in `folder` (release.yaml and compose.yaml) into the release store (INCARNATE_RELEASES).

    Args:
        folder: path of the release folder on the machine that runs the flow.
        docker_host: the engine the scratch stack runs on: empty for this machine, ssh://USER@HOST[:PORT],
        incarnate-ssh-host/NAME, or a Docker engine address.
    """
    began, report = time.monotonic(), StageReport("publish-release")
    registry, releases = resolve.registry(None), resolve.release_store()
    release_folder = publish.read_release_folder(Path(folder).absolute())
    report.stack = f"{release_folder.descriptor.product}-{release_folder.descriptor.release}"
    # One publication of a release at a time: a second one waits, then finds it published.
    with stack_lock(publish.scratch_name(release_folder.descriptor)):
        with report.stage("check release") as row:
            checked = check_release(release_folder, releases, registry)
            row["detail"] = (
                f"{release_folder.name}: files agree; images in {registry.address}: {', '.join(checked.digests)}; "
                f"exceptions to the compose policy: {'; '.join(checked.exceptions) or 'none'}"
            )
            if warnings := warn(publish.shared_secret_warnings(release_folder)):
                row["detail"] += f"; {warnings}"
        if checked.published:
            print(
                f"{release_folder.name} is already published in {releases.location} with this content "
                f"(since {checked.published.published_at}); nothing to do"
            )
            report.publish()
            return {"result": "already published", **checked.published.model_dump()}
        record = publish_checked(report, checked, releases, registry, docker_host)
    report.publish()
    print(
        f"published {release_folder.name} (schema {record.schema_version}) into {releases.location} in "
        f"{time.monotonic() - began:.1f} s; vanilla backup {record.vanilla_bytes:,} bytes"
    )
    return {"result": "published", **record.model_dump()}


def warn(warnings: list[str]) -> str:
    """Each of the linter's findings as a warning in the run log; all of them on one line, for the report."""
    for warning in warnings:
        get_run_logger().warning(f"warning: {warning}")
    return "; ".join(f"warning: {warning}" for warning in warnings)


def publish_checked(
    report: StageReport, checked: CheckedRelease, releases: ReleaseStore, registry: Registry, docker_host: str | None
) -> Publication:
    """The vanilla backup (made, or found from an interrupted publication of this content), then the release files
    and the record that makes the release published."""
    descriptor = checked.folder.descriptor
    prefix = releases.vanilla_prefix(
        descriptor.product, descriptor.release, publish.content_digest(checked.folder, checked.digests)
    )
    interrupted = releases.snapshot_at(prefix)
    with closing(resolve.host(docker_host)) as host:
        if interrupted:
            vanilla_bytes = interrupted.manifest.size()
            print(
                f"{checked.folder.name}: the vanilla backup of an interrupted publication of this content is there; "
                f"using it"
            )
        else:
            vanilla_bytes = run_and_back_up(report, host, checked, releases, registry, prefix)
        prove_vanilla(report, host, checked, releases, registry, prefix)
    with report.stage("write release") as row:
        record = publish.publication(checked.folder, checked.digests, prefix, vanilla_bytes)
        write_release(releases, record, checked.folder.files)
        row["detail"] = f"{', '.join(checked.folder.files)} and publication.json into {releases.location}"
    return record


def prove_vanilla(
    report: StageReport, host: Host, checked: CheckedRelease, releases: ReleaseStore, registry: Registry, prefix: str
) -> None:
    """The vanilla backup restored into a second scratch stack as a new customer's install restores it (fresh
    secrets, the release's hooks), until the release is ready with the rows its backup counted; a vanilla backup that
    does not restore is not published (StageError naming it and why), and its scratch stack goes either way."""
    folder, port = checked.folder, free_port()
    proof = publish.proof_stack(folder, registry.address, checked.digests, port)
    snapshot = releases.snapshot_at(prefix)
    with report.stage(f"{stages.create_host.NAME} (proof)"):
        project = create_host(host, proof.stack)
        tear_down(project)  # a killed publication's proof would keep its data as "not empty"
    try:
        registry.login(host)
        bring_up(
            report,
            project,
            proof,
            releases.store,
            snapshot,
            check_rows=True,
            restored=lambda: restore_vanilla(project, proof, folder.files["compose.yaml"], releases, snapshot),
            suffix=" (proof)",
            recovery=Recovery(apply_logs=False, record=False),
        )
    except IncarnateError as error:
        raise StageError(
            f"{folder.name}: its vanilla backup {prefix} in {releases.location} does not restore as a new customer's "
            f"install would ({error}); the release is not published. Fix the release (or its hooks) and publish "
            f"again."
        ) from error
    finally:
        with report.stage("tear down (proof)"):
            tear_down(project)


def run_and_back_up(
    report: StageReport, host: Host, checked: CheckedRelease, releases: ReleaseStore, registry: Registry, prefix: str
) -> int:
    """Run the release on empty volumes in a scratch stack, back it up at `prefix`, remove the stack; its size."""
    descriptor, port = checked.folder.descriptor, free_port()
    scratch = publish.scratch_name(descriptor)
    with report.stage(stages.create_host.NAME):
        project = create_host(host, scratch)
    with report.stage("clear scratch") as row:
        if stale := tear_down(project):  # a killed publication's volumes would not be empty
            row["detail"] = f"removed the stale scratch stack {scratch} ({', '.join(stale)})"
    try:
        with report.stage(stages.start.NAME) as row:
            project.write_files(  # by digest, as every customer will run it
                checked.folder.files["compose.yaml"],
                publish.scratch_variables(descriptor, registry.address, str(port)),
                images=digest_overrides(descriptor, registry.address, checked.digests),
            )
            registry.login(host)
            ensure_helper(host)
            start(project)
            row["detail"] = f"scratch stack {scratch} on host {host.name}, empty volumes"
        run_hook_points(report.stage, project, descriptor, ["first_install"])
        with report.stage(stages.migrate.NAME) as row:
            row["detail"] = wait_ready(project, descriptor, port).describe()
        with report.stage(stages.backup.NAME) as row:
            result = back_up_vanilla(project, descriptor, releases, prefix)
            row["detail"] = (
                f"vanilla backup {result.stats.raw_bytes:,} bytes, {result.stats.new_bytes:,} new bytes stored; "
                f"{publish.recovery_point(project, descriptor)}"
            )
        with report.stage("stop") as row:
            row["detail"] = warn(publish.slow_stop_warnings(project, descriptor)) or "every service stopped on SIGTERM"
    finally:
        with report.stage("tear down"):
            tear_down(project)
    publish_backup(report.stack, result)
    return result.stats.raw_bytes
