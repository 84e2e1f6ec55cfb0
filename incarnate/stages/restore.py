"""Restore: only the data services are started, and each artifact of the snapshot is loaded into its database or
volume if that is empty, verified chunk by chunk on the way; a failed load leaves the target empty again."""

from incarnate import datasources
from incarnate.backup_format import Artifact, Snapshot, restore_artifact
from incarnate.compose import ComposeProject
from incarnate.datasources import DataSource
from incarnate.datasources.volume import pull_toolbox
from incarnate.pinned import PinnedStack
from incarnate.releases import ReleaseDescriptor, customer_releases
from incarnate.secrets import Vault, stack_secrets
from incarnate.state import read_state
from incarnate.stores import Store
from incarnate.stores.locking import shared_lock

NAME = "restore"
LOADED, KEPT, ASIDE = "loaded", "kept (not empty)", "kept aside (service not activated)"


def load_if_empty(target: DataSource, store: Store, snapshot: Snapshot, artifact: Artifact) -> str:
    """Load an artifact into an empty target; on any failure empty the target again, so nothing is half-loaded."""
    if not target.is_empty():
        return KEPT
    try:
        restore_artifact(store, snapshot, artifact, target.load)
    except BaseException:
        target.reset()
        raise
    return LOADED


def kept_all(outcome: dict[str, str]) -> bool:
    """Whether no artifact was loaded: every target held data, which the deployment kept."""
    return bool(outcome) and not any(result == LOADED for result in outcome.values())


def runs_snapshot_data(snapshot: Snapshot, outcome: dict[str, str], release: ReleaseDescriptor) -> bool:
    """Whether the stack's data, once restored, started and migrated, is exactly the snapshot's: every artifact the
    release backs up was loaded from it (none kept, none started empty), and the release expects the snapshot's
    schema, so no migration changed it. Then a closing backup would re-read it all and store nothing new."""
    loaded = {artifact for artifact, result in outcome.items() if result == LOADED}
    return loaded == release.artifact_names and snapshot.manifest.schema_version == release.schema_version


def describe_origin(snapshot_id: str, outcome: dict[str, str]) -> str:
    """Where the stack's data came from, as an operator must read it: never "restored" when nothing was loaded."""
    kept = [artifact for artifact, result in outcome.items() if result == KEPT]
    aside = [artifact for artifact, result in outcome.items() if result == ASIDE]
    notes = [*([f"kept existing {', '.join(kept)}"] if kept else []),
             *([f"not loaded, their services not activated: {', '.join(aside)}"] if aside else [])]
    if kept_all(outcome):
        return f"kept existing data; snapshot {snapshot_id} not loaded" + (f" ({notes[-1]})" if aside else "")
    return f"restored from {snapshot_id}" + (f" ({'; '.join(notes)})" if notes else "")


def existing_data(project: ComposeProject, snapshot: Snapshot) -> str | None:
    """What says the stack has data of its own (whose secrets must come back), None for a first installation."""
    if snapshot.manifest.origin == "backup":
        return f"snapshot {snapshot.id}"
    return f"it is deployed on host {project.host.name}" if read_state(project) else None


def run(project: ComposeProject, pinned: PinnedStack, store: Store, snapshot: Snapshot, vault: Vault) -> dict[str, str]:
    """What became of each artifact: "loaded", or "kept (not empty)"."""
    config, release, host = pinned.customer.config, pinned.release, project.host
    compose = customer_releases(store).read_file(config.product, config.release, "compose.yaml")
    secrets = stack_secrets(vault, pinned.secrets_stack, release.secrets, existing_data(project, snapshot))
    project.write_files(compose, pinned.compose_variables(secrets), release.size_overrides(pinned.size))
    if pinned.login:
        pinned.login.login(host)
    project.pull(release.data_services)
    pull_toolbox(host, pinned.registry)
    project.up(release.data_services)
    sources = datasources.for_release(project, release, pinned.registry)
    artifacts = [artifact for artifact in snapshot.manifest.artifacts if artifact.name not in release.dormant_artifacts]
    # One after the other: loading at once was measured no faster on two cores (the database's load and the
    # stream's decryption compete for them: recovery of 1 GB + 1 GB 52.3 s at once, 53.2 s in turn).
    with shared_lock(store, f"restore of snapshot {snapshot.id} into stack {project.name}", say=print):
        outcome = {artifact.name: load_if_empty(source, store, snapshot, artifact)
                   for artifact, source in datasources.for_artifacts(sources, artifacts, project, pinned.registry,
                                                                    f"snapshot {snapshot.id}")}
    # An optional service the stack no longer activates: its data stays where it is, and in this snapshot.
    return outcome | {artifact.name: ASIDE for artifact in snapshot.manifest.artifacts
                      if artifact.name in release.dormant_artifacts}
