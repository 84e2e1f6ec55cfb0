"""Backups, stack files and state are private to root whatever the umask: nothing readable by other users."""

import io
import os
import stat

import pytest

from incarnate.backup_format import SnapshotWriter, new_snapshot_prefix
from incarnate.compose import ComposeProject
from incarnate.host import Host


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def open_to_others(root) -> list[str]:
    """Every path below (and including) root that a user other than its owner could read, list or enter."""
    paths = [root, *root.rglob("*")]
    return [f"{path} {stat.filemode(path.stat().st_mode)}" for path in paths if path.stat().st_mode & 0o077]


def test_a_backup_into_a_local_store_is_private_under_umask_022(tmp_path, umask_022):
    store_root = tmp_path / "store"
    from incarnate.stores.local import LocalStore

    store_root.mkdir(mode=0o700)
    with SnapshotWriter(LocalStore(store_root), new_snapshot_prefix("acme")) as writer:
        writer.add(
            "database-demo", "database", "demo", "mariadb", io.BytesIO(b"INSERT INTO secrets VALUES (1);\n" * 1000)
        )
        writer.commit(
            stack="acme", product="demo", release="1.0.0", schema_version=1, config_commit=None, origin="backup"
        )
    assert open_to_others(store_root) == []


def test_a_stacks_files_are_private_under_umask_022(tmp_path, umask_022):
    project = ComposeProject(host=Host(), name="acme", workdir=tmp_path / "stacks" / "acme")
    project.write_files(b"services: {}\n", {"DB_PASSWORD": "s3cret"})
    assert open_to_others(tmp_path / "stacks") == []
