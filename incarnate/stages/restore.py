"""Restore: only the data services are started, and each artifact of the snapshot is loaded into its database or
volume if that is empty, verified chunk by chunk on the way; a failed load leaves the target empty again."""

from incarnate import datasources
from incarnate.backup_format import Artifact, Snapshot, restore_artifact
from incarnate.compose import ComposeProject
from incarnate.datasources import DataSource
from incarnate.datasources.volume import pull_toolbox
from incarnate.pinned import PinnedStack
from incarnate.releases import customer_releases
from incarnate.stores import Store
from incarnate.stores.locking import shared_lock

NAME = "restore"


def load_if_empty(target: DataSource, store: Store, snapshot: Snapshot, artifact: Artifact) -> str:
    """Load an artifact into an empty target; on any failure empty the target again, so nothing is half-loaded."""
    if not target.is_empty():
        return "kept (not empty)"
    try:
        restore_artifact(store, snapshot, artifact, target.load)
    except BaseException:
        target.reset()
        raise
    return "loaded"


def kept_all(outcome: dict[str, str]) -> bool:
    """Whether no artifact was loaded: every target held data, which the deployment kept."""
    return bool(outcome) and not any(result == "loaded" for result in outcome.values())


def describe_origin(snapshot_id: str, outcome: dict[str, str]) -> str:
    """Where the stack's data came from, as an operator must read it: never "restored" when nothing was loaded."""
    if kept_all(outcome):
        return f"kept existing data; snapshot {snapshot_id} not loaded"
    kept = [artifact for artifact, result in outcome.items() if result != "loaded"]
    return f"restored from {snapshot_id}" + (f" (kept existing {', '.join(kept)})" if kept else "")


def run(project: ComposeProject, pinned: PinnedStack, store: Store, snapshot: Snapshot) -> dict[str, str]:
    """What became of each artifact: "loaded", or "kept (not empty)"."""
    config, release, host = pinned.customer.config, pinned.release, project.host
    compose = customer_releases(store).read_file(config.product, config.release, "compose.yaml")
    project.write_files(compose, pinned.compose_variables())
    project.pull(release.data_services)
    pull_toolbox(host, pinned.registry)
    project.up(release.data_services)
    sources = datasources.for_release(project, release, pinned.registry)
    with shared_lock(store, f"restore of snapshot {snapshot.id} into stack {project.name}", say=print):
        return {artifact.name: load_if_empty(source, store, snapshot, artifact)
                for artifact, source in datasources.for_artifacts(sources, snapshot.manifest.artifacts, project,
                                                                 pinned.registry, f"snapshot {snapshot.id}")}
