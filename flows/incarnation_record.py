"""The incarnation record of a deployment: who triggered it, what it deployed from where, each stage's seconds;
a tag in the customer repo and a table artifact."""

import getpass
import os
import socket
import subprocess
from datetime import UTC, datetime

from prefect import get_run_logger
from prefect.artifacts import create_table_artifact

from flows.report import StageReport
from incarnate import incarnations
from incarnate.fleet import report_key
from incarnate.host import Host
from incarnate.incarnations import Incarnation
from incarnate.pinned import PinnedStack


def triggered_by() -> str:
    """Who or what started the run: set INCARNATE_TRIGGERED_BY in CI, else the deployment or the user."""
    from prefect.runtime import deployment

    return os.environ.get("INCARNATE_TRIGGERED_BY") or (
        f"deployment {deployment.name}" if deployment.name else f"{getpass.getuser()}@{socket.gethostname()}"
    )


def record_incarnation(report: StageReport, incarnation: Incarnation, repo: str) -> Incarnation:
    """Tag the customer repo and publish the record; a repo that refuses the tag is reported, not fatal."""
    incarnation = incarnation.model_copy(update={"seconds": report.durations()})
    try:
        incarnation = incarnation.model_copy(update={"tag": incarnations.record(repo, incarnation)})
    except subprocess.CalledProcessError as error:
        get_run_logger().warning(f"incarnation not recorded in customer repo {repo}: {error.stderr.strip()[-300:]}")
    rows = [{"field": key, "value": str(value)} for key, value in incarnation.model_dump(exclude={"seconds"}).items()]
    rows += [
        {"field": f"seconds: {stage}", "value": f"{seconds:.1f}"} for stage, seconds in incarnation.seconds.items()
    ]
    create_table_artifact(
        key=report_key("incarnation", incarnation.stack),
        table=rows,
        description=f"{incarnation.flow} of {incarnation.stack}: {incarnation.result}",
    )
    return incarnation


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def incarnation(
    flow: str,
    pinned: PinnedStack,
    host: Host,
    started_at: str,
    result: str,
    restored_from: str | None = None,
    backup: str | None = None,
    error: BaseException | None = None,
    kept_data: bool = False,
    recovery_point: str | None = None,
) -> Incarnation:
    customer = pinned.customer
    return Incarnation(
        stack=pinned.stack,
        flow=flow,
        commit=customer.commit,
        ref=customer.ref,
        release=pinned.release.release,
        restored_from=restored_from,
        kept_data=kept_data,
        recovery_point=recovery_point,
        backup=backup,
        host=host.name,
        triggered_by=triggered_by(),
        result=result,
        error=str(error) if error else None,
        started_at=started_at,
    )
