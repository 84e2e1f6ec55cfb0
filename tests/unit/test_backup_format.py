import io
import json
import os
import random
import threading

import pytest

from incarnate.backup_format import (
    Manifest,
    SnapshotWriter,
    chunk_key,
    copy_snapshot,
    find_snapshot,
    list_snapshots,
    new_snapshot_prefix,
    restore_artifact,
    verify_snapshot,
)
from incarnate.errors import IntegrityError, StageError, StoreError
from incarnate.stores.local import LocalStore

FIELDS = {
    "stack": "acme",
    "product": "demo",
    "release": "1.0.0",
    "schema_version": 1,
    "config_commit": "abc",
    "origin": "backup",
}


def dump(rows: int, seed: int = 1, changed: set[int] = frozenset()) -> bytes:
    generator = random.Random(seed)
    return b"".join(
        f"INSERT INTO t VALUES ({i}, '{generator.getrandbits(64):x}{'changed' if i in changed else ''}');\n".encode()
        for i in range(rows)
    )


def make_snapshot(store, payload=None, files=b"tar bytes"):
    writer = SnapshotWriter(store, new_snapshot_prefix("acme"))
    writer.add("database-demo", "database", "demo", "mariadb", io.BytesIO(dump(20000) if payload is None else payload))
    writer.add("volume-files", "volume", "files", None, io.BytesIO(files))
    return writer.commit(**FIELDS), writer.stats


def read_back(store, snapshot, name):
    out = io.BytesIO()
    restore_artifact(store, snapshot, snapshot.manifest.artifact(name), lambda raw: out.write(raw.read()))
    return out.getvalue()


def test_manifest_lists_chunks_with_sizes_and_round_trips(tmp_path):
    store = LocalStore(tmp_path)
    payload = os.urandom(5 << 20)
    snapshot, _ = make_snapshot(store, payload)
    stored = json.loads((tmp_path / snapshot.prefix / "manifest.json").read_text())
    assert Manifest.model_validate(stored) == snapshot.manifest
    artifact = snapshot.manifest.artifact("database-demo")
    assert artifact.size == len(payload) == sum(length for _, length in artifact.chunks)
    assert 2 <= len(artifact.chunks) <= 20  # about 1 MiB each
    assert all((tmp_path / chunk_key(chunk_id)).is_file() for chunk_id, _ in artifact.chunks)
    assert read_back(store, snapshot, "database-demo") == payload


def test_unchanged_data_is_stored_once_and_small_changes_cost_little(tmp_path):
    store = LocalStore(tmp_path)
    first, first_stats = make_snapshot(store, dump(400000))
    again, again_stats = make_snapshot(store, dump(400000))
    assert again_stats.new_bytes == 0 and again.manifest.artifacts == first.manifest.artifacts
    _, changed_stats = make_snapshot(store, dump(400000, changed={10, 300000}))
    assert 0 < changed_stats.new_bytes < first_stats.new_bytes / 3


def test_folder_without_manifest_is_not_a_snapshot(tmp_path):
    store = LocalStore(tmp_path)
    complete, _ = make_snapshot(store)
    writer = SnapshotWriter(store, "backups/acme/29991231T000000Z-ffffff")
    writer.add("database-demo", "database", "demo", "mariadb", io.BytesIO(b"half a backup"))
    assert [s.id for s in list_snapshots(store, "acme")] == [complete.id]
    assert find_snapshot(store, "acme").id == complete.id


def test_newest_snapshot_is_chosen_and_a_named_one_can_be(tmp_path):
    store = LocalStore(tmp_path)
    (first, _), (second, _) = make_snapshot(store), make_snapshot(store)
    assert find_snapshot(store, "acme").id == max(first.id, second.id)
    assert find_snapshot(store, "acme", first.id).id == first.id
    assert find_snapshot(store, "other") is None
    with pytest.raises(StoreError, match="no complete snapshot nope"):
        find_snapshot(store, "acme", "nope")


def corrupt(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))


def test_corrupt_chunk_is_named_by_snapshot_artifact_and_chunk(tmp_path):
    store = LocalStore(tmp_path)
    snapshot, _ = make_snapshot(store)
    chunk_id = snapshot.manifest.artifact("database-demo").chunks[0][0]
    corrupt(tmp_path / chunk_key(chunk_id))
    expected = rf"snapshot {snapshot.id}, artifact database-demo, chunk {chunk_id}: corrupt"
    with pytest.raises(IntegrityError, match=expected):
        read_back(store, snapshot, "database-demo")
    assert len(verify_snapshot(store, snapshot)) == 1


def test_verify_reports_missing_and_corrupt_chunks(tmp_path):
    store = LocalStore(tmp_path)
    snapshot, _ = make_snapshot(store, os.urandom(3 << 20))
    assert verify_snapshot(store, snapshot) == []
    chunks = [chunk_id for chunk_id, _ in snapshot.manifest.artifact("database-demo").chunks]
    (tmp_path / chunk_key(chunks[0])).unlink()
    corrupt(tmp_path / chunk_key(chunks[-1]))
    problems = verify_snapshot(store, snapshot)
    assert len(problems) == 2
    assert f"artifact database-demo, chunk {chunks[0]}: missing" in problems[0]
    assert f"artifact database-demo, chunk {chunks[-1]}: corrupt" in problems[1]


def test_copy_verifies_and_gives_a_new_snapshot(tmp_path):
    source, target = LocalStore(tmp_path / "a"), LocalStore(tmp_path / "b")
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    snapshot, _ = make_snapshot(source)
    copied = copy_snapshot(source, snapshot, target, "beta", origin="vanilla")
    assert copied.prefix.startswith("backups/beta/")
    assert copied.manifest.artifacts == snapshot.manifest.artifacts
    assert (copied.manifest.stack, copied.manifest.origin) == ("beta", "vanilla")
    assert read_back(target, copied, "volume-files") == b"tar bytes"


def test_stored_objects_are_written_once(tmp_path):
    store = LocalStore(tmp_path)
    assert store.put("x/y", b"1") is True
    assert store.put("x/y", b"2") is False
    assert store.get("x/y") == b"1"
    with pytest.raises(StoreError, match="leave the store"):
        store.exists("../etc/passwd")


def test_missing_store_directory_is_reported_not_created(tmp_path):
    store = LocalStore(tmp_path / "not-mounted")
    with pytest.raises(StoreError, match="does not exist or is not mounted"):
        store.put("x", b"1")
    assert not (tmp_path / "not-mounted").exists()


def damage_manifest(store, snapshot, text: bytes) -> None:
    path = store.root / snapshot.prefix / "manifest.json"
    path.unlink()
    path.write_bytes(text)


@pytest.mark.parametrize(
    "damage",
    [b"{not json", json.dumps({"format": 99, "stack": "acme", "future": True}).encode()],
    ids=["unparsable", "newer-format"],
)
def test_a_bad_newest_manifest_is_skipped_and_named_and_the_newest_good_snapshot_chosen(tmp_path, damage, capsys):
    store = LocalStore(tmp_path)
    good, _ = make_snapshot(store, b"good")
    bad, _ = make_snapshot(store, b"newer")
    damage_manifest(store, bad, damage)
    assert find_snapshot(store, "acme").id == good.id
    assert [snapshot.id for snapshot in list_snapshots(store, "acme")] == [good.id]
    assert bad.id in capsys.readouterr().out  # reported by name where the choice is made


def test_restoring_a_snapshot_whose_manifest_is_from_a_newer_format_says_why_it_cannot(tmp_path):
    store = LocalStore(tmp_path)
    snapshot, _ = make_snapshot(store)
    damage_manifest(store, snapshot, json.dumps({"format": 99, "stack": "acme"}).encode())
    with pytest.raises(IntegrityError, match=f"{snapshot.id}.*format 99.*newer incarnate"):
        find_snapshot(store, "acme", snapshot.id)


def test_a_restore_told_to_stop_ends_at_the_next_chunk_naming_what_it_was_restoring(tmp_path):
    store = LocalStore(tmp_path)
    snapshot, _ = make_snapshot(store, os.urandom(8 << 20))
    stop, consumed = threading.Event(), []

    def consume(raw) -> None:
        consumed.append(raw.read(1 << 20))
        stop.set()  # another artifact's load failed meanwhile
        raw.read()

    with pytest.raises(
        StageError, match=rf"^snapshot {snapshot.id}, artifact database-demo: stopped, another artifact"
    ):
        restore_artifact(store, snapshot, snapshot.manifest.artifact("database-demo"), consume, stop)
    assert len(consumed[0]) == 1 << 20


@pytest.mark.parametrize(
    "damage",
    [b"{not json", json.dumps({"format": 99, "stack": "acme", "future": True}).encode()],
    ids=["unparsable", "newer-format"],
)
def test_a_stack_whose_every_snapshot_is_unreadable_is_refused_never_taken_for_one_without_snapshots(tmp_path, damage):
    """The caller would seed and restore the vanilla backup for a stack without snapshots: an empty app, healthy,
    after a disaster. Unreadable snapshots are a refusal (exit 2) naming each and why."""
    store = LocalStore(tmp_path)
    older, _ = make_snapshot(store, b"older")
    newer, _ = make_snapshot(store, b"newer")
    for snapshot in (older, newer):
        damage_manifest(store, snapshot, damage)
    with pytest.raises(IntegrityError) as refused:
        find_snapshot(store, "acme")
    assert refused.value.exit_code == 2
    message = str(refused.value)
    assert older.id in message and newer.id in message and "vanilla" in message and "Nothing was changed" in message
    assert find_snapshot(store, "other-stack") is None  # a stack with no snapshot at all: the vanilla backup's turn
