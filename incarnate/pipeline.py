"""The seven stages of every deployment, as plain functions; tasks/ wraps each in a Prefect task.

    load config -> create host -> fetch backup -> restore -> start -> migrate -> backup

Load config runs first: it has no side effects, and it refuses bad input (stack.yaml, a
missing release, images the registry lacks) before the host or any running stack is touched.
"""

import json
import shutil
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from pydantic import BaseModel

from incarnate import settings, volumes
from incarnate.compose import STATE_FILE, ComposeProject
from incarnate.config import BlockStoreTarget, HostSettings, StackConfig
from incarnate.engines import engine
from incarnate.errors import ConfigError, HostError, ReleaseError, StageError
from incarnate.host import Host
from incarnate.hostprep import prepare_host
from incarnate.releases import ReleaseDescriptor, ReleaseStore, check_images
from incarnate.repo import CustomerConfig, load_customer_config
from incarnate.snapshots import (
    Artifact, Snapshot, SnapshotWriter, WriteStats, copy_snapshot, find_snapshot, list_snapshots, new_snapshot_prefix,
    restore_artifact,
)
from incarnate.stores import Store
from incarnate.stores.local import LocalStore



@dataclass(frozen=True)
class Deployment:
    """What load config resolved: the customer's config at a commit, and the release it pins."""

    customer: CustomerConfig
    release: ReleaseDescriptor
    registry: str

    @property
    def stack(self) -> str:
        return self.customer.config.stack


class StackState(BaseModel):
    """What a host knows of the stack it runs: written after a deployment, read by status and backup."""

    stack: str
    product: str
    release: str
    schema_version: int
    repo: str
    ref: str
    config_commit: str
    restored_from: str
    deployed_at: str
    http_port: int
    registry: str


def default_release_store() -> ReleaseStore:
    return ReleaseStore(LocalStore(settings.release_store_path()))


def backup_store(config: StackConfig) -> Store:
    """The customer backup store stack.yaml names (a saved block, or a local path), or the default."""
    target = config.backup.store
    if isinstance(target, BlockStoreTarget):
        from blocks.stores import load_store_block  # Prefect is needed only for saved blocks

        return load_store_block(target.block)
    if target is None:
        settings.default_backup_path().mkdir(parents=True, exist_ok=True)
        return LocalStore(settings.default_backup_path())
    return LocalStore(target.path)


def customer_releases(store: Store) -> ReleaseStore:
    """A customer store keeps its own copy of every release it ran, so recovery needs no release store."""
    return ReleaseStore(store, prefix="releases")


# 1. load config
def load_config(repo: str, ref: str, releases: ReleaseStore, registry: str) -> Deployment:
    customer = load_customer_config(repo, ref)
    descriptor = releases.descriptor(customer.config.product, customer.config.release)
    check_images(registry, descriptor)
    return Deployment(customer=customer, release=descriptor, registry=registry)


def stop_services(project: ComposeProject, descriptor: ReleaseDescriptor) -> list[str]:
    """Stop the app services (not the data services), so nothing writes while the data changes."""
    services = [service for service in descriptor.images if service not in descriptor.data_services]
    project.compose("stop", *services, what=f"stopping {', '.join(services)} of stack {project.name}")
    return services


def free_port() -> int:
    """A free port on this machine's loopback, for a scratch stack."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def forget_workdir(project: ComposeProject) -> None:
    shutil.rmtree(project.workdir, ignore_errors=True)
    project.forget_on_host()


def remove_stack(project: ComposeProject) -> None:
    """Containers and volumes of the stack go; only ever after a verified backup of them exists."""
    project.down(volumes=True)


# 2. create host
def create_host(host: Host, stack: str, settings: HostSettings | None = None) -> ComposeProject:
    """The host is prepared (with `settings`: Docker, Compose, host settings), its engine answers through
    this machine's connection, Compose v2 works here, the stack's directory exists."""
    if settings is not None:
        prepare_host(host.shell(), stack, settings)
    host.check_engine()
    host.compose_command()
    workdir = host.stack_dir(stack)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise HostError(f"host {host.name}: cannot create {workdir} ({error.strerror}).") from None
    project = ComposeProject(host=host, name=stack, workdir=workdir)
    project.load_from_host()
    return project


# 3. fetch backup
def ensure_release_files(deployment: Deployment, store: Store, releases: ReleaseStore) -> None:
    """Copy the release's files into the customer store, so recovery never needs the release store."""
    config = deployment.customer.config
    own_copy = customer_releases(store)
    if not own_copy.has(config.product, config.release):
        own_copy.add(config.product, config.release, releases.files(config.product, config.release))


def refuse_downgrade(deployment: Deployment, data_schema: int, data: str) -> None:
    """A release must not run on data of a newer schema than its own: its app cannot read it."""
    if data_schema > deployment.release.schema_version:
        raise ReleaseError(
            f"stack {deployment.stack}: {data} has schema version {data_schema}, newer than release "
            f"{deployment.release.release} understands ({deployment.release.schema_version}); deploy a newer release, "
            f"or roll back to an earlier incarnation with its own backup (`incarnate rollback`). Nothing was changed."
        )


def fetch_backup(deployment: Deployment, store: Store, releases: ReleaseStore, snapshot_id: str | None = None) -> Snapshot:
    """The newest (or chosen) complete snapshot; a first install seeds the store from the vanilla backup."""
    config = deployment.customer.config
    ensure_release_files(deployment, store, releases)
    snapshot = find_snapshot(store, config.stack, snapshot_id)
    if snapshot is None:
        vanilla = releases.vanilla(config.product, config.release)
        snapshot = copy_snapshot(releases.store, vanilla, store, config.stack)
    refuse_downgrade(deployment, snapshot.manifest.schema_version, f"snapshot {snapshot.id}")
    return snapshot


def _variables(deployment: Deployment) -> dict[str, str]:
    return {"INCARNATE_REGISTRY": deployment.registry, "HTTP_PORT": str(deployment.customer.config.http_port)}


def load_if_empty(empty: Callable[[], bool], load: Callable[[BinaryIO], None],
                   reset: Callable[[], None], store: Store, snapshot: Snapshot, artifact: Artifact) -> str:
    """Load an artifact into an empty target; on any failure empty the target again, so nothing is half-loaded."""
    if not empty():
        return "kept (not empty)"
    try:
        restore_artifact(store, snapshot, artifact, load)
    except BaseException:
        reset()
        raise
    return "loaded"


# 4. restore
def restore(project: ComposeProject, deployment: Deployment, store: Store, snapshot: Snapshot) -> dict[str, str]:
    """Start only the data services and load each artifact into its target if that target is empty."""
    config, descriptor, host = deployment.customer.config, deployment.release, project.host
    compose = customer_releases(store).read_file(config.product, config.release, "compose.yaml")
    project.write_files(compose, _variables(deployment))
    project.pull(descriptor.data_services)
    host.run(["docker", "pull", "--quiet", volumes.toolbox_image(deployment.registry)], what="pulling the toolbox image")
    project.up(descriptor.data_services)
    return {artifact.name: _restore_artifact(project, deployment, store, snapshot, artifact)
            for artifact in snapshot.manifest.artifacts}


def _restore_artifact(project: ComposeProject, deployment: Deployment, store: Store, snapshot: Snapshot, artifact: Artifact) -> str:
    """One artifact into its database or volume, through the same empty-only decision."""
    host, registry = project.host, deployment.registry
    if artifact.kind == "database":
        spec = next(spec for spec in deployment.release.databases if spec.name == artifact.target)
        container, db = project.container(spec.service), engine(artifact.engine or spec.engine)
        return load_if_empty(
            lambda: db.is_empty(host, container, spec.name),
            lambda raw: db.load(host, container, raw, spec.name),
            lambda: db.reset(host, container, spec.name),
            store, snapshot, artifact,
        )
    volume = ensure_volume(project, artifact.target)
    return load_if_empty(
        lambda: volumes.is_empty(host, volume, registry),
        lambda raw: volumes.extract(host, volume, registry, raw),
        lambda: volumes.reset(host, volume, registry),
        store, snapshot, artifact,
    )


def ensure_volume(project: ComposeProject, name: str) -> str:
    """A project volume, created with Compose's labels when the data services did not need it."""
    existing = project.volume(name)
    if existing:
        return existing
    volume = f"{project.name}_{name}"
    project.host.run(
        ["docker", "volume", "create", "--label", f"com.docker.compose.project={project.name}",
         "--label", f"com.docker.compose.volume={name}", volume],
        what=f"creating volume {volume}",
    )
    return volume


# 5. start
def start(project: ComposeProject, deployment: Deployment) -> None:
    project.pull()
    project.up()


def app_address(host: Host, port: int) -> str:
    """The app's address for an operator: on the host's loopback (stacks publish there only)."""
    return f"http://127.0.0.1:{port}" + ("" if host.name == "local" else f" on {host.name}")


def read_health(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None


# 6. migrate
def migrate(project: ComposeProject, deployment: Deployment, snapshot: Snapshot, timeout: float = 300) -> dict:
    """Wait until the app reports the pinned release and schema version, then record the deployment."""
    descriptor = deployment.release
    url = project.host.app_url(deployment.customer.config.http_port) + descriptor.health.path
    deadline, health = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        health = read_health(url)
        if health and health.get("release") == descriptor.release and health.get("schema_version") == descriptor.schema_version:
            write_state(project, deployment, snapshot)
            return health
        time.sleep(1)
    raise StageError(
        f"stack {deployment.stack}: {url} reports {health or 'nothing'} after {timeout:.0f} s; release "
        f"{descriptor.release} expects schema version {descriptor.schema_version}; see "
        f"`docker compose -p {deployment.stack} logs`."
    )


def write_state(project: ComposeProject, deployment: Deployment, snapshot: Snapshot) -> StackState:
    customer = deployment.customer
    state = StackState(
        stack=deployment.stack, product=customer.config.product, release=deployment.release.release,
        schema_version=deployment.release.schema_version, repo=customer.repo, ref=customer.ref,
        config_commit=customer.commit, restored_from=snapshot.id, deployed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        http_port=customer.config.http_port, registry=deployment.registry,
    )
    (project.workdir / STATE_FILE).write_text(state.model_dump_json(indent=2))
    project.save_on_host()
    return state


def runs_as_deployed(project: ComposeProject, deployment: Deployment, state: StackState) -> bool:
    """The stack (whose state the host keeps) was deployed from this very config commit and release, all its
    services run, and its app reports that release and schema: a deployment would change nothing."""
    if (state.config_commit, state.release) != (deployment.customer.commit, deployment.release.release):
        return False
    services = project.services()
    if {service.get("Service") for service in services} != set(deployment.release.images):
        return False
    if any(service.get("State") != "running" or service.get("Health") not in ("", "healthy") for service in services):
        return False
    health = read_health(project.host.app_url(state.http_port) + deployment.release.health.path)
    return bool(health) and (health.get("release"), health.get("schema_version")) == (state.release, state.schema_version)


def read_state(project: ComposeProject) -> StackState | None:
    path = project.workdir / STATE_FILE
    return StackState.model_validate_json(path.read_text()) if path.is_file() else None


def row_counts(project: ComposeProject, descriptor: ReleaseDescriptor) -> dict[str, int]:
    """Rows per table of every database of the stack, as `database.table`."""
    counts = {}
    for spec in descriptor.databases:
        found = engine(spec.engine).row_counts(project.host, project.container(spec.service), spec.name)
        counts.update({f"{spec.name}.{table}": rows for table, rows in found.items()})
    return counts


def import_snapshot(deployment: Deployment, store: Store, dumps: dict[str, str], directories: dict[str, str]) -> Snapshot:
    """An old installation's database dumps and file directories become the stack's first snapshot."""
    descriptor, config = deployment.release, deployment.customer.config
    if list_snapshots(store, config.stack):
        raise ConfigError(f"stack {config.stack} already has snapshots in {store.location}; an import only seeds an empty store.")
    expected = ({spec.name for spec in descriptor.databases}, {spec.name for spec in descriptor.volumes})
    if set(dumps) != expected[0] or not set(directories) <= expected[1]:
        raise ConfigError(f"import for release {descriptor.release}: expected a dump for each of the databases "
                          f"{sorted(expected[0])} and directories only for the volumes {sorted(expected[1])}.")
    writer = SnapshotWriter(store, new_snapshot_prefix(config.stack))
    for spec in descriptor.databases:
        path = Path(dumps[spec.name])
        if not path.is_file():
            raise ConfigError(f"import: dump {path} for database {spec.name} is not a readable file.")
        with open(path, "rb") as dump:
            writer.add(f"database-{spec.name}", "database", spec.name, spec.engine, dump)
    for spec in descriptor.volumes:
        folder = directories.get(spec.name)
        if folder is not None and not Path(folder).is_dir():
            raise ConfigError(f"import: {folder} for volume {spec.name} is not a directory.")
        command = ["tar", "--create", "--directory", folder, "--file", "-", "."] if folder else ["tar", "--create", "--file", "-", "--files-from", "/dev/null"]
        with Host().stream_out(command, what=f"archiving {folder or 'an empty volume'}") as archive:
            writer.add(f"volume-{spec.name}", "volume", spec.name, None, archive)
    return writer.commit(stack=config.stack, product=config.product, release=descriptor.release,
                         schema_version=descriptor.schema_version, config_commit=deployment.customer.commit, origin="import")


# 7. backup
@dataclass(frozen=True)
class BackupResult:
    snapshot: Snapshot
    stats: WriteStats
    seconds: float
    lock: str  # what the store says of write-once protection, for the report


def lock_description(store: Store, lock_days: int) -> str:
    """What protects the stored objects, as the store says it: never a lock it does not enforce."""
    missing = store.lock_support()
    if missing is not None:
        return f"not locked by the server ({missing})"
    return f"locked by the server for {lock_days} days" if lock_days else "not locked (stack.yaml sets no lock_days)"


def backup(project: ComposeProject, store: Store, lock_days: int = 0) -> BackupResult:
    """A consistent dump of each database and an archive of each volume, chunked into the store; the manifest last."""
    began = time.monotonic()
    state = read_state(project)
    if state is None:
        raise StageError(f"stack {project.name} is not deployed on host {project.host.name}; there is nothing to back up.")
    descriptor = customer_releases(store).descriptor(state.product, state.release)
    host = project.host
    lock_until = datetime.now(UTC) + timedelta(days=lock_days) if lock_days else None
    writer = SnapshotWriter(store, new_snapshot_prefix(state.stack), lock_until=lock_until)
    for spec in descriptor.databases:
        with engine(spec.engine).dump(host, project.container(spec.service), spec.name) as stream:
            writer.add(f"database-{spec.name}", "database", spec.name, spec.engine, stream)
    for spec in descriptor.volumes:
        volume = project.volume(spec.name)
        if volume is None:
            raise StageError(f"stack {state.stack}: volume {spec.name} does not exist on host {host.name}.")
        with volumes.archive(host, volume, state.registry) as stream:
            writer.add(f"volume-{spec.name}", "volume", spec.name, None, stream)
    snapshot = writer.commit(
        stack=state.stack, product=state.product, release=state.release, schema_version=state.schema_version,
        config_commit=state.config_commit, origin="backup",
    )
    return BackupResult(snapshot, writer.stats, time.monotonic() - began, lock_description(store, lock_days))
