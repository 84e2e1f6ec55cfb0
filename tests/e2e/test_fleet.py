"""The fleet overview of a served stack, from what its real runs reported: `incarnate fleet` and its artifact."""

import re

from prefect.artifacts import create_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey

from tests.e2e.conftest import serving


def fleet_line(output: str, stack: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(f"{stack} "))


def test_fleet_shows_a_served_stacks_release_backup_drill_and_verify_and_exits_1_when_it_is_overdue(customer, tmp_path):
    with serving(customer, tmp_path):
        # A verify report as published before keys were KIND--STACK: read until a newer one replaces it.
        earlier = [{"stage": "total", "seconds": "1.0", "result": "failed", "detail": ""}]
        create_table_artifact(table=earlier, key=f"verify-{customer.stack}", description="verify, as published before")
        before = customer.incarnate("fleet")
        assert " failed " in fleet_line(before.stdout, customer.stack), before.stdout[-2000:] + before.stderr
        for command in ("backup", "drill", "verify"):  # the install ran the vanilla backup's data: none of its own
            done = customer.incarnate(command, str(customer.repo))
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr
        shown = customer.incarnate("fleet", "--sort", "backup")
        assert shown.returncode == 0, shown.stdout[-3000:] + shown.stderr
        line = fleet_line(shown.stdout, customer.stack)
        assert " 1.0.0 " in line and re.search(r" \d+\.\d [kMG]B ", line) and "ago" in line, line
        assert "ok " in line and "healthy in " in line and " yes " in line, line  # drill, verify, encrypted
        assert " failed " not in line, line  # the verify report of today's key replaced the earlier one
        assert line.rstrip().endswith(" -"), line  # no open alert
        with get_client(sync_client=True) as client:
            (artifact,) = client.read_latest_artifacts(  # the table kept for the UI
                artifact_filter=ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=["fleet"]))
            )
        assert customer.stack in artifact.data

        overdue = customer.incarnate("fleet", "--stale-after", "1s")
        assert overdue.returncode == 1, overdue.stdout[-2000:]
        assert "no backup for " in fleet_line(overdue.stdout, customer.stack)
        refused = customer.incarnate("fleet", "--sort", "colour")
        assert refused.returncode == 2 and "--sort 'colour': expected one of stack, host" in refused.stderr
