import io
import json

import pytest

from incarnate.errors import IntegrityError, StoreError
from incarnate.snapshots import (
    Manifest, copy_snapshot, find_snapshot, list_snapshots, new_snapshot_prefix, restore_artifact, writing_snapshot,
)
from incarnate.stores.local import LocalStore

FIELDS = {"stack": "acme", "product": "demo", "release": "1.0.0", "schema_version": 1, "config_commit": "abc", "origin": "backup"}


def make_snapshot(store, payload=b"INSERT INTO t VALUES (1);\n" * 1000):
    with writing_snapshot(store, new_snapshot_prefix("acme")) as writer:
        writer.add("database-demo.sql.zst", "database", "demo", "mariadb", io.BytesIO(payload))
        writer.add("volume-files.tar.zst", "volume", "files", None, io.BytesIO(b"tar bytes"))
        return writer.commit(**FIELDS)


def read_back(store, snapshot, name):
    out = io.BytesIO()
    restore_artifact(store, snapshot, snapshot.manifest.artifact(name), lambda raw: out.write(raw.read()))
    return out.getvalue()


def test_manifest_records_sizes_and_checksums_and_round_trips(tmp_path):
    store = LocalStore(tmp_path)
    payload = b"row\n" * 5000
    snapshot = make_snapshot(store, payload)
    stored = json.loads((tmp_path / snapshot.prefix / "manifest.json").read_text())
    assert Manifest.model_validate(stored) == snapshot.manifest
    artifact = snapshot.manifest.artifact("database-demo.sql.zst")
    assert artifact.raw_size == len(payload)
    assert artifact.size == (tmp_path / snapshot.prefix / artifact.name).stat().st_size < len(payload)
    assert read_back(store, snapshot, artifact.name) == payload


def test_folder_without_manifest_is_not_a_snapshot(tmp_path):
    store = LocalStore(tmp_path)
    complete = make_snapshot(store)
    (tmp_path / "backups/acme/29991231T000000Z-ffffff").mkdir()
    (tmp_path / "backups/acme/29991231T000000Z-ffffff/database-demo.sql.zst").write_bytes(b"half")
    assert [s.id for s in list_snapshots(store, "acme")] == [complete.id]
    assert find_snapshot(store, "acme").id == complete.id


def test_newest_snapshot_is_chosen_and_a_named_one_can_be(tmp_path):
    store = LocalStore(tmp_path)
    first, second = make_snapshot(store), make_snapshot(store)
    assert find_snapshot(store, "acme").id == max(first.id, second.id)
    assert find_snapshot(store, "acme", first.id).id == first.id
    assert find_snapshot(store, "other") is None
    with pytest.raises(StoreError, match="no complete snapshot nope"):
        find_snapshot(store, "acme", "nope")


def test_failed_backup_leaves_no_snapshot_and_no_artifacts(tmp_path):
    store = LocalStore(tmp_path)

    class Broken(io.RawIOBase):
        def read(self, size=-1):
            raise OSError("dump died")

    with pytest.raises(OSError):
        with writing_snapshot(store, new_snapshot_prefix("acme")) as writer:
            writer.add("volume-files.tar.zst", "volume", "files", None, io.BytesIO(b"ok"))
            writer.add("database-demo.sql.zst", "database", "demo", "mariadb", Broken())
    assert list_snapshots(store, "acme") == []
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_corrupt_artifact_is_named_and_refused(tmp_path):
    store = LocalStore(tmp_path)
    snapshot = make_snapshot(store)
    path = tmp_path / snapshot.prefix / "database-demo.sql.zst"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=rf"artifact database-demo.sql.zst of snapshot {snapshot.id} .*checksum mismatch"):
        read_back(store, snapshot, "database-demo.sql.zst")


def test_copy_verifies_and_gives_a_new_snapshot(tmp_path):
    source, target = LocalStore(tmp_path / "a"), LocalStore(tmp_path / "b")
    snapshot = make_snapshot(source)
    copied = copy_snapshot(source, snapshot, target, "beta", origin="vanilla")
    assert copied.prefix.startswith("backups/beta/")
    assert copied.manifest.artifacts == snapshot.manifest.artifacts
    assert (copied.manifest.stack, copied.manifest.origin) == ("beta", "vanilla")
    assert read_back(target, copied, "volume-files.tar.zst") == b"tar bytes"


def test_stored_objects_are_written_once(tmp_path):
    store = LocalStore(tmp_path)
    with store.open_write("x/y") as handle:
        handle.write(b"1")
    with pytest.raises(StoreError, match="written once"):
        with store.open_write("x/y") as handle:
            handle.write(b"2")
    with pytest.raises(StoreError, match="leave the store"):
        store.exists("../etc/passwd")
