"""Which snapshot of volumes a recovery restores files from: the newest at or before its time in the history live
then, of the base's release, else the one that history began with; never one of an abandoned branch."""

from datetime import UTC, datetime, timedelta

import pytest

from incarnate.backup_format import Manifest, Snapshot
from incarnate.errors import IntegrityError
from incarnate.log_archive import DatabaseStart, HistoryStart, record_history
from incarnate.stages.fetch_backup import volumes_for
from incarnate.stores.local import LocalStore

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def taken(store, root: str, minutes: int, release: str = "1.0.0") -> Snapshot:
    """A snapshot (no artifact needed to choose one) whose manifest says it was taken `minutes` after T0."""
    origin = "backup" if root == "backups" else "volumes"
    manifest = Manifest(
        stack="acme", product="demo", release=release, schema_version=1, config_commit=None, origin=origin,
        created_at=at(minutes).isoformat(), artifacts=[],
    )  # fmt: skip
    prefix = f"{root}/acme/{at(minutes):%Y%m%dT%H%M%S%fZ}-{release}"
    store.put(f"{prefix}/manifest.json", manifest.model_dump_json().encode())
    return Snapshot(prefix=prefix, manifest=manifest)


def began(store, minutes: int, snapshot: str, history: int, volumes: str | None = None) -> None:
    start = HistoryStart(
        stack="acme", began_at=at(minutes).isoformat(), snapshot=snapshot, at=None, volumes=volumes,
        databases={"database-demo": DatabaseStart(first=f"mariadb-bin.{history * 100000 + 1:06d}", replayed=[])},
    )  # fmt: skip
    record_history(store, start, None, "locked")


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path)


def test_files_come_from_the_newest_snapshot_of_volumes_of_the_history_live_at_the_recovery_time(store):
    base = taken(store, "backups", 0)
    began(store, 1, "vanilla", 1)  # the install's history
    first = taken(store, "volumes", 10)
    second = taken(store, "volumes", 40)
    taken(store, "volumes", 45, release="2.0.0")  # another release's files never come into this one
    began(store, 50, base.id, 2, volumes=first.id)  # a recovery to minute 20: the files of minute 10
    third = taken(store, "volumes", 60)

    assert volumes_for(store, "acme", base, at(5)) is None  # before any: the base's own files
    assert volumes_for(store, "acme", base, at(20)).id == first.id
    assert volumes_for(store, "acme", base, at(49)).id == second.id
    # In the history that recovery began, before it took one of its own: the files it began with, never those of
    # minute 40, which belong to the branch it left.
    assert volumes_for(store, "acme", base, at(55)).id == first.id
    assert volumes_for(store, "acme", base, None).id == third.id


def test_a_history_whose_first_files_are_gone_is_refused(store):
    base = taken(store, "backups", 0)
    began(store, 1, "vanilla", 1)
    began(store, 50, base.id, 2, volumes="20261201T021000000000Z-gone")
    with pytest.raises(IntegrityError, match="no longer lists; nothing was changed"):
        volumes_for(store, "acme", base, at(55))
