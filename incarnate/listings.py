"""What the read-only commands show (status, history, backups, prune, release list): plain functions that read
and return the lines, so the command line only resolves the things, prints, and exits."""

from collections.abc import Callable
from datetime import UTC, datetime

from incarnate import datasources, log_archive, product_settings
from incarnate.backup_format import VOLUMES, Snapshot, list_snapshots, newest_taken, scan_snapshots
from incarnate.compose import ComposeProject
from incarnate.config import BackupSettings, StackConfig
from incarnate.datasources.database import Database
from incarnate.errors import HostError, StageError, StoreError
from incarnate.health import HealthWait
from incarnate.hooks import POINTS
from incarnate.host import Host
from incarnate.incarnations import Incarnation, history
from incarnate.readiness import observe
from incarnate.releases import ReleaseDescriptor, ReleaseStore, customer_releases
from incarnate.retention import PruneResult
from incarnate.state import read_state
from incarnate.stores import Store, lock_description
from incarnate.stores.sealed import SealedStore

NOT_DEPLOYED = 3  # the exit code of `status` for a stack that does not run on that host


def status(
    config: StackConfig, host: Host, project: ComposeProject, store: Callable[[], Store]
) -> tuple[int, list[str]]:
    """What runs, which release, which backup it came from, what it answers; NOT_DEPLOYED when nothing runs (the
    store is opened only when something does)."""
    state = read_state(project)
    if state is None or not project.has_files():
        return NOT_DEPLOYED, [f"stack {config.stack}: not deployed on host {host.name}"]
    came = (
        f"kept its data (snapshot {state.restored_from} not loaded)"
        if state.kept_data
        else f"from snapshot {state.restored_from}"
    )
    lines = [
        f"stack {state.stack} on host {host.name}: {state.product} {state.release} (schema {state.schema_version})"
        + (f", size {state.size}" if state.size else "")
        + (f", activated {', '.join(state.services)}" if state.services else ""),
        f"  config    {state.repo} at {state.config_commit[:10]} ({state.ref})",
        f"  restored  {came}, deployed {state.deployed_at}",
    ]
    release = customer_releases(store()).descriptor(state.product, state.release).activated(state.services)
    lines += [f"  allowed   {exception.describe()}" for exception in release.allow]
    shown = [product_settings.PUBLIC_URL, *(name for name, spec in release.settings.items() if not spec.secret)]
    values = project.variables([product_settings.variable(name) for name in shown])
    lines += [
        f"  setting   {name}: {values[product_settings.variable(name)]}"
        for name in shown
        if product_settings.variable(name) in values
    ]
    lines += recovery_points(project, release, store(), config.backup)
    readiness, seen = observe(project, release, state.http_port)
    lines.append(f"  answers   {host.app_address(state.http_port)} -> {readiness.describe() if readiness else seen}")
    checked_now = healthy_now(host, project.name)
    for service in project.services():
        health = service.get("Health", "")
        if health == "starting" and service.get("Service") in checked_now:
            health = "healthy (checked now; Docker's first check is still due)"
        condition = f"{service.get('State', '?')} {health}".rstrip()
        lines.append(f"  {service.get('Service', '?'):<9} {condition:<17} {service.get('Image', '?')}")
    return 0, lines


def recovery_points(
    project: ComposeProject, release: ReleaseDescriptor, store: Store, backup: BackupSettings
) -> list[str]:
    """Per database, what a recovery would bring back now: every write, when the archive holds all the server's
    log, else how far behind it is; or the last backup, when the database writes no log incarnate can archive. The
    volumes: as their newest snapshot holds them."""
    lines = []
    sources = datasources.for_release(project, release, backup.base)
    if any(not isinstance(source, Database) for source in sources):
        newest = newest_taken(store, project.name)
        taken = newest.isoformat(timespec="seconds") if newest else "none yet"
        every = f"one every {backup.volume_interval}" if backup.volume_interval else "backup.volume_interval not set"
        lines.append(f"  recovery  volumes: as the newest snapshot holds them (taken {taken}; {every})")
    for source in sources:
        if not isinstance(source, Database):
            continue
        try:
            files = source.log_files()
        except (HostError, StageError) as error:
            lines.append(f"  recovery  {source.artifact}: unknown, the database does not answer ({error})")
            continue
        if files is None:
            lines.append(f"  recovery  {source.artifact}: last backup ({source.archiving()})")
            continue
        if not any(log_archive.history_of(log.name) for log in files):
            lines.append(f"  recovery  {source.artifact}: last backup ({log_archive.UNBEGUN})")
            continue
        archived = log_archive.listing(store, project.name, source.artifact)
        behind = sum(
            max(0, log.size - archived.archived_to(log.name)) for log in files if log_archive.history_of(log.name)
        )
        newest = log_archive.newest_event(store, project.name, source.artifact)
        written = datetime.fromtimestamp(newest, UTC).isoformat(timespec="seconds") if newest else "none yet"
        lines.append(
            f"  recovery  {source.artifact}: "
            + ("every write archived" if not behind else f"{behind:,} bytes of its log not archived yet")
            + f" (newest archived write {written}; serve archives every few seconds, or `incarnate archive`)"
        )
    return lines


def healthy_now(host: Host, project: str) -> set[str]:
    """The services Docker still calls `starting` whose own health check passes when incarnate runs it now: right
    after a deployment, which ran the checks itself, Docker's first one is an interval away."""
    waiting = HealthWait(host, project, None)
    starting = [container for container in waiting.containers() if container.health == "starting"]
    for container in starting:
        waiting.check(container)
    return {container.service for container in starting if container.id in waiting.passed}


def incarnations(repo: str, config: StackConfig, store: Store) -> tuple[list[str], str]:
    """The stack's incarnations, each marked when its backup is gone; and a warning ("" when none) when the store
    cannot say which backups are still there."""
    entries = history(repo, config.stack)
    warning = ""
    try:
        present: set[str] | None = {snapshot.id for snapshot in list_snapshots(store, config.stack)}
    except StoreError as error:
        present, warning = None, f"(whose backups are still there is unknown: {error})"

    def origin(entry: Incarnation) -> str:
        if entry.kept_data:
            return f"kept data (snapshot {entry.restored_from} not loaded)"
        point = f" to {entry.recovery_point}" if entry.recovery_point else ""
        return f"from {entry.restored_from or '-'}{point}"

    def backup(entry: Incarnation) -> str:
        gone = entry.backup and present is not None and entry.backup not in present
        return f"{entry.backup or '-'}{' (gone)' if gone else ''}"

    lines = [f"stack {config.stack}: {len(entries)} incarnations"]
    for entry in entries:
        lines.append(
            f"  {(entry.tag or '?').rsplit('/', 1)[-1]}  {entry.flow:<17} {entry.result:<11} release "
            f"{entry.release:<7} commit {entry.commit[:10]}  {origin(entry)}  backup {backup(entry)}  "
            f"host {entry.host}  by {entry.triggered_by}  {sum(entry.seconds.values()):.0f} s"
        )
    return lines, warning


def snapshots(config: StackConfig, store: SealedStore) -> tuple[list[str], bool]:
    """The stack's snapshots, then the unreadable ones; whether all could be read."""
    readable, unreadable = scan_snapshots(store, config.stack)
    lines = [
        f"stack {config.stack}: {len(readable)} snapshot{'' if len(readable) == 1 else 's'} in {store.location}; "
        f"{store.describe()}; {lock_description(store, config.backup.lock_days, config.backup.lock_mode)}"
    ]
    for snapshot in readable:
        manifest = snapshot.manifest
        lines.append(
            f"  {snapshot.id}  {manifest.origin:<8} release {manifest.release:<8} {manifest.size():>14,} bytes  "
            f"{manifest.created_at}"
        )
    lines += [f"  {bad.id}  unreadable: {bad.reason}" for bad in unreadable]
    volumes, unreadable_volumes = scan_snapshots(store, config.stack, VOLUMES)
    if volumes:
        newest = volumes[-1].manifest
        lines.append(
            f"  snapshots of volumes: {len(volumes)} (backup.volume_interval), newest {volumes[-1].id} "
            f"{newest.size():,} bytes {newest.created_at}"
        )
    lines += [f"  snapshot of volumes {bad.id}  unreadable: {bad.reason}" for bad in unreadable_volumes]
    return lines + archived_logs(store, config.stack, readable), not unreadable and not unreadable_volumes


def archived_logs(store: Store, stack: str, readable: list[Snapshot]) -> list[str]:
    """Per database whose log is archived: how much, the newest write, and the times a recovery can go to."""
    lines = []
    databases = sorted(
        {
            artifact.name
            for snapshot in readable
            for artifact in snapshot.manifest.artifacts
            if artifact.kind == "database"
        }
    )
    bases = [snapshot.manifest.created() for snapshot in readable if snapshot.manifest.origin == "backup"]
    for database in databases:
        found = log_archive.listing(store, stack, database)
        if not found.pieces:
            continue
        newest = log_archive.newest_event(store, stack, database)
        pieces = sum(len(ranges) for ranges in found.pieces.values())
        size = sum(end - offset for ranges in found.pieces.values() for offset, end, _, _ in ranges)
        written = datetime.fromtimestamp(newest, UTC).isoformat(timespec="seconds") if newest else "none yet"
        lines.append(
            f"  archived log of {database}: {pieces} pieces, {size:,} bytes, newest write {written}"
            + (f"; `recover --at` any second from {min(bases).isoformat()} on" if bases else "")
        )
    return lines


def pruned(stack: str, result: PruneResult, dry_run: bool) -> list[str]:
    return [
        *(f"  {'would forget' if dry_run else 'forgot'} {snapshot_id}" for snapshot_id in result.forgotten),
        *(f"  kept {snapshot_id}: still locked by the server" for snapshot_id in result.locked_snapshots),
        f"stack {stack}: {result.summary()}",
    ]


def releases(store: ReleaseStore, product: str | None) -> list[str]:
    """Every published release, each with the exceptions to the compose policy its release.yaml names, the settings
    a stack.yaml may give it, and the points it has hooks at."""
    published = store.publications(product)
    lines = [
        f"release store {store.location}: {len(published)} published release{'s' if len(published) != 1 else ''}"
        + (f" of {product}" if product else "")
    ]
    for record in published:
        lines.append(
            f"  {record.product:<12} {record.release:<9} schema {record.schema_version:<4} vanilla "
            f"{record.vanilla_bytes:>13,} bytes  published {record.published_at}"
        )
        descriptor = store.descriptor(record.product, record.release)
        lines += [f"    allowed {exception.describe()}" for exception in descriptor.allow]
        lines += [f"    setting   {setting}" for setting in product_settings.describe_all(descriptor.settings)]
        if hooked := [point for point in POINTS if descriptor.hooks.get(point)]:
            lines.append(f"    hooks     {', '.join(hooked)}")
        if withdrawal := store.withdrawal(record.product, record.release):
            lines.append(f"    withdrawn {withdrawal.withdrawn_at}: {withdrawal.reason}")
    return lines
