"""The logic of log archiving: binlog events found whole, pieces shipped and listed, a replay planned to its gaps.
The real MariaDB does this end to end in tests/e2e/test_log_archive.py; here a server's files are bytes."""

import struct
from datetime import UTC, datetime

import pytest

from incarnate import binlog, log_archive
from incarnate.backup_format import SnapshotWriter
from incarnate.errors import IntegrityError
from incarnate.log_archive import LogFile, listing, plan_replay, ship
from incarnate.stores.local import LocalStore


def event(timestamp: int, kind: int = 2, body: bytes = b"x" * 10) -> bytes:
    length = binlog.HEADER.size + len(body)
    return struct.pack("<IBIII H", timestamp, kind, 1, length, 0, 0) + body


class Server:
    """A MariaDB server's binlog as incarnate sees it: files, the last one being written."""

    artifact, target = "database-demo", "demo"

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.purged_before: list[str] = []
        self.rotations = 0

    def log_files(self) -> list[LogFile]:
        return [LogFile(name, len(data)) for name, data in self.files.items()]

    def read_log(self, name: str, offset: int, limit: int) -> bytes:
        return self.files[name][offset : offset + limit]

    def whole_events(self, name: str, data: bytes, offset: int):
        return binlog.whole(data, offset)

    def purge_logs_before(self, name: str) -> None:
        self.purged_before.append(name)
        for other in list(self.files):
            if other < name:
                del self.files[other]

    def rotate_log(self) -> None:
        self.rotations += 1


def test_whole_events_and_a_cut_before_a_second():
    data = binlog.MAGIC + event(100) + event(101) + event(103)
    assert binlog.whole(data, 0) == (len(data), 100, 103)
    assert binlog.whole(data[:-3], 0) == (len(data) - len(event(103)), 100, 101)  # the last one is not whole yet
    assert binlog.cut_before(data, 0, 102) == (4 + 2 * len(event(100)), 101)
    assert binlog.cut_before(data, 0, 100) == (4, None)
    with pytest.raises(binlog.BinlogError):
        binlog.whole(b"not a binlog", 0)


def test_shipping_takes_whole_events_then_the_rest_and_purges_what_is_archived_whole(tmp_path):
    store, server = LocalStore(tmp_path), Server()
    server.files["mariadb-bin.100001"] = binlog.MAGIC + event(100) + event(101)[:-4]
    first = ship(store, "acme", server)
    assert first.pieces == 1 and first.newest_event == 100
    assert listing(store, "acme", "database-demo").archived_to("mariadb-bin.100001") == 4 + len(event(100))

    server.files["mariadb-bin.100001"] = binlog.MAGIC + event(100) + event(101) + event(102, binlog.ROTATE)
    server.files["mariadb-bin.100002"] = binlog.MAGIC + event(103)
    second = ship(store, "acme", server)
    assert second.pieces == 2 and second.newest_event == 103
    assert server.purged_before == ["mariadb-bin.100002"]
    archived = listing(store, "acme", "database-demo")
    assert archived.closed("mariadb-bin.100001") and not archived.closed("mariadb-bin.100002")
    assert ship(store, "acme", server).pieces == 0  # nothing new: nothing written


def test_a_replay_plan_starts_at_the_base_and_stops_at_a_gap(tmp_path):
    store, server = LocalStore(tmp_path), Server()
    server.files["mariadb-bin.100001"] = binlog.MAGIC + event(100) + event(101, binlog.ROTATE)
    server.files["mariadb-bin.100002"] = binlog.MAGIC + event(102)
    ship(store, "acme", server)
    plan = plan_replay(store, "acme", "database-demo", ("mariadb-bin.100001", 4 + len(event(100))))
    assert [(file.name, file.start) for file in plan.files] == [("mariadb-bin.100001", 33), ("mariadb-bin.100002", 0)]
    assert plan.gap is None and [piece.last_event for piece in plan.files[1].pieces] == [102]
    assert log_archive.log_bytes(store, plan.files[1]) == server.files["mariadb-bin.100002"]

    for key in store.list("logs/acme/database-demo/mariadb-bin.100001"):
        store.delete(key)
    broken = plan_replay(store, "acme", "database-demo", ("mariadb-bin.100001", 4))
    assert broken.files == [] and broken.gap == "log file mariadb-bin.100001 is not archived, later ones are"


def test_a_server_whose_file_is_shorter_than_its_archive_is_another_history(tmp_path):
    store, server = LocalStore(tmp_path), Server()
    server.files["mariadb-bin.100001"] = binlog.MAGIC + event(100) + event(101)
    ship(store, "acme", server)
    server.files["mariadb-bin.100001"] = binlog.MAGIC + event(100)
    with pytest.raises(IntegrityError, match="the server's file is another history's"):
        ship(store, "acme", server)


def test_a_new_history_is_numbered_past_every_file_archived_and_every_history_begun(tmp_path):
    store, server = LocalStore(tmp_path), Server()
    assert log_archive.next_history(store, "acme", "database-demo", ("mariadb-bin.000007", 4)) == 1
    server.files["mariadb-bin.100001"] = binlog.MAGIC + event(100)
    ship(store, "acme", server)
    assert log_archive.next_history(store, "acme", "database-demo", ("mariadb-bin.000007", 4)) == 2
    begun = log_archive.HistoryStart(
        stack="acme",
        began_at="2026-12-03T10:00:00+00:00",
        snapshot="20261203T090000000000Z-abc",
        at=None,
        databases={"database-demo": log_archive.DatabaseStart(first="mariadb-bin.200001", replayed=[])},
    )
    log_archive.record_history(store, begun, None, "locked")  # its server wrote nothing archived yet
    assert log_archive.next_history(store, "acme", "database-demo", None) == 3
    assert log_archive.live_history(store, "acme", begun.began()) == begun


def test_a_recovery_time_needs_a_zone():
    assert log_archive.recovery_time("latest") is None
    assert log_archive.recovery_time("2026-12-03T14:05:00+01:00").hour == 14
    with pytest.raises(Exception, match="has no time zone"):
        log_archive.recovery_time("2026-12-03T14:05:00")
    with pytest.raises(Exception, match="is not an ISO 8601 time"):
        log_archive.recovery_time("yesterday")


def test_two_archivers_shipping_one_file_at_once_leave_no_gap(tmp_path):
    store, server = LocalStore(tmp_path), Server()
    server.files["mariadb-bin.100001"] = binlog.MAGIC + event(100)
    ship(store, "acme", server)
    server.files["mariadb-bin.100001"] += event(101) + event(102)
    whole = server.files["mariadb-bin.100001"]
    # A second archiver listed the store before the first piece was written: it ships the file from its start.
    with SnapshotWriter(store, "logs/acme/database-demo") as writer:
        log_archive._write_piece(writer, "acme", server, "mariadb-bin.100001", 0, whole, False, datetime.now(UTC))
    ship(store, "acme", server)  # and the first one ships the rest, from where it had got to
    archived = listing(store, "acme", "database-demo")
    assert archived.archived_to("mariadb-bin.100001") == len(whole)
    assert len(archived.pieces["mariadb-bin.100001"]) == 2  # overlapping: 0..33 and 0..91
    plan = plan_replay(store, "acme", "database-demo", ("mariadb-bin.100001", 4))
    assert plan.gap is None and log_archive.log_bytes(store, plan.files[0]) == whole


def test_a_server_whose_binlog_began_no_history_is_not_archived(tmp_path):
    """A server being restored logs its load in history 0, which the restore then drops: never shipped."""
    store, server = LocalStore(tmp_path), Server()
    server.files["mariadb-bin.000001"] = binlog.MAGIC + event(100)
    shipped = ship(store, "acme", server)
    assert shipped.unbegun and shipped.pieces == 0 and "has not begun a history" in shipped.describe()
    assert store.list("logs") == [] and server.purged_before == []
