import io
import time
from datetime import UTC, datetime, timedelta

from incarnate.backup_format import VOLUMES, Manifest, Snapshot, SnapshotWriter, list_snapshots
from incarnate.config import Retention
from incarnate.retention import prune, select_kept
from incarnate.stores.local import LocalStore

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


def fake(created: datetime) -> Snapshot:
    manifest = Manifest(
        stack="acme",
        product="demo",
        release="1.0.0",
        schema_version=1,
        config_commit=None,
        origin="backup",
        created_at=created.isoformat(),
        artifacts=[],
    )
    return Snapshot(prefix=f"backups/acme/{created:%Y%m%dT%H%M%SZ}-000000", manifest=manifest)


def nightly(days: int) -> list[Snapshot]:
    return [fake(NOW - timedelta(days=day, hours=1)) for day in range(days)]


def test_keeps_newest_of_each_recent_day_week_and_month():
    snapshots = nightly(200)
    kept = select_kept(snapshots, Retention(keep_daily=7, keep_weekly=4, keep_monthly=6, min_age_days=0), NOW)
    days = sorted({(NOW - s.manifest.created()).days for s in snapshots if s.id in kept})
    assert days[:7] == [0, 1, 2, 3, 4, 5, 6]
    assert len(kept) <= 7 + 4 + 6
    assert max(days) > 140  # six months back


def test_two_backups_in_a_day_keep_only_the_later_one():
    early, late = fake(NOW - timedelta(hours=10)), fake(NOW - timedelta(hours=2))
    policy = Retention(keep_daily=1, keep_weekly=0, keep_monthly=0, min_age_days=0)
    assert select_kept([early, late], policy, NOW) == {late.id}


def test_min_age_protects_young_snapshots_and_the_newest_is_always_kept():
    snapshots = nightly(5)
    assert len(select_kept(snapshots, Retention(keep_daily=0, keep_weekly=0, keep_monthly=0, min_age_days=3), NOW)) == 3
    assert select_kept(snapshots, Retention(keep_daily=0, keep_weekly=0, keep_monthly=0, min_age_days=0), NOW) == {
        snapshots[0].id
    }


def backed_up(store, payload: bytes, root: str = "backups") -> Snapshot:
    writer = SnapshotWriter(store, f"{root}/acme/{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}")
    if root == "backups":
        writer.add("database-demo", "database", "demo", "mariadb", io.BytesIO(payload))
    else:
        writer.add("volume-files", "volume", "files", None, io.BytesIO(payload))
    return writer.commit(
        stack="acme",
        product="demo",
        release="1.0.0",
        schema_version=1,
        config_commit=None,
        origin="backup" if root == "backups" else "volumes",
    )


def test_snapshots_of_volumes_keep_their_chunks_until_they_are_older_than_every_kept_snapshot(tmp_path):
    store = LocalStore(tmp_path)
    old_volumes = backed_up(store, b"files before every kept backup " * 1000, "volumes")
    time.sleep(1.0)  # manifests say when they were taken to the second
    old = backed_up(store, b"old data " * 1000)
    new = backed_up(store, b"new data " * 1000)
    volumes = backed_up(store, b"files after the backup " * 1000, "volumes")
    policy = Retention(keep_daily=1, keep_weekly=0, keep_monthly=0, min_age_days=0)

    done = prune(store, "acme", policy)
    assert done.forgotten == [old.id] and done.volume_snapshots_forgotten == 1
    assert done.chunks_deleted == 2  # the old backup's and the old volumes': never the newer volumes' chunk
    assert [s.id for s in list_snapshots(store, "acme", VOLUMES)] == [volumes.id]
    assert [s.id for s in list_snapshots(store, "acme")] == [new.id]
    assert "forgot 1 snapshots of volumes" in done.summary()
    assert old_volumes.id not in {s.id for s in list_snapshots(store, "acme", VOLUMES)}


def test_prune_forgets_old_snapshots_then_their_unreferenced_chunks_and_dry_run_changes_nothing(tmp_path):
    store = LocalStore(tmp_path)
    old, new = backed_up(store, b"old data " * 1000), backed_up(store, b"new data " * 1000)
    policy = Retention(keep_daily=1, keep_weekly=0, keep_monthly=0, min_age_days=0)
    before = sorted(p for p in tmp_path.rglob("*") if p.is_file())

    planned = prune(store, "acme", policy, dry_run=True)
    assert (planned.forgotten, planned.kept, planned.chunks_deleted) == ([old.id], [new.id], 1)
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == before

    done = prune(store, "acme", policy)
    assert done.forgotten == [old.id] and done.chunks_deleted == 1
    assert [s.id for s in list_snapshots(store, "acme")] == [new.id]
    assert "forgot 1" in done.summary()


def test_prune_leaves_chunks_alone_while_a_backup_is_under_way(tmp_path):
    store = LocalStore(tmp_path)
    backed_up(store, b"a" * 5000)
    backed_up(store, b"b" * 5000)
    with SnapshotWriter(store, "backups/acme/29990101T000000Z-running") as running:
        running.add("database-demo", "database", "demo", "mariadb", io.BytesIO(b"c" * 5000))
        result = prune(
            store, "acme", Retention(keep_daily=1, keep_weekly=0, keep_monthly=0, min_age_days=0), wait_seconds=1
        )
    assert "busy" in result.clean_up_skipped and result.chunks_deleted == 0
    assert "forgot 1" in result.summary() and "chunk clean-up skipped" in result.summary()
    assert (
        len([key for key in store.list("chunks")]) == 3
    )  # the forgotten snapshot's chunk and the running backup's stay


class LockingStore(LocalStore):
    """A local store that pretends a server lock, to test that pruning obeys locks (Azure's real
    locking is not available in Azurite; the decision logic is the same for every store)."""

    def __init__(self, root, locked: set[str]):
        super().__init__(root)
        self.locked = locked

    def locked_until(self, key):
        return NOW + timedelta(days=30) if key in self.locked else None


def test_prune_never_deletes_what_is_still_locked(tmp_path):
    plain = LocalStore(tmp_path)
    old = backed_up(plain, b"locked data " * 1000)
    new = backed_up(plain, b"fresh data " * 1000)
    chunk = f"chunks/{old.manifest.artifacts[0].chunks[0][0][:2]}/{old.manifest.artifacts[0].chunks[0][0]}"
    store = LockingStore(tmp_path, {f"{old.prefix}/manifest.json", chunk})
    result = prune(store, "acme", Retention(keep_daily=1, keep_weekly=0, keep_monthly=0, min_age_days=0))
    assert result.locked_snapshots == [old.id] and result.forgotten == []
    assert {s.id for s in list_snapshots(store, "acme")} == {old.id, new.id}
    assert store.exists(chunk)


def test_prune_deletes_no_chunk_while_any_manifest_in_the_store_cannot_be_read(tmp_path):
    """An unreadable manifest (damaged, or from a newer incarnate) may reference any chunk: a sweep would destroy
    it."""
    store = LocalStore(tmp_path)
    old, _ = backed_up(store, b"old data " * 1000), backed_up(store, b"new data " * 1000)
    other = SnapshotWriter(store, "backups/other/20261125T020000Z-aaaaaa")
    other.add("volume-files", "volume", "files", None, io.BytesIO(b"other stack's data " * 1000))
    other_snapshot = other.commit(
        stack="other", product="demo", release="1.0.0", schema_version=1, config_commit=None, origin="backup"
    )
    (tmp_path / other_snapshot.prefix / "manifest.json").unlink()
    (tmp_path / other_snapshot.prefix / "manifest.json").write_text('{"format": 99}')
    done = prune(store, "acme", Retention(keep_daily=1, keep_weekly=0, keep_monthly=0, min_age_days=0))
    assert done.forgotten == [old.id] and done.chunks_deleted == 0
    assert "cannot be read" in done.summary() and other_snapshot.id in done.summary()
