"""Restore: only the data services are started, and the artifacts of the snapshot are loaded at once, each into its
database or volume if that is empty, verified chunk by chunk on the way; a failed load stops the others and leaves
every target this restore loaded empty again."""

import threading

from pydantic import SecretStr

from incarnate import datasources, settings
from incarnate.backup_format import Artifact, Snapshot, restore_artifact
from incarnate.compose import ComposeProject
from incarnate.datasources import DataSource
from incarnate.datasources.helper import ensure_helper
from incarnate.errors import UnrecordedData
from incarnate.pinned import PinnedStack
from incarnate.releases import ReleaseDescriptor, customer_releases
from incarnate.secrets import Vault, secret_settings, stack_secrets
from incarnate.state import read_state
from incarnate.stores import Store
from incarnate.stores.locking import shared_lock
from incarnate.stores.secret_copies import StoreSecrets

NAME = "restore"
LOADED, KEPT, ASIDE = "loaded", "kept (not empty)", "kept aside (service not activated)"


def load_if_empty(
    target: DataSource, store: Store, snapshot: Snapshot, artifact: Artifact, stop: threading.Event | None = None
) -> str:
    """Load an artifact into an empty target; on any failure (or once `stop` is set) empty the target again, so
    nothing is half-loaded."""
    if not target.is_empty():
        return KEPT
    try:
        restore_artifact(store, snapshot, artifact, target.load, stop)
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
    notes = [
        *([f"kept existing {', '.join(kept)}"] if kept else []),
        *([f"not loaded, their services not activated: {', '.join(aside)}"] if aside else []),
    ]
    if kept_all(outcome):
        return f"kept existing data; snapshot {snapshot_id} not loaded" + (f" ({notes[-1]})" if aside else "")
    return f"restored from {snapshot_id}" + (f" ({'; '.join(notes)})" if notes else "")


def existing_data(project: ComposeProject, snapshot: Snapshot) -> str | None:
    """What says the stack has data of its own (whose secrets must come back), None for a first installation."""
    if snapshot.manifest.origin == "backup":
        return f"snapshot {snapshot.id}"
    return f"it is deployed on host {project.host.name}" if read_state(project) else None


def refuse_unrecorded_data(
    project: ComposeProject, pinned: PinnedStack, pairs: list[tuple[Artifact, DataSource]]
) -> None:
    """Data is kept only where a deployment recorded it (the host's state): data of unknown origin and release
    (the stack's folder was lost, another installation's volumes) would be migrated with no backup of it."""
    if read_state(project) is not None:
        return
    held = [artifact.name for artifact, target in pairs if not target.is_empty()]
    if held:
        raise UnrecordedData(
            f"stack {project.name} on host {project.host.name}: {', '.join(held)} holds data that no deployment "
            f"recorded (the host has no state of the stack: its folder was removed, or the data is another "
            f"installation's), and release {pinned.release.release} would keep it and migrate it with no backup, so "
            f"nothing was loaded, migrated or removed. If it is this stack's own data, run `incarnate install "
            f"{pinned.customer.repo} --adopt-data` to keep it; if not, remove it (`docker compose -p {project.name} "
            f"down --volumes` on the host) and install again."
        )


def run(
    project: ComposeProject,
    pinned: PinnedStack,
    store: Store,
    snapshot: Snapshot,
    vault: Vault,
    adopt_data: bool = False,
) -> dict[str, str]:
    """What became of each artifact: "loaded", or "kept (not empty)". Data no deployment recorded is kept only
    with `adopt_data`."""
    config, release = pinned.customer.config, pinned.release
    compose = customer_releases(store).checked_file(config.product, config.release, "compose.yaml")
    secrets = stack_secrets(
        vault, pinned.secrets_stack, release.secrets, existing_data(project, snapshot), StoreSecrets(store)
    ) | secret_settings(vault, pinned.secrets_stack, release.settings)
    return load(project, pinned, compose, secrets, store, snapshot, adopt_data)


def load(
    project: ComposeProject,
    pinned: PinnedStack,
    compose: bytes,
    secrets: dict[str, SecretStr],
    store: Store,
    snapshot: Snapshot,
    adopt_data: bool = False,
) -> dict[str, str]:
    """The stack's files written (`compose` with its variables), its data services started and serving, and the
    snapshot loaded into them: what every restore does, whoever's secrets and release files it is given."""
    release, host = pinned.release, project.host
    project.write_files(
        compose, pinned.compose_variables(secrets), release.size_overrides(pinned.size), pinned.image_overrides()
    )
    if pinned.login:
        pinned.login.login(host)
    project.pull(release.data_services)
    ensure_helper(host)  # made here, once, before the loads that need it start at once
    project.up(release.data_services)
    sources = datasources.for_release(project, release)
    for source in sources:  # healthy is not yet serving: an image's init server may pass its health check
        source.wait_until_serving(settings.ready_seconds())
    artifacts = [artifact for artifact in snapshot.manifest.artifacts if artifact.name not in release.dormant_artifacts]
    pairs = list(datasources.for_artifacts(sources, artifacts, project, f"snapshot {snapshot.id}"))
    if not adopt_data:
        refuse_unrecorded_data(project, pinned, pairs)
    return load_all(pairs, store, snapshot, project.name) | {
        artifact.name: ASIDE for artifact in snapshot.manifest.artifacts if artifact.name in release.dormant_artifacts
    }


def load_all(pairs: list[tuple[Artifact, DataSource]], store: Store, snapshot: Snapshot, stack: str) -> dict[str, str]:
    """Every artifact into its target, at once (a database's load and a volume's extract use different things:
    recovery of 1 GB + 1 GB 45.5 s in turn, 38.0 s at once on two cores), in the snapshot's order. All or nothing:
    the first failure stops the other loads, and every target loaded is emptied again, so a second attempt (maybe
    from another snapshot) never keeps half of this one."""
    loaded: dict[str, str] = {}
    stop = threading.Event()

    def load(pair: tuple[Artifact, DataSource]) -> None:
        loaded[pair[0].name] = load_if_empty(pair[1], store, snapshot, pair[0], stop)

    with shared_lock(store, f"restore of snapshot {snapshot.id} into stack {stack}", say=print):
        failures = datasources.at_once(load, pairs, settings.parallel_artifacts(), stop.set)
    if failures:
        for artifact, target in pairs:
            if loaded.get(artifact.name) == LOADED:
                target.reset()
        raise failures[0]
    return {artifact.name: loaded[artifact.name] for artifact, _ in pairs}
