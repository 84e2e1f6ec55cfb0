"""The restore decision: load an artifact only into an empty target, and leave it empty on failure."""

import io

import pytest

from incarnate.backup_format import SnapshotWriter, chunk_key, new_snapshot_prefix
from incarnate.errors import IntegrityError
from incarnate.stages.restore import load_if_empty
from incarnate.stores.local import LocalStore


@pytest.fixture
def snapshot_in_store(tmp_path):
    store = LocalStore(tmp_path)
    writer = SnapshotWriter(store, new_snapshot_prefix("acme"))
    writer.add("database-demo", "database", "demo", "mariadb", io.BytesIO(b"CREATE TABLE t (x INT);\n"))
    snapshot = writer.commit(
        stack="acme", product="demo", release="1.0.0", schema_version=1, config_commit=None, origin="backup"
    )
    return store, snapshot, snapshot.manifest.artifacts[0]


class Target:
    """A data source in memory: the decision is the same for every database and volume."""

    def __init__(self, content: bytes = b"", fail: bool = False):
        self.content, self.fail, self.resets = content, fail, 0

    def is_empty(self):
        return self.content == b""

    def load(self, raw):
        self.content = raw.read()
        if self.fail:
            raise RuntimeError("client died")

    def reset(self):
        self.content, self.resets = b"", self.resets + 1


def decide(target, store, snapshot, artifact):
    return load_if_empty(target, store, snapshot, artifact)


def test_empty_target_is_loaded(snapshot_in_store):
    target = Target()
    assert decide(target, *snapshot_in_store) == "loaded"
    assert target.content == b"CREATE TABLE t (x INT);\n"


def test_target_with_data_is_kept_untouched(snapshot_in_store):
    target = Target(b"live data")
    assert decide(target, *snapshot_in_store) == "kept (not empty)"
    assert target.content == b"live data" and target.resets == 0


def test_failed_load_empties_the_target_again(snapshot_in_store):
    target = Target(fail=True)
    with pytest.raises(RuntimeError):
        decide(target, *snapshot_in_store)
    assert target.content == b"" and target.resets == 1


def test_corrupt_artifact_is_reported_as_such_and_target_emptied(snapshot_in_store):
    store, snapshot, artifact = snapshot_in_store
    path = store.root / chunk_key(artifact.chunks[0][0])
    path.write_bytes(path.read_bytes()[:-3] + b"xyz")
    target = Target()
    with pytest.raises(IntegrityError, match=f"artifact {artifact.name}, chunk {artifact.chunks[0][0]}: corrupt"):
        decide(target, store, snapshot, artifact)
    assert target.content == b"" and target.resets == 1


def test_data_of_services_not_activated_is_named_apart_from_data_kept():
    from incarnate.stages.restore import ASIDE, KEPT, LOADED, describe_origin

    outcome = {"database-demo": LOADED, "volume-files": KEPT, "volume-pages": ASIDE}
    assert describe_origin("s1", outcome) == (
        "restored from s1 (kept existing volume-files; not loaded, their services not activated: volume-pages)"
    )
    assert describe_origin("s1", {"database-demo": KEPT, "volume-pages": ASIDE}) == (
        "kept existing data; snapshot s1 not loaded (not loaded, their services not activated: volume-pages)"
    )


def test_a_closing_backup_is_needed_unless_the_stack_runs_exactly_the_snapshots_data(snapshot_in_store):
    from incarnate.releases import ReleaseDescriptor
    from incarnate.stages.restore import ASIDE, KEPT, LOADED, runs_snapshot_data

    _, snapshot, _ = snapshot_in_store
    release = ReleaseDescriptor.model_validate(
        {
            "product": "demo",
            "release": "1.0.1",
            "schema_version": 1,
            "images": {"app": "demo/app:1.0.1", "db": "demo/db:1.0.1"},
            "data_services": ["db"],
            "databases": [{"name": "demo", "service": "db", "engine": "mariadb"}],
            "volumes": [{"name": "files"}],
            "health": {"service": "app", "path": "/health"},
        }
    ).activated([])
    both = {"database-demo": LOADED, "volume-files": LOADED}
    assert runs_snapshot_data(
        snapshot, both, release
    )  # a recovery, a rollback, a first install: the data is the snapshot's
    assert runs_snapshot_data(
        snapshot, {**both, "volume-archive": ASIDE}, release
    )  # a dormant service's data stays in it
    assert not runs_snapshot_data(snapshot, {**both, "volume-files": KEPT}, release)  # data of its own was kept
    assert not runs_snapshot_data(snapshot, {"database-demo": LOADED}, release)  # a volume started empty, not from it
    newer = release.model_copy(update={"schema_version": 2})
    assert not runs_snapshot_data(snapshot, both, newer)  # a migration changed the data
