"""Restore: only the data services are started, and the artifacts of the snapshot are loaded at once, each into its
database or volume if that is empty, verified chunk by chunk on the way; a failed load stops the others and leaves
every target this restore loaded empty again."""

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from pydantic import SecretStr

from incarnate import datasources, log_archive, settings, wal
from incarnate.backup_format import Artifact, Snapshot, restore_artifact
from incarnate.compose import ComposeProject
from incarnate.datasources import DataSource
from incarnate.datasources.database import Database
from incarnate.datasources.helper import ensure_helper
from incarnate.datasources.postgresql import Promoted
from incarnate.errors import ConfigError, IntegrityError, UnrecordedData
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
        loader = target.load
        if artifact.base == "physical":
            if not isinstance(target, Database):
                raise IntegrityError(f"artifact {artifact.name} says it is a physical base, but is a {artifact.kind}.")
            loader = partial(target.load_base, artifact)
        restore_artifact(store, snapshot, artifact, loader, stop)
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
    volumes: Snapshot | None = None,
) -> dict[str, str]:
    """What became of each artifact: "loaded", or "kept (not empty)". Data no deployment recorded is kept only
    with `adopt_data`; volumes are loaded from `volumes` (a newer snapshot of volumes) where it holds them."""
    config, release = pinned.customer.config, pinned.release
    compose = customer_releases(store).checked_file(config.product, config.release, "compose.yaml")
    secrets = stack_secrets(
        vault, pinned.secrets_stack, release.secrets, existing_data(project, snapshot), StoreSecrets(store)
    ) | secret_settings(vault, pinned.secrets_stack, release.settings)
    return load(project, pinned, compose, secrets, store, snapshot, adopt_data, volumes)


def load(
    project: ComposeProject,
    pinned: PinnedStack,
    compose: bytes,
    secrets: dict[str, SecretStr],
    store: Store,
    snapshot: Snapshot,
    adopt_data: bool = False,
    volumes: Snapshot | None = None,
) -> dict[str, str]:
    """The stack's files written (`compose` with its variables), its data services started and serving, and the
    snapshot loaded into them (its volumes from `volumes` where it holds them): what every restore does, whoever's
    secrets and release files it is given."""
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
    return load_all(pairs, store, snapshot, project.name, volumes) | {
        artifact.name: ASIDE for artifact in snapshot.manifest.artifacts if artifact.name in release.dormant_artifacts
    }


def load_all(
    pairs: list[tuple[Artifact, DataSource]],
    store: Store,
    snapshot: Snapshot,
    stack: str,
    volumes: Snapshot | None = None,
) -> dict[str, str]:
    """Every artifact into its target, at once (a database's load and a volume's extract use different things:
    recovery of 1 GB + 1 GB 45.5 s in turn, 38.0 s at once on two cores), in the snapshot's order; a volume from
    `volumes` where that holds it. All or nothing: the first failure stops the other loads, and every target loaded
    is emptied again, so a second attempt (maybe from another snapshot) never keeps half of this one."""
    loaded: dict[str, str] = {}
    stop = threading.Event()
    newer = {artifact.name: artifact for artifact in volumes.manifest.artifacts} if volumes else {}

    def load(pair: tuple[Artifact, DataSource]) -> None:
        artifact, target = pair
        if artifact.kind == "volume" and artifact.name in newer:
            loaded[artifact.name] = load_if_empty(target, store, volumes, newer[artifact.name], stop)
        else:
            loaded[artifact.name] = load_if_empty(target, store, snapshot, artifact, stop)

    with shared_lock(store, f"restore of snapshot {snapshot.id} into stack {stack}", say=print):
        failures = datasources.at_once(load, pairs, settings.parallel_artifacts(), stop.set)
    if failures:
        for artifact, target in pairs:
            if loaded.get(artifact.name) == LOADED:
                target.reset()
        raise failures[0]
    return {artifact.name: loaded[artifact.name] for artifact, _ in pairs}


REPLAY = "replay logs"


@dataclass(frozen=True)
class Replayed:
    """What a replay of archived logs reached."""

    point: datetime | None  # the newest write replayed; None when there was nothing to replay
    base: datetime  # when the snapshot the replay starts from was taken
    notes: list[str]  # per database: what was replayed, or why nothing was
    gaps: list[str]  # where an archive ended at a gap rather than at its newest write
    applied: bool  # writes were replayed: the data is no longer exactly the snapshot's
    loaded: bool  # a database was loaded (else the recovery point says nothing of the stack's data)
    # a history began that no snapshot can be brought into yet (PostgreSQL loaded from a dump: its WAL replays onto a
    # physical base only): the deployment's closing backup takes that base
    needs_base: bool = False

    def recovery_point(self) -> datetime | None:
        return self.point or (self.base if self.loaded else None)

    def describe(self) -> str:
        point = self.recovery_point()
        said = [*self.notes, *(f"warning: {gap}" for gap in self.gaps)]
        head = [f"recovery point {point.isoformat(timespec='seconds')}"] if point else []
        return "; ".join(head + said) or "nothing loaded"


@dataclass(frozen=True)
class Recovery:
    """What a deployment does with the archived logs of the databases it loads."""

    at: datetime | None = None  # replay the writes made before this second; None: everything archived
    apply_logs: bool = True  # a recovery; False: a rollback or an update, which restores its snapshot as it was
    record: bool = True  # the stack's own deployment writes the history it begins (a scratch stack ships no log)
    lock_days: int = 0  # the history start is locked as the stack's backups are
    lock_mode: str = "locked"
    base: str = "logical"  # how the stack backs its databases up (PostgreSQL's WAL replays onto physical bases only)
    volumes: Snapshot | None = None  # the snapshot of volumes newer than the base that the files are restored from

    def lock_until(self) -> datetime | None:
        return datetime.now(UTC) + timedelta(days=self.lock_days) if self.lock_days else None


def replay(
    project: ComposeProject,
    release: ReleaseDescriptor,
    store: Store,
    snapshot: Snapshot,
    outcome: dict[str, str],
    recovery: Recovery,
) -> Replayed:
    """Each database the restore loaded is brought forward by its archived log (unless the deployment restores its
    snapshot as it was): the segments the history it recovers into was begun with, then that history, to its end or
    to the last write before `recovery.at`. Then its server begins a new history of its log (a numbering of its own,
    so the lost server's archive is never continued by another), written into the store for the stack's own
    deployments. Any failure empties the loaded databases again: a half-replayed database must never be kept as if
    restored."""
    stack = snapshot.manifest.stack  # whose archive: a drill's scratch stack replays the stack's own
    at, apply_logs = recovery.at, recovery.apply_logs
    until = log_archive.at_second(at) if at else None
    live = log_archive.live_history(store, stack, at or datetime.now(UTC)) if apply_logs else None
    chain = live if live is not None and live.snapshot == snapshot.id else None
    notes, gaps, reached, starts = [], [], [], {}
    loaded = [
        artifact
        for artifact in snapshot.manifest.artifacts
        if artifact.kind == "database" and outcome.get(artifact.name) == LOADED
    ]
    sources = datasources.for_release(project, release, recovery.base)
    databases = list(datasources.for_artifacts(sources, loaded, project, f"snapshot {snapshot.id}"))
    kept = [name for name, result in outcome.items() if result == KEPT and name.startswith("database-")]
    if at is not None and kept:
        for _, source in databases:
            source.reset()
        raise ConfigError(
            f"stack {stack} on host {project.host.name}: {', '.join(kept)} holds data, which a deployment keeps, so "
            f"a recovery to {at.isoformat()} cannot be made into it; the databases this run loaded were emptied "
            f"again. Recover onto another host, or remove the stack's data first (`docker compose -p "
            f"{project.name} down --volumes` on the host) and recover --at again."
        )
    applied = needs_base = False
    files_loaded = [name for name, result in outcome.items() if result == LOADED and name.startswith("volume-")]
    try:
        for artifact, source in databases:
            if source.replays_at_start:
                recovered = _recover_at_start(source, store, stack, artifact, snapshot, chain, recovery)
                if recovered is None:
                    notes.append(f"{artifact.name}: {source.archiving()}")
                    continue
                notes.append(recovered.note)
                gaps += [f"{artifact.name}: {gap}" for gap in recovered.gaps]
                reached += [recovered.reached] if recovered.applied else []
                applied = applied or recovered.applied
                needs_base = needs_base or artifact.base != "physical"
                starts[artifact.name] = recovered.start
                continue
            if source.log_files() is None:
                notes.append(f"{artifact.name}: {source.archiving()}")
                continue
            segments = []
            for start, stop in _route(artifact, snapshot, chain) if apply_logs else []:
                end, last, gap = _replay_segment(source, store, stack, artifact.name, start, stop, until)
                if end is not None and end != start:
                    segments.append(log_archive.Segment(start=start, end=end))
                reached += [last] if last else []
                if gap and stop is None:
                    gaps.append(f"{artifact.name}: the archive has a gap ({gap}); replayed up to it")
            notes.append(_replay_note(artifact.name, snapshot, segments, apply_logs))
            applied = applied or bool(segments)
            source.begin_history(log_archive.next_history(store, stack, artifact.name, artifact.log_start))
            starts[artifact.name] = log_archive.DatabaseStart(first=source.log_files()[0].name, replayed=segments)
        if at is not None and gaps:
            raise IntegrityError(
                f"stack {stack}: recovery to {at.isoformat()} cannot be reached: {'; '.join(gaps)}; the databases "
                f"were emptied again. Choose an earlier --at, or recover without one to the newest write before it."
            )
        if recovery.record and starts:
            began = log_archive.HistoryStart(
                stack=stack,
                began_at=datetime.now(UTC).isoformat(),
                snapshot=snapshot.id,
                at=at.isoformat() if at else None,
                databases=starts,
                volumes=recovery.volumes.id if recovery.volumes and files_loaded else None,
            )
            log_archive.record_history(store, began, recovery.lock_until(), recovery.lock_mode)
    except BaseException:
        for _, source in databases:
            source.reset()
        raise
    files_from = recovery.volumes or snapshot
    if files_loaded and apply_logs:  # files have no log: their recovery point is their snapshot's
        kind = "snapshot of volumes" if recovery.volumes else "snapshot"
        notes.append(
            f"{', '.join(files_loaded)}: as {kind} {files_from.id} holds them (taken {files_from.manifest.created_at})"
        )
    applied = applied or (bool(files_loaded) and recovery.volumes is not None)  # newer files than the snapshot's
    for gap in gaps:
        print(f"warning: stack {stack}: {gap}")
    point = datetime.fromtimestamp(max(reached), UTC) if reached else None
    return Replayed(point, snapshot.manifest.created(), notes, gaps, applied, bool(databases), needs_base)


@dataclass(frozen=True)
class RecoveredAtStart:
    """What a server that replays its archived log itself as it starts (PostgreSQL) reached."""

    start: log_archive.DatabaseStart  # the history it began
    reached: int | None  # the last transaction it replayed, seconds since the epoch
    applied: bool  # it replayed writes made after the snapshot was taken
    gaps: list[str]
    note: str


@dataclass(frozen=True)
class WalRoute:
    """The archived WAL a server replays as it starts: the files, the timelines it leaves on the way (where), the
    newest transaction they hold, and where the archive ends at a gap."""

    files: list[log_archive.LogFilePlan]
    switches: list[tuple[int, int]]
    newest: int | None
    gaps: list[str]


def _wal_route(
    store: Store, stack: str, database: str, route: list[tuple[log_archive.Position, log_archive.Position | None]]
) -> WalRoute:
    files, switches, gaps, events = [], [], [], []
    for start, stop in route:
        plan = log_archive.plan_replay(store, stack, database, start)
        taken = plan.files
        if stop is not None:
            last = log_archive.file_number(stop[0])
            taken = [file for file in plan.files if log_archive.file_number(file.name) <= last]
            if not taken or taken[-1].name != stop[0]:
                raise IntegrityError(
                    f"stack {stack}: the archived WAL of {database} no longer reaches {stop[0]}, which the history "
                    f"being recovered into was begun with ({plan.gap or 'it ends before'}); nothing was kept."
                )
            switches.append((wal.timeline(stop[0]), wal.lsn(*stop)))
        elif plan.gap:
            gaps.append(f"the archive has a gap ({plan.gap}); replayed up to it")
        files += taken
        events += [piece.last_event for file in taken for piece in file.pieces if piece.last_event is not None]
    return WalRoute(files, switches, max(events, default=None), gaps)


def _recover_at_start(
    source: Database,
    store: Store,
    stack: str,
    artifact: Artifact,
    snapshot: Snapshot,
    chain: log_archive.HistoryStart | None,
    recovery: Recovery,
) -> RecoveredAtStart | None:
    """A physical base is brought forward by the archived WAL of its history (or the chain its history began with)
    and promoted to a new history; a dump is only promoted to one, when the stack archives (WAL cannot be replayed
    onto a dump). None: the stack does not archive this database and it was loaded from a dump."""
    physical = artifact.base == "physical"
    if not physical and source.log_files() is None:
        return None
    if not physical and recovery.at is not None and recovery.at > snapshot.manifest.created():
        raise ConfigError(
            f"stack {stack}: snapshot {snapshot.id} holds a dump of {artifact.name} (taken "
            f"{snapshot.manifest.created_at}), onto which PostgreSQL's WAL cannot be replayed, so a recovery to "
            f"{recovery.at.isoformat()} cannot be made from it; the databases were emptied again. Choose an --at at "
            f"which a physical base of it existed, or restore the snapshot as it is (--snapshot {snapshot.id})."
        )
    route = _route(artifact, snapshot, chain) if recovery.apply_logs else []
    refused = (
        [] if physical or not route else [f"its history began from a dump ({snapshot.id}), which WAL cannot follow"]
    )
    planned = _wal_route(store, stack, artifact.name, route if physical else [])
    gaps = refused + planned.gaps
    until = recovery.at
    if until is not None and (planned.newest is None or log_archive.at_second(until) > planned.newest):
        if gaps:
            raise IntegrityError(
                f"stack {stack}: recovery to {until.isoformat()} cannot be reached: {artifact.name}: "
                f"{'; '.join(gaps)}; the databases were emptied again. Choose an earlier --at, or recover without one "
                f"to the newest write before it."
            )
        until = None  # every write archived was made before it
    target = wal.timeline(route[-1][0][0]) if route and physical else None
    promoted = source.recover(
        log_archive.next_history(store, stack, artifact.name, artifact.log_start),
        ((file.name, log_archive.log_bytes(store, file)) for file in planned.files),
        {target: wal.history_file(planned.switches)} if planned.switches else {},
        target,
        until,
    )
    return _recovered(artifact, snapshot, route if physical else [], promoted, gaps, recovery.apply_logs)


def _recovered(
    artifact: Artifact,
    snapshot: Snapshot,
    route: list[tuple[log_archive.Position, log_archive.Position | None]],
    promoted: Promoted,
    gaps: list[str],
    apply_logs: bool,
) -> RecoveredAtStart:
    replayed = [log_archive.Segment(start=start, end=stop) for start, stop in route if stop is not None]
    if artifact.base == "physical":  # how to come back to this history: the WAL up to where it began
        first = route[-1][0] if route else tuple(artifact.log_start)
        replayed.append(log_archive.Segment(start=first, end=promoted.switch))
    applied = promoted.reached is not None and promoted.reached > snapshot.manifest.created().timestamp()
    if applied:
        moment = datetime.fromtimestamp(promoted.reached, UTC).isoformat(timespec="seconds")
        note = f"{artifact.name}: replayed archived WAL to the transaction of {moment}"
    elif apply_logs and artifact.base == "physical":
        note = f"{artifact.name}: no archived WAL after snapshot {snapshot.id}"
    else:
        note = f"{artifact.name}: as snapshot {snapshot.id} holds it (no log replayed)"
    start = log_archive.DatabaseStart(first=promoted.first, replayed=replayed)
    return RecoveredAtStart(start, promoted.reached, applied, gaps, note)


def _route(
    artifact: Artifact, snapshot: Snapshot, chain: log_archive.HistoryStart | None
) -> list[tuple[log_archive.Position, log_archive.Position | None]]:
    """What to replay onto the snapshot's dump of `artifact`, in order: (from, to), to None: the archive's end."""
    begun = chain.databases.get(artifact.name) if chain else None
    if begun is not None:  # the history recovered into began from this very snapshot: as it began, then onwards
        return [(segment.start, segment.end) for segment in begun.replayed] + [((begun.first, 0), None)]
    if snapshot.manifest.origin == "backup" and artifact.log_start:
        return [(tuple(artifact.log_start), None)]
    return []


def _replay_segment(
    source: log_archive.LogSource,
    store: Store,
    stack: str,
    database: str,
    start: log_archive.Position,
    stop: log_archive.Position | None,
    until: int | None,
) -> tuple[log_archive.Position | None, int | None, str | None]:
    """Replay the archived log from `start` to `stop` (None: its end), never a write at or after `until`; where it
    ended, the time of the last write replayed, and the gap the archive ended at."""
    plan = log_archive.plan_replay(store, stack, database, start)
    end, last = None, None
    for file in plan.files:
        data = log_archive.log_bytes(store, file)
        cut = len(data)
        if stop is not None and file.name == stop[0]:
            cut = min(cut, stop[1])
        if until is not None:
            cut = min(cut, source.cut_before(data, 0, until)[0])
        if cut > file.start:
            source.replay(data[:cut], file.start, f"replaying archived log {file.name} of {database}")
            last = source.whole_events(file.name, data[:cut], 0)[2] or last
        end = (file.name, max(cut, file.start))
        if cut < len(data) or (stop is not None and file.name == stop[0]):
            return end, last, None
    if stop is not None:
        raise IntegrityError(
            f"stack {stack}: the archived log of {database} no longer reaches {stop[0]} byte {stop[1]:,}, which the "
            f"history being recovered into was begun with ({plan.gap or 'it ends before'}); nothing was kept."
        )
    return end, last, plan.gap


def _replay_note(database: str, snapshot: Snapshot, segments: list, apply_logs: bool) -> str:
    if not apply_logs:
        return f"{database}: as snapshot {snapshot.id} holds it (no log replayed)"
    if not segments:
        return f"{database}: no archived log after snapshot {snapshot.id}"
    files = ", ".join(
        f"{segment.start[0]}:{segment.start[1]}..{segment.end[0]}:{segment.end[1]}" for segment in segments
    )
    return f"{database}: replayed {files}"
