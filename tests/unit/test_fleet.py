"""The fleet table from the reports the runs publish: what each column says, what is overdue, the order."""

from datetime import UTC, datetime, timedelta

import pytest

from incarnate import fleet
from incarnate.errors import ConfigError
from incarnate.fleet import Report, StackReports

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def backup_report(size: int, hours_ago: float) -> Report:
    return Report(
        NOW - timedelta(hours=hours_ago),
        [
            {"artifact": "database-demo", "size": f"{size - 10:,}"},
            {
                "artifact": "total",
                "size": f"{size:,}",
                "lock": "locked by the server for 30 days (compliance)",
                "encryption": "encrypted (AES-256-GCM, chunk names HMAC-SHA-256; key incarnate-store-key-x)",
            },
        ],
    )


def stage_report(hours_ago: float, failed: bool = False, seconds: tuple[float, ...] = (1.0, 20.5, 3.0)) -> Report:
    stages = ["load config", "restore", "migrate"]
    rows = [{"stage": name, "seconds": f"{value}", "result": "ok"} for name, value in zip(stages, seconds, strict=True)]
    rows.append({"stage": "tear down", "seconds": "4.0", "result": "ok"})
    rows.append({"stage": "total", "seconds": "99.0", "result": "failed" if failed else "ok"})
    return Report(NOW - timedelta(hours=hours_ago), rows)


def incarnation(release: str, result: str = "ok", backup: str = "None", days_ago: float = 3) -> Report:
    fields = {"release": release, "host": "ssh://root@host-b", "result": result, "flow": "update", "backup": backup}
    return Report(NOW - timedelta(days=days_ago), [{"field": key, "value": value} for key, value in fields.items()])


def test_a_healthy_stack_shows_its_host_release_backup_drill_verify_and_protection():
    reports = StackReports(
        latest={
            fleet.BACKUP_REPORT: backup_report(2_500_000_000, 7),
            fleet.BACKUP_RUN: stage_report(7),
            fleet.DRILL: stage_report(30),
            fleet.VERIFY: stage_report(29),
            fleet.INCARNATION: incarnation("1.1.0"),
        },
        backups=[backup_report(size, hours) for size, hours in ((1_000, 55), (2_000, 31), (2_500_000_000, 7))],
        drills=[stage_report(200, seconds=(1.0, 40.0, 3.0)), stage_report(30)],
    )
    row = fleet.fleet_row("acme", "box", reports, NOW, timedelta(hours=26))
    assert (row.host, row.release, row.size, row.encryption, row.lock) == (
        "ssh://root@host-b",
        "1.1.0",
        2_500_000_000,
        "yes",
        "30 d",
    )
    assert row.drill == "ok" and row.drill_seconds == 24.5  # until healthy: the tear-down is not counted
    assert row.drill_history == (44.0, 24.5) and row.alerts == () and not row.overdue
    shown = fleet.cells(row, NOW)
    assert shown["backup"] == "7h ago" and shown["size"] == "2.5 GB" and shown["nights"] == "▁▁█"
    assert shown["drill"] == "ok 30h ago, healthy in 24.5 s" and shown["drills"] == "█▁"
    assert shown["verify"] == "ok 29h ago" and shown["alerts"] == "-"


def test_overdue_failed_and_unknown_stacks_say_what_is_wrong():
    stale = StackReports(
        latest={
            fleet.BACKUP_REPORT: backup_report(5_000, 50),
            fleet.BACKUP_RUN: stage_report(2, failed=True),
            fleet.DRILL: stage_report(20, failed=True),
            fleet.INCARNATION: incarnation("1.2.0", result="rolled back"),
        }
    )
    row = fleet.fleet_row("beta", "box", stale, NOW, timedelta(hours=26))
    assert row.overdue and row.alerts == ("no backup for 2d", "last backup failed", "last drill failed")
    assert row.release == "1.2.0 (update rolled back)" and row.drill_seconds is None and row.verify == "none"
    never = fleet.fleet_row("gamma", "box-in-pool-b", StackReports(), NOW, timedelta(hours=26))
    assert never.overdue and never.alerts == ("no backup yet",)
    assert (never.host, never.release, never.encryption, never.lock) == ("box-in-pool-b", "-", "-", "-")
    assert fleet.cells(never, NOW)["backup"] == "never"
    # A vanilla install ran its release's vanilla backup unchanged and recorded it as its own: covered, size unknown.
    vanilla = StackReports(latest={fleet.INCARNATION: incarnation("1.0.0", backup="20261204T080000Z-1", days_ago=0.1)})
    fresh = fleet.fleet_row("delta", "box", vanilla, NOW, timedelta(hours=26))
    assert not fresh.overdue and fresh.size is None and fleet.cells(fresh, NOW)["backup"] == "2h ago"


def test_rows_sort_by_any_column_and_an_unknown_column_is_refused():
    made = {
        name: fleet.fleet_row(
            name, "box", StackReports(latest={fleet.BACKUP_REPORT: backup_report(size, hours)}), NOW, DAY
        )
        for name, size, hours in (("a", 10, 1), ("b", 30, 30), ("c", 20, 5))
    }
    rows = list(made.values())
    assert [row.stack for row in sorted(rows, key=fleet.sort_key("size", NOW))] == ["b", "c", "a"]
    assert [row.stack for row in sorted(rows, key=fleet.sort_key("backup", NOW))] == ["b", "c", "a"]  # oldest first
    assert [row.stack for row in sorted(rows, key=fleet.sort_key("alerts", NOW))] == ["b", "a", "c"]
    with pytest.raises(ConfigError, match="--sort 'colour': expected one of stack, host, release"):
        fleet.sort_key("colour", NOW)
    text = fleet.lines(rows, NOW)
    assert text[0].split()[:4] == ["stack", "host", "release", "size"] and len(text) == 4
    assert text[2].startswith("b ") and "no backup for 30h" in text[2]


def test_sparklines_and_ages():
    assert fleet.sparkline([]) == "" and fleet.sparkline([5, 5, 5]) == "▁▁▁"
    assert fleet.sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert [fleet.age(timedelta(seconds=s)) for s in (5, 90, 7200, 86400 * 3)] == ["5s", "1m", "2h", "3d"]
    assert fleet.age(timedelta(hours=30)) == "30h"  # under two days, hours say more


def test_no_two_reports_share_a_key_whatever_their_stacks_are_named():
    stacks = ("x", "report-x", "result-x", "drill-result-x", "a--b", "a-", "a")
    keys = [fleet.report_key(kind, stack) for kind in fleet.PUBLISHED_BEFORE for stack in stacks]
    assert len(set(keys)) == len(keys)
    with pytest.raises(ValueError, match="share"):
        fleet.report_key("backup-", "x")


def test_reports_published_under_the_earlier_keys_are_read_only_where_no_other_report_had_that_key():
    earlier = fleet.earlier_keys(["x", "report-x", "acme"])
    assert earlier["backup-report-acme"] == (fleet.BACKUP_REPORT, "acme")
    assert earlier["verify-acme"] == (fleet.VERIFY, "acme")
    # the backup of report-x and the backup report of x were published under one key: neither is read from it
    assert "backup-report-x" not in earlier and "backup-x" in earlier
    assert set(fleet.report_keys(["acme"])) == {f"{kind}--acme" for kind in fleet.KINDS}
