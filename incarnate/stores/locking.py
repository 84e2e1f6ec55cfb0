"""Store-wide locks, kept in the store itself so that they hold between machines (two DevOps laptops, the
Prefect server's worker, a worker on each host), as restic does:

    locks/<token>-<renewal>.json      {"token", "kind": "shared" | "exclusive", "purpose", "host", "pid", ...}

Every run that writes or reads snapshots (a backup, a copy of the vanilla backup, a restore, a verify) holds a
*shared* lock; the chunk clean-up of prune holds the *exclusive* one. Objects are create-only, so a lock is
renewed by writing its next object and deleting the one before. A lock is stale, and ignored, when the reader
itself saw no renewal of it for TTL seconds on its own monotonic clock (its owner is gone, frozen or cut off;
the owner's clock and the store's say nothing), or at once when the reader's machine noted, in this boot, that
the owner was a process of its own that no longer lives (a killed run). The token is random per lock: two
machines that share a host name or machine-id (a cloned VM) never take each other's locks for their own.

Acquiring writes one's own lock first and then looks at the others (each side looks after it wrote), so of
two runs that start together at least one sees the other: a shared lock steps back while any exclusive lock
lives; an exclusive lock waits for the shared ones, and for older exclusive ones. Writers give way to a waiting
clean-up, so clean-up happens within a bounded time even when some backup is always running.
"""

import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from incarnate import settings
from incarnate.errors import ObjectMissing, StoreError
from incarnate.private import write_private
from incarnate.stores import Store

LOCKS = "locks"
Kind = Literal["shared", "exclusive"]


def renew_seconds() -> float:
    return max(settings.store_lock_ttl() / 10, 0.2)


HELD: set[str] = set()  # tokens of the locks this process holds now
POLL_SECONDS = (0.05, 2.0)  # first and longest pause between two looks at the locks; each pause doubles


class StoreBusy(StoreError):
    """The store's lock could not be had in time; nothing was written."""


def _boot() -> str:
    """This boot of this machine: a restored or cloned VM boots anew, so its copy of the registry is not its own."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _started(pid: int) -> str | None:
    """When the process began (clock ticks since boot): a pid reused by a later process has another; None: gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return ""  # cannot be told: taken as the same process
    return stat.rsplit(")", 1)[-1].split()[19]


def _registry() -> Path:
    return settings.home() / "run" / "store-locks"


def _register(token: str) -> None:
    """Note on this machine's own disk that this process owns the lock `token`: only a note found here, written in
    this boot, lets a reader here judge the lock by its owner's process instead of waiting out its lifetime."""
    _forget_old_notes()
    with suppress(OSError):  # without the note, runs here wait for the lifetime like runs elsewhere: slower, as safe
        write_private(
            _registry() / token,
            json.dumps({"pid": os.getpid(), "started": _started(os.getpid()), "boot": _boot()}).encode(),
        )


def _forget_old_notes() -> None:
    """Delete the notes of killed runs whose locks nobody here looked at since a day (if such a lock is still
    somewhere, runs here now wait for its lifetime)."""
    try:
        notes = list(_registry().glob("*"))
    except OSError:
        return
    for left in notes:
        with suppress(OSError):  # another run here deleted its note meanwhile: the others are still looked at
            if time.time() - left.stat().st_mtime > 86400 and _owner_lives(left.name) is False:
                _unregister(left.name)


def _unregister(token: str) -> None:
    with suppress(OSError):
        (_registry() / token).unlink(missing_ok=True)


def _owner_lives(token: str) -> bool | None:
    """Whether the process of this machine that took the lock `token` still runs (and holds it); None when no
    process of this machine in this boot took it: the store's word about its owner (host, pid) is not evidence."""
    try:
        note = json.loads((_registry() / token).read_text())
        pid, started, boot = int(note["pid"]), note["started"], note["boot"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if boot != _boot():
        return None
    if pid == os.getpid():
        return token in HELD  # this process released it, but could not delete the object
    now = _started(pid)
    return now is not None and (now == started or "" in (now, started))


class _Observations:
    """When this process first saw each lock's newest object: a lock is renewed by writing its next object, so one
    whose newest object stays the same for the lifetime, on this process's own monotonic clock, has no live owner.
    No writer's clock enters: a machine whose clock is slow or fast keeps its lock exactly as long as it renews."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, float]] = {}
        self._mutex = threading.Lock()

    def unchanged_for(self, token: str, key: str, now: float) -> float:
        with self._mutex:
            seen = self._seen.get(token)
            if seen is None or seen[0] != key:
                seen = self._seen[token] = (key, now)
            return now - seen[1]

    def forget_all_but(self, tokens: set[str]) -> None:
        with self._mutex:
            for token in set(self._seen) - tokens:
                del self._seen[token]


OBSERVED = _Observations()


@dataclass(frozen=True)
class LockRecord:
    key: str
    token: str  # random, per lock: its owner's only identity that another machine cannot share by accident
    kind: Kind
    purpose: str
    host: str  # for people; never trusted to tell whose lock it is
    pid: int
    acquired: float  # when its owner first wrote it, on its clock: only orders exclusive locks, never ages them

    def describe(self) -> str:
        return f"{self.kind} lock of {self.purpose} (host {self.host}, pid {self.pid})"


def stale_tokens(records: list["LockRecord"], ttl: float) -> set[str]:
    """The locks that hold nothing: their owner was a process here that ended, or no renewal of theirs was seen for
    `ttl` seconds by this process."""
    now, newest = time.monotonic(), {}
    for record in records:
        if record.token not in newest or record.key > newest[record.token]:
            newest[record.token] = record.key
    OBSERVED.forget_all_but(set(newest))
    stale = set()
    for token, key in newest.items():
        lives = _owner_lives(token)
        if lives is False or (lives is None and OBSERVED.unchanged_for(token, key, now) >= ttl):
            stale.add(token)
    return stale


RELISTS = 5  # listings a read of the locks takes at most while their owners renew them under it


def read_locks(store: Store) -> list[LockRecord]:
    """Every lock object in the store. One listed and gone when read was deleted by its owner: released, or renewed,
    and a renewal writes the next object before it deletes the one before, so a listing made after the miss shows it.
    So the locks are listed again until a listing reads whole (a renewed lock is never taken for a released one)."""
    for _ in range(RELISTS):
        found, missed = _read_listed(store)
        if not missed:
            break
    return found


def _read_listed(store: Store) -> tuple[list[LockRecord], bool]:
    found, missed = [], False
    for key in store.list(LOCKS):
        try:
            data = json.loads(store.get(key))
            found.append(
                LockRecord(
                    key=key,
                    **{name: data[name] for name in ("token", "kind", "purpose", "host", "pid", "acquired")},
                )
            )
        except ObjectMissing:
            missed = True
        except (ValueError, KeyError, TypeError):
            continue  # not a lock this version wrote (or a torn write): it protects nothing, and is removed as stale
    return found, missed


def live_locks(store: Store) -> list[LockRecord]:
    """The locks that still hold; stale ones are deleted on the way, so the store does not collect them."""
    keys = set(store.list(LOCKS))
    records = read_locks(store)
    stale = stale_tokens(records, settings.store_lock_ttl())
    live = [record for record in records if record.token not in stale]
    gone = [record.key for record in records if record.token in stale]
    gone += sorted(keys - {record.key for record in records})  # unreadable: no owner can be told apart, holds nothing
    kept = set()
    for key in gone:
        try:
            store.delete(key)
        except StoreError:  # tidying only: a stale lock holds nothing whether it is deleted now or later
            kept.add(key)
    for token in stale - {record.token for record in records if record.key in kept}:
        _unregister(token)  # its note still tells runs here that a lock left behind holds nothing
    return live


class StoreLock:
    """One lock held in a store, renewed by a background thread while the holder lives."""

    def __init__(self, store: Store, kind: Kind, purpose: str) -> None:
        self.store, self.kind, self.purpose = store, kind, purpose
        self.token = secrets.token_hex(8)
        self.acquired = time.time()
        self.renewals = 0
        self.key: str | None = None
        self.last_renewed = 0.0
        self._last_monotonic = 0.0
        self.longest_gap = 0.0  # between two writes of the lock, on whichever clock saw more: frozen, or cut off
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()
        self.sweeps_seen: set[str] = set()

    def _write(self) -> str:
        key = f"{LOCKS}/{self.token}-{self.renewals:06d}.json"
        record = {
            "token": self.token,
            "kind": self.kind,
            "purpose": self.purpose,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "acquired": self.acquired,
            "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self.store.put(key, json.dumps(record).encode())
        if self.last_renewed:
            gap = max(time.monotonic() - self._last_monotonic, time.time() - self.last_renewed)
            self.longest_gap = max(self.longest_gap, gap)
        self.last_renewed, self._last_monotonic = time.time(), time.monotonic()
        return key

    def write(self) -> None:
        with self._mutex:
            HELD.add(self.token)
            _register(self.token)
            self.key = self._write()

    def renew(self) -> None:
        with self._mutex:
            if self.key is None:
                return
            self.renewals += 1
            previous, self.key = self.key, self._write()
            self.store.delete(previous)

    def _renew_loop(self) -> None:
        while not self._stop.wait(renew_seconds()):
            try:
                self.renew()
            except StoreError:
                continue  # the store did not answer; `held` says when the lock has lapsed

    def start_renewing(self) -> None:
        self._thread = threading.Thread(target=self._renew_loop, name=f"store-lock-{self.token}", daemon=True)
        self._thread.start()

    def silence(self) -> float:
        """The longest time others saw no renewal of this lock: between two writes, or since the last one."""
        since = max(time.monotonic() - self._last_monotonic, time.time() - self.last_renewed)
        return max(self.longest_gap, since)

    def held(self) -> bool:
        """Whether others have seen this lock live all along: never a longer silence than the TTL. One that lapsed
        once may have been taken as stale and swept around; renewing it afterwards does not undo that."""
        return self.key is not None and self.silence() <= settings.store_lock_ttl()

    def check_held(self, what: str, chunks: Iterable[str] = ()) -> None:
        """Refuse to make a result visible (a manifest) when others may already have taken the lock as stale, or
        when a clean-up started since the lock was taken (it did not see the lock, by whatever fault) and any of
        `chunks`, the keys the result references, is gone."""
        new_sweeps = set(sweep_marks(self.store)) - self.sweeps_seen
        if new_sweeps:
            missing = next((key for key in chunks if not self.store.exists(key)), None)
            if missing is not None:
                raise StoreError(
                    f"store {self.store.location}: {missing}, which {what} references, was deleted by a clean-up "
                    f"(sweep {sorted(new_sweeps)[0]}) that ran while the {self.kind} lock of {self.purpose} was "
                    f"held; {what} was not made. Run again."
                )
        if not self.held():
            raise StoreError(
                f"store {self.store.location}: the {self.kind} lock of {self.purpose} went {self.silence():.0f} s "
                f"without renewal (longer than INCARNATE_STORE_LOCK_TTL, {settings.store_lock_ttl():.0f} s: its "
                f"process or host was frozen, or the store did not answer), so a clean-up may have run meanwhile; "
                f"{what} was not made. Run again."
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._mutex:
            HELD.discard(self.token)
            for attempt in range(3):  # another run may be reading it this instant (SMB refuses deletes of open files)
                try:
                    if self.key is not None:
                        self.store.delete(self.key)
                    self.key = None
                    break
                except StoreError:
                    time.sleep(0.2 * (attempt + 1))
            if self.key is None:
                _unregister(self.token)  # else the note lets runs here see at once that it holds nothing
            self.key = None  # if it is still there, it goes stale: not renewed, and its owner's pid ends with the run

    def others(self) -> list[LockRecord]:
        return [record for record in live_locks(self.store) if record.token != self.token]


SWEEPS = "sweeps"  # a prune's chunk clean-up marks its start and end here: sweeps/<token>.started, sweeps/<token>.done
STARTED, DONE = ".started", ".done"


def sweep_marks(store: Store) -> dict[str, set[str]]:
    """The sweeps whose marks are in the store: token -> {".started", ".done"}."""
    marks: dict[str, set[str]] = {}
    for key in store.list(SWEEPS):
        name = key.rsplit("/", 1)[-1]
        for mark in (STARTED, DONE):
            if name.endswith(mark):
                marks.setdefault(name.removesuffix(mark), set()).add(mark)
    return marks


class _Waiting:
    """Waits between looks at the locks, short at first (most locks are held briefly), then longer."""

    def __init__(self, wait_seconds: float, say: Callable[[str], None]) -> None:
        self.deadline, self.say, self.said, self.pause = time.monotonic() + wait_seconds, say, set(), POLL_SECONDS[0]

    def wait(self, blockers: list[LockRecord], lock: StoreLock) -> None:
        if time.monotonic() > self.deadline:
            raise StoreBusy(
                f"store {lock.store.location} is busy: {blockers[0].describe()} holds it"
                f"{f' (and {len(blockers) - 1} more)' if len(blockers) > 1 else ''}; gave up waiting for "
                f"the {lock.kind} lock of {lock.purpose}. Nothing was written; run again later."
            )
        first = blockers[0].describe()
        if first not in self.said:
            self.said.add(first)
            self.say(f"store {lock.store.location}: waiting for the {first}")
        time.sleep(self.pause)
        self.pause = min(self.pause * 2, POLL_SECONDS[1])


@contextmanager
def shared_lock(
    store: Store, purpose: str, wait_seconds: float | None = None, say: Callable[[str], None] = lambda text: None
) -> Iterator[StoreLock]:
    """Held while snapshots are written or read: no chunk clean-up runs meanwhile."""
    lock = StoreLock(store, "shared", purpose)
    waiting = _Waiting(settings.store_lock_wait() if wait_seconds is None else wait_seconds, say)
    while True:
        exclusive = [record for record in lock.others() if record.kind == "exclusive"]
        if not exclusive:
            lock.write()
            exclusive = [record for record in lock.others() if record.kind == "exclusive"]
            if not exclusive:
                lock.sweeps_seen = set(sweep_marks(store))  # once held: a sweep marked later did not see the lock
                break
            lock.release()  # a clean-up announced itself meanwhile: writers give way
            lock = StoreLock(store, "shared", purpose)
        waiting.wait(exclusive, lock)
    lock.start_renewing()
    try:
        yield lock
    finally:
        lock.release()


@contextmanager
def exclusive_lock(
    store: Store, purpose: str, wait_seconds: float, say: Callable[[str], None] = lambda text: None
) -> Iterator[StoreLock]:
    """Held while chunks are deleted: no backup adds a reference to a chunk meanwhile, no restore reads one."""
    lock = StoreLock(store, "exclusive", purpose)
    lock.write()  # announces the clean-up at once: new writers wait for it
    lock.start_renewing()
    try:
        waiting = _Waiting(wait_seconds, say)
        while True:
            blockers = [
                record
                for record in lock.others()
                if record.kind == "shared" or (record.acquired, record.token) < (lock.acquired, lock.token)
            ]
            if not blockers:
                break
            waiting.wait(blockers, lock)
        yield lock
    finally:
        lock.release()
