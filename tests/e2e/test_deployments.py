"""Deployments served from the registered customers: the nightly schedule, and CI triggers with --wait."""

import concurrent.futures
import contextlib
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentUpdate
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

from deployments.stacks import resolve
from incarnate.backup_format import list_snapshots
from incarnate.config import spread


def test_nightly_backup_deployment_runs_at_two_in_the_stacks_time_zone_and_makes_a_snapshot(customer, served):
    [ours] = [entry for entry in served.schedules if entry.slug == customer.stack]
    cron, zone = ours.schedule.cron, ours.schedule.timezone
    assert (cron, zone) == (spread("H(0-9) 2 * * *", customer.stack), "America/New_York")
    assert int(cron.split()[0]) <= 9 and cron.endswith(" 2 * * *")  # a minute of this stack's own in 02:00-02:09
    assert ours.parameters == {"repo": str(customer.repo)} and served.name == f"serve-{customer.stack}"
    assert served.parameter_openapi_schema["properties"]["repo"]["enum"] == [str(customer.repo)]  # the UI's choice
    before = len(list_snapshots(customer.backups(), customer.stack))
    result = customer.incarnate("trigger", f"backup/{customer.stack}", "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "http://127.0.0.1:4200/runs/flow-run/" in result.stdout and result.stdout.rstrip().endswith("Completed")
    assert len(list_snapshots(customer.backups(), customer.stack)) == before + 1


def test_trigger_wait_exits_non_zero_for_a_failing_run_and_refuses_bad_names_and_unlisted_repos(customer, served):
    failing = customer.incarnate("trigger", f"update/{customer.stack}", "--param", "ref=no-such-ref", "--wait")
    assert failing.returncode == 1
    assert failing.stdout.rstrip().splitlines()[-1].startswith("  Failed")
    unknown = customer.incarnate("trigger", f"backup/{customer.stack}-nope")
    assert unknown.returncode == 2 and f"no deployment of flow backup serves a stack {customer.stack}-nope" in (
        unknown.stderr
    )
    # The deployment named itself: it serves several stacks, so the run names one; a repo it does not serve is refused.
    unnamed = customer.incarnate("trigger", f"backup/serve-{customer.stack}")
    assert unnamed.returncode == 2 and "serves 1 stack(s): name one (backup/STACK) or give --param repo=REPO" in (
        unnamed.stderr
    )
    other = customer.incarnate("trigger", f"backup/serve-{customer.stack}", "--param", "repo=/srv/someone-else")
    assert other.returncode == 2 and "repo '/srv/someone-else' is not one of the stacks" in other.stderr
    with get_client(sync_client=True) as client, pytest.raises(PrefectHTTPStatusError, match="409"):
        # whoever holds the Prefect password, past the command line: the server itself refuses an unlisted repo
        client.create_flow_run_from_deployment(served.id, parameters={"repo": "/srv/someone-else"})
    bad_param = customer.incarnate("trigger", f"backup/{customer.stack}", "--param", "rep=x")
    assert (
        bad_param.returncode == 2
        and "has no parameter rep; its parameters: docker_host, prune, repo" in bad_param.stderr
    )


def test_serve_runs_at_most_max_runs_at_once_and_the_others_in_their_turn(customer, tmp_path):
    from tests.e2e.conftest import serving

    # Runs started each in a new Python, as Prefect does: they are kept apart as forked ones are.
    fresh = {"INCARNATE_RUN_START": "fresh"}
    with serving(customer, tmp_path, "--max-runs", "1", env=fresh) as server, get_client(sync_client=True) as client:
        assert "runs start: each in a new Python (INCARNATE_RUN_START=fresh)" in server.log.read_text()
        assert not fork_servers(server.process.pid)
        # Two runs due at once that nothing else would keep apart: a backup and a verify take no common lock.
        chosen = [resolve(client, f"{flow}/{customer.stack}") for flow in ("backup", "verify")]
        runs = [client.create_flow_run_from_deployment(made.id, parameters=params) for made, params in chosen]
        deadline = time.monotonic() + 240
        while True:
            finished = [client.read_flow_run(run.id) for run in runs]
            if all(run.state.is_final() for run in finished):
                break
            assert time.monotonic() < deadline, server.log.read_text()[-2000:]
            time.sleep(1)
        assert [run.state.name for run in finished] == ["Completed", "Completed"], server.log.read_text()[-2000:]
        first, second = sorted(finished, key=lambda run: run.start_time)
        assert second.start_time >= first.end_time  # one at a time: the second waited for the first's slot
        assert "runs at once: at most 1 (--max-runs, INCARNATE_MAX_RUNS)" in server.log.read_text()


def test_serve_starts_a_button_run_forked_from_its_fork_server_and_runs_its_own_flow_whatever_the_server_says(
    customer, tmp_path
):
    from tests.e2e.conftest import serving

    with serving(customer, tmp_path) as server, get_client(sync_client=True) as client:
        assert "runs start: forked from a process that imported the flows once" in server.log.read_text()
        [fork_server] = fork_servers(server.process.pid)
        runs: set[int] = set()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            triggered = pool.submit(customer.incarnate, "trigger", f"verify/{customer.stack}", "--wait")
            while not triggered.done():  # the run's process: a child of the fork server while it runs
                runs |= children(fork_server)
                time.sleep(0.05)
        result = triggered.result()
        assert result.returncode == 0 and result.stdout.rstrip().endswith("Completed"), result.stdout + result.stderr
        assert runs, "no process of the fork server's was seen while the run ran"
        # Whoever holds the Prefect password points the deployment elsewhere: serve still runs the flow it holds.
        verify, _ = resolve(client, f"verify/{customer.stack}")
        client.update_deployment(verify.id, DeploymentUpdate(entrypoint="/tmp/elsewhere.py:anything", path="/tmp"))
        again = customer.incarnate("trigger", f"verify/{customer.stack}", "--wait")
        assert again.returncode == 0 and again.stdout.rstrip().endswith("Completed"), again.stdout + again.stderr


def children(pid: int) -> set[int]:
    """The processes whose parent is `pid`, as /proc has them now."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # the parent is the 2nd field after the command's closing parenthesis (a command may hold one)
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(stat.parent.name))
    return found


def fork_servers(pid: int) -> list[int]:
    """serve's children that are multiprocessing's fork server."""
    return [
        child for child in children(pid) if b"multiprocessing.forkserver" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def test_serve_start_keeps_its_deployments_on_a_server_with_more_flows_than_a_page():
    """serve's start deletes what it made and no longer wants: a flow it wants, past the server's first page of flows
    (200, by name), was once taken for unknown and its deployment deleted."""
    from deployments.serve import retire
    from flows.verify import verify_stack

    serving = "retire-many-flows"
    made = verify_stack.to_deployment(name=serving, tags=[f"served-by:{serving}"])
    with get_client(sync_client=True) as client:
        fillers = [client.create_flow_from_name(f"aaa-filler-{index:03}") for index in range(201)]
        kept = made.apply()
        try:
            assert retire(serving, [made], []) == []
            assert client.read_deployment(kept).name == serving
        finally:
            for flow_id in fillers:
                client.delete_flow(flow_id)
            with contextlib.suppress(ObjectNotFound):
                client.delete_deployment(kept)
