"""The fleet overview: every stack the Prefect server's deployments serve, one line each, from its runs' reports.

`incarnate fleet` prints it (exit 1 when a stack's newest backup is older than the staleness window, or it has
none); `incarnate serve` keeps it current as the table artifact `fleet` (its `fleet/NAME` deployment, hourly).
What it shows is what the runs reported (the Prefect server's table artifacts, a few requests whatever the number of
stacks): `incarnate status` and `incarnate backups` read a stack's host and store themselves.
"""

import json
from datetime import UTC, datetime, timedelta

from prefect import flow
from prefect.artifacts import create_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactCollectionFilter,
    ArtifactCollectionFilterKey,
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterStartTime,
)
from prefect.client.schemas.sorting import ArtifactSort

from deployments.stacks import PAGE, incarnate_deployments, read_pages, stacks_of
from incarnate import fleet
from incarnate.fleet import BACKUP_REPORT, DRILL, Report, StackReports

HISTORY = (BACKUP_REPORT, DRILL)  # the kinds whose history the table draws


def served_stacks(client) -> dict[str, str]:
    """Every stack a backup deployment serves, with that deployment's name (where its runs go)."""
    return {stack: made.name for made in incarnate_deployments(client, "backup") for stack in stacks_of(made)}


def read_reports(client, stacks: list[str], nights: int) -> dict[str, StackReports]:
    """The newest report of each kind per stack, and the backups' and drills' reports of the last `nights`; a report
    not published since keys became `KIND--STACK` is read under its earlier key."""
    found = {stack: StackReports() for stack in stacks}
    owners, earlier = fleet.report_keys(stacks), fleet.earlier_keys(stacks)
    read_latest(client, owners, found)
    unreplaced = {key: (kind, stack) for key, (kind, stack) in earlier.items() if kind not in found[stack].latest}
    read_latest(client, unreplaced, found)
    history = {key: (kind, stack) for key, (kind, stack) in {**owners, **earlier}.items() if kind in HISTORY}
    read_history(client, history, nights, found)
    for reports in found.values():  # a stack's history may come under two keys, in two pages
        reports.backups.sort(key=lambda report: report.created)
        reports.drills.sort(key=lambda report: report.created)
    return found


def read_latest(client, owners: dict[str, tuple[str, str]], found: dict[str, StackReports]) -> None:
    keys = sorted(owners)
    for start in range(0, len(keys), PAGE):  # a bounded request each: a thousand stacks are five thousand keys
        newest = ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=keys[start : start + PAGE]))
        for latest in read_pages(client.read_latest_artifacts, artifact_filter=newest):
            kind, stack = owners[latest.key]
            found[stack].latest[kind] = report(latest.created, latest.data, latest.description)


def read_history(client, owners: dict[str, tuple[str, str]], nights: int, found: dict[str, StackReports]) -> None:
    since = FlowRunFilter(start_time=FlowRunFilterStartTime(after_=datetime.now(UTC) - timedelta(days=nights)))
    keys = sorted(owners)
    for start in range(0, len(keys), PAGE):
        batch = ArtifactFilter(key=ArtifactFilterKey(any_=keys[start : start + PAGE]))
        for artifact in read_pages(
            client.read_artifacts, artifact_filter=batch, flow_run_filter=since, sort=ArtifactSort.CREATED_DESC
        ):
            kind, stack = owners[artifact.key]
            reports = found[stack].backups if kind == BACKUP_REPORT else found[stack].drills
            reports.append(report(artifact.created, artifact.data, artifact.description))


def report(created: datetime, data: object, description: str | None) -> Report:
    table = json.loads(data) if isinstance(data, str) else data
    return Report(created, table if isinstance(table, list) else [], description or "")


@flow(name="fleet", log_prints=True)
def fleet_overview(sort: str = "stack", nights: int = 14, stale_after_hours: float = 26) -> dict:
    """Every served stack in one table: host, release, newest backup's size and age, last drill and its time to
    healthy, last verify, encryption, lock, open alerts; published as the table artifact `fleet`.

    Args:
        sort: the column to order by: stack, host, release, size, backup (oldest first), drill, verify, alerts.
        nights: how many nights of backup sizes and drill times the table draws.
        stale_after_hours: a stack whose newest backup is older than this is overdue.
    """
    now = datetime.now(UTC)
    fleet.sort_key(sort, now)  # a wrong column is refused before anything is read
    with get_client(sync_client=True) as client:
        served = served_stacks(client)
        reports = read_reports(client, sorted(served), nights)
    stale_after = timedelta(hours=stale_after_hours)
    rows = sorted(
        (fleet.fleet_row(stack, served[stack], reports[stack], now, stale_after) for stack in served),
        key=fleet.sort_key(sort, now),
    )
    overdue = [row.stack for row in rows if row.overdue]
    said = f"{len(rows)} stacks, {len(overdue)} overdue (no backup within {stale_after_hours:g} h)"
    create_table_artifact(
        key="fleet",
        table=[fleet.cells(row, now) for row in rows],
        description=f"the fleet at {now:%Y-%m-%d %H:%M} UTC: {said}",
    )
    print(said)
    return {"stacks": len(rows), "overdue": overdue, "lines": [*fleet.lines(rows, now), said]}
