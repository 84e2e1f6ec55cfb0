"""Store-wide locks, kept in the store itself so that they hold between machines (two DevOps laptops, the
Prefect server's worker, a worker on each host), as restic does:

    locks/<token>-<renewal>.json      {"kind": "shared" | "exclusive", "purpose", "host", "machine", "pid", ...}

Every run that writes or reads snapshots (a backup, a copy of the vanilla backup, a restore, a verify) holds a
*shared* lock; the chunk clean-up of prune holds the *exclusive* one. Objects are create-only, so a lock is
renewed by writing its next object and deleting the one before. A lock is stale, and ignored, when it was not
renewed for TTL seconds (its owner is gone or cut off), or at once when its owner was a process on this machine
that no longer lives (a killed run).

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Literal

from incarnate import settings
from incarnate.errors import ObjectMissing, StoreError
from incarnate.stores import Store

LOCKS = "locks"
Kind = Literal["shared", "exclusive"]


def renew_seconds() -> float:
    return max(settings.store_lock_ttl() / 10, 0.2)


HELD: set[str] = set()  # tokens of the locks this process holds now
POLL_SECONDS = (0.05, 2.0)  # first and longest pause between two looks at the locks; each pause doubles


class StoreBusy(StoreError):
    """The store's lock could not be had in time; nothing was written."""


@cache
def this_machine() -> str:
    """Tells this machine apart from another with the same host name (a cloned VM)."""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            return open(path).read().strip()
        except OSError:
            continue
    return socket.gethostname()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class LockRecord:
    key: str
    token: str
    kind: Kind
    purpose: str
    host: str
    machine: str
    pid: int
    acquired: float  # when its owner first wrote it (orders exclusive locks)
    renewed: float  # when this object was written

    def describe(self) -> str:
        return f"{self.kind} lock of {self.purpose} (host {self.host}, pid {self.pid})"

    def stale(self, now: float, ttl: float) -> bool:
        if now - self.renewed > ttl:
            return True
        if self.machine != this_machine():
            return False
        if self.pid == os.getpid():
            return self.token not in HELD  # this process released it, but could not delete the object
        return not _pid_alive(self.pid)


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
                    **{
                        name: data[name]
                        for name in ("token", "kind", "purpose", "host", "machine", "pid", "acquired", "renewed")
                    },
                )
            )
        except ObjectMissing:
            missed = True
        except (ValueError, KeyError, TypeError):
            continue  # not a lock this version wrote (or a torn write): it protects nothing, and is removed as stale
    return found, missed


def live_locks(store: Store) -> list[LockRecord]:
    """The locks that still hold; stale ones are deleted on the way, so the store does not collect them."""
    now, ttl = time.time(), settings.store_lock_ttl()
    keys = set(store.list(LOCKS))
    records = read_locks(store)
    gone = [record.key for record in records if record.stale(now, ttl)]
    live = [record for record in records if record.key not in gone]
    gone += sorted(
        keys - {record.key for record in records}
    )  # unreadable: no owner can be told apart, so it holds nothing
    for key in gone:
        with suppress(StoreError):  # tidying only: a stale lock holds nothing whether it is deleted now or later
            store.delete(key)
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

    def _write(self) -> str:
        now = time.time()
        key = f"{LOCKS}/{self.token}-{self.renewals:06d}.json"
        record = {
            "token": self.token,
            "kind": self.kind,
            "purpose": self.purpose,
            "host": socket.gethostname(),
            "machine": this_machine(),
            "pid": os.getpid(),
            "acquired": self.acquired,
            "renewed": now,
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

    def check_held(self, what: str) -> None:
        """Refuse to make a result visible (a manifest) when others may already have taken the lock as stale."""
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
                    break
                except StoreError:
                    time.sleep(0.2 * (attempt + 1))
            self.key = None  # if it is still there, it goes stale: not renewed, and its owner's pid ends with the run

    def others(self) -> list[LockRecord]:
        return [record for record in live_locks(self.store) if record.token != self.token]


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
