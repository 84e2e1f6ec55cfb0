"""PostgreSQL's WAL as incarnate names, positions and prunes it (pure logic; the server's side is in
e2e/test_physical_base.py)."""

from incarnate import log_archive, wal
from incarnate.backup_format import Artifact, Manifest, Snapshot


def test_a_wal_file_name_says_its_timeline_and_segment_and_a_position_its_log_sequence_number():
    name = "00000003000000010000002A"
    assert (wal.timeline(name), wal.segment(name), wal.history(name)) == (3, 256 + 42, 2)
    assert wal.name_of(3, 256 + 42) == name
    assert wal.lsn(name, 5) == (1 << 32) + 42 * wal.SEGMENT + 5
    assert wal.position(3, wal.lsn(name, 5)) == (name, 5)
    assert wal.position(3, wal.parse_lsn("1/2B000000")) == ("00000003000000010000002B", 0)  # a boundary: the next file
    assert wal.lsn_text(wal.parse_lsn("1/2A0001A0")) == "1/2A0001A0"
    assert (log_archive.history_of(name), log_archive.file_number(name)) == (2, 298)
    assert wal.timeline_of(log_archive.history_of(name)) == 3


def test_a_timeline_history_file_lists_each_timeline_left_and_where():
    switches = [(2, wal.parse_lsn("0/3000A28")), (5, wal.parse_lsn("0/5000000"))]
    written = wal.history_file(switches)
    assert written == b"2\t0/3000A28\tincarnate recovery\n5\t0/5000000\tincarnate recovery\n"
    assert wal.parse_history(written.decode()) == switches
    assert wal.parse_history("1\t0/1952A48\tno recovery target specified\n\n") == [(1, 0x1952A48)]


def test_commit_times_come_from_pg_waldump_lines_in_utc():
    output = (
        "rmgr: Transaction len (rec/tot):     34/    34, tx:        735, lsn: 0/03038C50, prev 0/03038C10, desc: "
        "COMMIT 2026-12-04 02:33:48.251802 UTC\n"
        "rmgr: Transaction len (rec/tot):     34/    34, tx:        736, lsn: 0/0303B750, prev 0/0303B710, desc: "
        "ABORT 2026-12-04 02:33:50.000001 UTC; inval msgs: catcache 63\n"
    )
    assert wal.commit_times(output) == (1796351628, 1796351630)
    assert wal.commit_times("") == (None, None)


def snapshot_with(log_start: tuple[str, int]) -> Snapshot:
    artifact = Artifact(
        name="database-pg", kind="database", target="pg", engine="postgresql", size=1, sha256="0", chunks=[],
        log_start=log_start, base="physical", engine_version="15",
    )  # fmt: skip
    manifest = Manifest(
        stack="acme", product="p", release="1.0.0", schema_version=1, config_commit=None, origin="backup",
        created_at="2026-12-04T00:00:00+00:00", artifacts=[artifact],
    )  # fmt: skip
    return Snapshot(prefix="backups/acme/20261204T000000000000Z-abc", manifest=manifest)


def test_prune_keeps_the_wal_of_a_kept_base_on_its_own_timeline_only():
    # Timelines 2 and 3 share segment numbers (a recovery continues the numbering): only the base's is needed.
    needed = log_archive.needed_numbers([snapshot_with(("000000030000000000000005", 40))], [])["database-pg"]
    kept = [
        name
        for name in ("000000020000000000000004", "000000020000000000000006", "000000030000000000000004",
                     "000000030000000000000005", "000000030000000000000107")
        if any(log_archive.history_of(name) == of and low <= log_archive.file_number(name) <= high
               for of, low, high in needed)
    ]  # fmt: skip
    assert kept == ["000000030000000000000005", "000000030000000000000107"]
