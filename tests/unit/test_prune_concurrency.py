"""Pruning one stack while other stacks back up into the same store (the nightly window of a shared store)."""

import io
import os
import random
import threading
import time

from incarnate.backup_format import SnapshotWriter, list_snapshots, new_snapshot_prefix, verify_snapshot
from incarnate.config import Retention
from incarnate.retention import prune
from incarnate.stores.local import LocalStore
from incarnate.stores.locking import StoreLock, exclusive_lock, live_locks

FORGET_ALL_BUT_NEWEST = Retention(keep_daily=0, keep_weekly=0, keep_monthly=0, min_age_days=0)


class NetworkLatencyStore(LocalStore):
    """A real directory store answering with the latency of a network store (SMB, Azure), so that runs overlap
    as they do there."""

    def delete(self, key: str) -> None:
        time.sleep(0.004)
        super().delete(key)

    def list(self, prefix: str) -> list[str]:
        time.sleep(0.01)
        return super().list(prefix)


def snapshot_of(store, stack: str, payload: bytes):
    writer = SnapshotWriter(store, new_snapshot_prefix(stack))
    writer.add("volume-files", "volume", "files", None, io.BytesIO(payload))
    return writer.commit(
        stack=stack, product="demo", release="1.0.0", schema_version=1, config_commit=None, origin="backup"
    )


def backups_while_pruning(store, rounds: int, size: int = 6 << 20) -> tuple[list[str], list[str]]:
    """Stack A's old snapshot holds data that stack B backs up just while A is pruned: B finds A's chunks present
    and does not upload them again, A's prune forgets its snapshot and sweeps. (failures, missing or bad chunks of
    B's snapshots, as `verify --all` would list them)."""
    rng, failures = random.Random(7), []
    for _ in range(rounds):
        shared = os.urandom(size)
        snapshot_of(store, "a", shared)
        snapshot_of(store, "a", os.urandom(1 << 16))  # newer, so retention forgets the one holding `shared`

        def back_up_b(delay: float = rng.uniform(0, 0.06), shared: bytes = shared) -> None:
            time.sleep(delay)
            try:
                snapshot_of(store, "b", shared)
            except Exception as error:  # noqa: BLE001 - every failure is reported below
                failures.append(f"backup of b: {error!r}")

        at_once(back_up_b, lambda: prune_a(store, failures))
    return failures, problems_of(store, "b")


def prune_a(store, failures: list[str]) -> None:
    """Stack a's retention (all but its newest snapshot), a failure reported in `failures`."""
    try:
        prune(store, "a", FORGET_ALL_BUT_NEWEST)
    except Exception as error:  # noqa: BLE001 - every failure is reported
        failures.append(f"prune of a: {error!r}")


def at_once(*work) -> None:
    threads = [threading.Thread(target=target) for target in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def problems_of(store, stack: str | None = None) -> list[str]:
    """The missing or bad chunks of the stack's snapshots (every stack's: None), as `verify --all` lists them."""
    return [problem for snapshot in list_snapshots(store, stack) for problem in verify_snapshot(store, snapshot)]


def test_prune_never_deletes_chunks_that_a_concurrent_backup_of_another_stack_reuses(tmp_path):
    failures, problems = backups_while_pruning(NetworkLatencyStore(tmp_path), rounds=30)
    assert failures == []
    assert problems == [], f"{len(problems)} missing or bad chunks, first: {problems[0]}"


def test_many_stacks_backing_up_and_pruning_at_once_never_fail_a_prune(tmp_path):
    """Sixteen stacks in one store, each backing up and then pruning, all at once: no prune fails because another
    stack's backup committed (and cleaned up after itself) while the prune looked at the store."""
    store, failures = NetworkLatencyStore(tmp_path), []

    def nightly(stack: str) -> None:
        for night in range(3):
            try:
                snapshot_of(store, stack, os.urandom(1 << 18) + b"common" * 10000)
                prune(store, stack, FORGET_ALL_BUT_NEWEST)
            except Exception as error:  # noqa: BLE001
                failures.append(f"{stack} night {night}: {error!r}")

    at_once(*(lambda stack=f"s{number}": nightly(stack) for number in range(16)))
    assert failures == []
    assert problems_of(store) == []


def test_prunes_queued_behind_a_clean_up_that_began_after_they_forgot_are_served_by_it(tmp_path):
    """At 02:00 the prunes of many stacks queue for the exclusive lock; one sweep that began once they had
    forgotten their snapshots deletes all their chunks, and the others let the backups go on at once."""
    store = LocalStore(tmp_path)
    old_chunks = set()
    for stack in ("a", "b", "c"):
        old_chunks |= snapshot_of(store, stack, os.urandom(1 << 20)).manifest.chunk_ids()
        snapshot_of(store, stack, os.urandom(1 << 16))
    results = {}

    def prune_stack(stack: str) -> None:
        results[stack] = prune(store, stack, FORGET_ALL_BUT_NEWEST)

    with exclusive_lock(store, "a clean-up under way", wait_seconds=5):
        threads = [threading.Thread(target=prune_stack, args=(stack,)) for stack in ("a", "b", "c")]
        for thread in threads:
            thread.start()
        while sum(record.kind == "exclusive" for record in live_locks(store)) < 4:  # all three forgot and queued
            time.sleep(0.01)
    for thread in threads:
        thread.join()

    sweepers = [stack for stack, result in results.items() if result.swept_by is None]
    assert len(sweepers) == 1
    assert results[sweepers[0]].chunks_deleted == len(old_chunks)
    for stack, result in results.items():
        if stack not in sweepers:
            assert result.chunks_deleted == 0 and result.clean_up_skipped is None
            assert "the store was swept after this prune forgot its snapshots, by sweep " in result.summary()
    assert not any(store.exists(f"chunks/{chunk[:2]}/{chunk}") for chunk in old_chunks)

    # A prune that forgets after that sweep ended sweeps again: the sweep it saw did not read its deletions.
    leftover = snapshot_of(store, "a", os.urandom(1 << 18)).manifest.chunk_ids()
    snapshot_of(store, "a", os.urandom(1 << 16))
    again = prune(store, "a", FORGET_ALL_BUT_NEWEST)
    assert again.swept_by is None and not any(store.exists(f"chunks/{chunk[:2]}/{chunk}") for chunk in leftover)
    assert len(store.list("sweeps")) == 2  # only the newest sweep's marks stay


class RenewsWhileRead(LocalStore):
    """A store in which the owner of a lock renews it just as another run reads it: the object listed is gone by the
    time it is read (renewal writes the next object, then deletes the one before)."""

    def __init__(self, root, owner: StoreLock) -> None:
        super().__init__(root)
        self.owner, self.renewed = owner, False

    def get(self, key: str) -> bytes:
        if key.startswith("locks/") and key == self.owner.key and not self.renewed:
            self.renewed = True
            self.owner.renew()
        return super().get(key)


def test_a_lock_renewed_while_it_is_read_is_still_seen(tmp_path):
    """Seen by the reader that listed the old object and read it after the renewal deleted it: a prune that missed
    it would sweep the chunks the lock's backup reuses."""
    owner = StoreLock(LocalStore(tmp_path), "shared", "backup of b")
    owner.write()
    store = RenewsWhileRead(tmp_path, owner)
    owner.store = store
    assert [record.token for record in live_locks(store)] == [owner.token]
    assert store.renewed


def test_prune_waits_for_a_backup_that_reuses_its_chunks_for_longer_than_a_renewal(tmp_path, monkeypatch):
    """Stack B has found A's chunks in the store and reuses them; before it commits, its shared lock is renewed
    several times while A prunes. The prune's clean-up must wait for it: had it not (forced in a mutation, it did
    not), B's snapshot would reference deleted chunks."""
    monkeypatch.setenv("INCARNATE_STORE_LOCK_TTL", "1")  # renewed every 0.2 s
    store, failures = NetworkLatencyStore(tmp_path), []
    for _ in range(8):
        shared = os.urandom(2 << 20)
        snapshot_of(store, "a", shared)
        snapshot_of(store, "a", os.urandom(1 << 16))  # newer, so retention forgets the one holding `shared`
        reused = threading.Event()

        def back_up_b(shared: bytes = shared, reused: threading.Event = reused) -> None:
            try:
                writer = SnapshotWriter(store, new_snapshot_prefix("b"))
                writer.add("volume-files", "volume", "files", None, io.BytesIO(shared))  # A's chunks: present
                reused.set()
                time.sleep(0.7)  # several renewals of its shared lock while A prunes
                writer.commit(
                    stack="b", product="demo", release="1.0.0", schema_version=1, config_commit=None, origin="backup"
                )
            except Exception as error:  # noqa: BLE001 - every failure is reported below
                failures.append(f"backup of b: {error!r}")
            finally:
                reused.set()

        def prune_once_reused(reused: threading.Event = reused) -> None:
            reused.wait()
            prune_a(store, failures)

        at_once(back_up_b, prune_once_reused)
    assert failures == []
    problems = problems_of(store, "b")
    assert problems == [], f"{len(problems)} missing or bad chunks, first: {problems[0]}"
