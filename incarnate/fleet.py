"""The fleet at a glance: one line per stack from what its runs reported.

Every backup, drill, verify and deployment publishes a table (flows/report.py, flows/drill.py,
flows/incarnation_record.py); the fleet overview reads the newest of each per stack, and the backups' sizes and the
drills' times to healthy over the last nights, and makes one row per stack of them: where it runs, which release,
how big and how old its newest backup is, its last drill and verify, how its store protects it, and what is wrong
(the open alerts). Plain data in, lines and rows out: flows/fleet.py reads the reports from the Prefect server.
"""

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from incarnate.errors import ConfigError

BACKUP_RUN, BACKUP_REPORT, DRILL, VERIFY, INCARNATION = (
    "backup",
    "backup-report",
    "restore-drill",
    "verify",
    "incarnation",
)
KINDS = (BACKUP_RUN, BACKUP_REPORT, DRILL, VERIFY, INCARNATION)
# Every kind of report published per stack under the keys of before 2026-12-04 (`KIND-STACK`): the flows' stage
# tables and the drill's, verify's and backup's own. History: not to be kept in step with new kinds.
PUBLISHED_BEFORE = (
    "install",
    "disaster-recovery",
    "import",
    "update",
    "rollback",
    "remove",
    "backup",
    "backup-report",
    "restore-drill",
    "restore-drill-result",
    "verify",
    "verify-report",
    "incarnation",
)
NOT_BEFORE_HEALTHY = {"tear down", "total"}  # a drill's stages after its stack answered healthy
BARS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class Report:
    """One table a run published: when, its rows, its description."""

    created: datetime
    table: list[dict[str, str]]
    description: str = ""

    def total(self) -> dict[str, str]:
        """The table's closing `total` row (stage tables and the backup report end with one); empty when none."""
        return next((row for row in reversed(self.table) if "total" in (row.get("stage"), row.get("artifact"))), {})

    @property
    def failed(self) -> bool:
        return self.total().get("result") == "failed"

    def fields(self) -> dict[str, str]:
        """A field/value table (an incarnation record) as a mapping."""
        return {row.get("field", ""): row.get("value", "") for row in self.table}


@dataclass
class StackReports:
    """What the fleet overview knows of one stack: the newest report of each kind, and the history in the window."""

    latest: dict[str, Report] = field(default_factory=dict)
    backups: list[Report] = field(default_factory=list)  # backup reports, oldest first
    drills: list[Report] = field(default_factory=list)  # drill stage reports, oldest first


def report_key(kind: str, stack: str) -> str:
    """The artifact key of a stack's report of one kind: `KIND--STACK`. No kind holds `--` or ends in `-`, so no two
    reports share a key whatever the stacks are named (with `KIND-STACK` the backup of stack `report-x` and the
    backup report of stack `x` had one). A stack name is a key as it is; other names (a release's) are made one."""
    if "--" in kind or kind.endswith("-"):
        raise ValueError(f"the report kind {kind!r} would make keys two reports can share")
    return f"{kind}--{_keyable(stack)}"


def report_keys(stacks: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Each key the fleet reads, and whose report of which kind it is."""
    return {report_key(kind, stack): (kind, stack) for stack in stacks for kind in KINDS}


def earlier_keys(stacks: Iterable[str]) -> dict[str, tuple[str, str]]:
    """The keys the same reports had before 2026-12-04 (`KIND-STACK`), so that the reports published then are read
    until newer ones replace them: only those no other kind of report of these stacks could have had too."""
    listed = list(stacks)
    published = Counter(_earlier_key(kind, stack) for stack in listed for kind in PUBLISHED_BEFORE)
    keys = {_earlier_key(kind, stack): (kind, stack) for stack in listed for kind in KINDS}
    return {key: owner for key, owner in keys.items() if published[key] == 1}


def _earlier_key(kind: str, stack: str) -> str:
    return _keyable(f"{kind}-{stack}").strip("-")


def _keyable(text: str) -> str:
    """`text` with what an artifact key refuses (all but lowercase letters, digits and dashes) made a dash."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower())


def healthy_seconds(drill: Report) -> float | None:
    """Seconds from a drill's start until its restored stack answered healthy; None for a failed drill."""
    if drill.failed:
        return None
    return round(
        sum(
            float(row["seconds"])
            for row in drill.table
            if row.get("seconds") and row.get("stage") not in NOT_BEFORE_HEALTHY
        ),
        1,
    )


def backup_bytes(report: Report) -> int | None:
    size = report.total().get("size", "").replace(",", "")
    return int(size) if size.isdigit() else None


@dataclass(frozen=True)
class FleetRow:
    stack: str
    host: str
    release: str
    size: int | None  # raw bytes of the newest backup in the stack's store
    backup_at: datetime | None  # that backup's, or a later deployment's recorded backup's (a vanilla install's)
    sizes: tuple[int, ...]  # the backups' sizes over the window, oldest first
    drill: str  # ok, failed, none
    drill_at: datetime | None
    drill_seconds: float | None
    drill_history: tuple[float, ...]
    verify: str
    verify_at: datetime | None
    encryption: str
    lock: str
    alerts: tuple[str, ...]
    overdue: bool


def fleet_row(stack: str, served_by: str, reports: StackReports, now: datetime, stale_after: timedelta) -> FleetRow:
    latest = reports.latest
    backup, drill, verify, record = (latest.get(kind) for kind in (BACKUP_REPORT, DRILL, VERIFY, INCARNATION))
    run = latest.get(BACKUP_RUN)
    fields = record.fields() if record else {}
    release = fields.get("release", "-")
    if fields.get("result") not in (None, "ok"):
        release += f" ({fields.get('flow', 'deployment')} {fields['result']})"
    # A deployment that ran the data of a backup unchanged (a vanilla install) records that backup as its own: the
    # stack is covered from then, though its store holds nothing of it yet.
    recorded = record.created if fields.get("backup") not in (None, "", "None") else None
    newest = max((moment for moment in (backup.created if backup else None, recorded) if moment), default=None)
    overdue = newest is None or now - newest > stale_after
    alerts = [
        *(["no backup yet" if newest is None else f"no backup for {age(now - newest)}"] if overdue else []),
        *(["last backup failed"] if run and run.failed and (backup is None or run.created > backup.created) else []),
        *(["last drill failed"] if drill and drill.failed else []),
        *(["last verify failed"] if verify and verify.failed else []),
    ]
    total = backup.total() if backup else {}
    return FleetRow(
        stack=stack,
        host=fields.get("host") or served_by,
        release=release,
        size=backup_bytes(backup) if backup else None,
        backup_at=newest,
        sizes=tuple(size for size in map(backup_bytes, reports.backups) if size is not None),
        drill="none" if drill is None else ("failed" if drill.failed else "ok"),
        drill_at=drill.created if drill else None,
        drill_seconds=healthy_seconds(drill) if drill else None,
        drill_history=tuple(seconds for seconds in map(healthy_seconds, reports.drills) if seconds is not None),
        verify="none" if verify is None else ("failed" if verify.failed else "ok"),
        verify_at=verify.created if verify else None,
        encryption=short_encryption(total.get("encryption", "")),
        lock=short_lock(total.get("lock", "")),
        alerts=tuple(alerts),
        overdue=overdue,
    )


def short_encryption(text: str) -> str:
    return "-" if not text else ("yes" if text.startswith("encrypted") else "no")


def short_lock(text: str) -> str:
    """`locked by the server for 30 days (...)` as `30 d`; anything else as `no` (- when unknown)."""
    words = text.split()
    if text.startswith("locked") and "for" in words:
        return f"{words[words.index('for') + 1]} d"
    return "no" if text else "-"


def age(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit == "d" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def sparkline(values: tuple[float, ...] | list[float]) -> str:
    """The values as bars, lowest to highest (a flat line when all are equal): a picture of the nights."""
    if not values:
        return ""
    low, high = min(values), max(values)
    span = high - low
    return "".join(BARS[round((value - low) / span * (len(BARS) - 1)) if span else 0] for value in values)


def size_text(size: int | None) -> str:
    if size is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


COLUMNS = ("stack", "host", "release", "size", "backup", "drill", "verify", "alerts")


def sort_key(column: str, now: datetime):
    """How rows are ordered by a column; the ages sort oldest (most urgent) first."""
    never = timedelta.max
    keys = {
        "stack": lambda row: row.stack,
        "host": lambda row: (row.host, row.stack),
        "release": lambda row: (row.release, row.stack),
        "size": lambda row: (-(row.size or 0), row.stack),
        "backup": lambda row: (
            -(now - row.backup_at).total_seconds() if row.backup_at else -never.total_seconds(),
            row.stack,
        ),
        "drill": lambda row: (row.drill != "failed", -(row.drill_seconds or 0), row.stack),
        "verify": lambda row: (row.verify != "failed", row.stack),
        "alerts": lambda row: (-len(row.alerts), row.stack),
    }
    if column not in keys:
        raise ConfigError(f"--sort {column!r}: expected one of {', '.join(COLUMNS)}.")
    return keys[column]


def cells(row: FleetRow, now: datetime) -> dict[str, str]:
    """A row as the table shows it, column by column."""

    def when(moment: datetime | None) -> str:
        return f"{age(now - moment)} ago" if moment else "never"

    drill = row.drill if row.drill == "none" else f"{row.drill} {when(row.drill_at)}"
    if row.drill_seconds is not None:
        drill += f", healthy in {row.drill_seconds:g} s"
    return {
        "stack": row.stack,
        "host": row.host,
        "release": row.release,
        "size": size_text(row.size),
        "nights": sparkline(row.sizes),
        "backup": when(row.backup_at),
        "drill": drill,
        "drills": sparkline(row.drill_history),
        "verify": row.verify if row.verify == "none" else f"{row.verify} {when(row.verify_at)}",
        "encrypted": row.encryption,
        "locked": row.lock,
        "alerts": "; ".join(row.alerts) or "-",
    }


def lines(rows: list[FleetRow], now: datetime) -> list[str]:
    """The table as text, columns aligned."""
    table = [cells(row, now) for row in rows]
    heads = list(cells(rows[0], now)) if rows else list(COLUMNS)
    widths = {head: max([len(head), *(len(row[head]) for row in table)]) for head in heads}
    return [
        "  ".join(head.ljust(widths[head]) for head in heads).rstrip(),
        *("  ".join(row[head].ljust(widths[head]) for head in heads).rstrip() for row in table),
    ]
