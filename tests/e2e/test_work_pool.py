"""Many hosts the Prefect way: a stack registered with `--pool NAME` gets its deployments in that work pool, and
`incarnate worker --pool NAME` on the stack's host runs them against that host's engine (here the second engine
stands in for a second host), at most --max-runs at once."""

import subprocess
import time
import uuid

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from deployments.stacks import resolve
from tests.e2e.conftest import INCARNATE, SERVING, background, flow_run_id, state_of


def stack_containers(engine: str | None, stack: str) -> list[str]:
    return subprocess.run(
        [
            "docker",
            *(["-H", engine] if engine else []),
            "ps",
            "-q",
            "--filter",
            f"label=com.docker.compose.project={stack}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


def wait_for_state(run_id, state: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while state_of(run_id) != state and time.monotonic() < deadline:
        time.sleep(0.5)


def test_a_stack_in_a_work_pool_runs_on_its_workers_host_one_run_at_a_time(customer, tmp_path, second_engine):
    pool = f"host-{uuid.uuid4().hex[:6]}"
    env = {"INCARNATE_CUSTOMERS": str(tmp_path / "customers.yaml"), "INCARNATE_SERVE_NAME": f"serve-{customer.stack}"}
    refused = customer.incarnate("register", str(customer.repo), "--pool", pool, "--host", second_engine, env=env)
    assert refused.returncode == 2 and "give --host or --pool, not both" in refused.stderr, refused.stderr
    registered = customer.incarnate("register", str(customer.repo), "--pool", pool, env=env)
    assert registered.returncode == 0, registered.stderr
    assert f"run `incarnate worker --pool {pool}` on its host" in registered.stdout
    try:
        with (
            background([INCARNATE, "serve"], tmp_path / "serve.log", SERVING, env) as _,
            background(
                [INCARNATE, "worker", "--pool", pool, "--max-runs", "1"],
                tmp_path / "worker.log",
                "started!",
                {"DOCKER_HOST": second_engine},
            ) as worker,
        ):
            said = (tmp_path / "serve.log").read_text()
            assert f"work pool {pool}: 7 deployments" in said, said
            assert f"deployments serve-{customer.stack}-in-{pool} of 7 flows: 1 stack(s) on the worker's host" in said
            installed = customer.incarnate("trigger", f"install/{customer.stack}", "--wait")
            assert installed.returncode == 0, installed.stdout[-3000:] + (tmp_path / "worker.log").read_text()[-3000:]
            assert stack_containers(second_engine, customer.stack) and not stack_containers(None, customer.stack)

            # Two runs due at once that nothing else keeps apart (a backup and a verify take no common lock).
            started = [customer.incarnate("trigger", f"{flow}/{customer.stack}") for flow in ("backup", "verify")]
            with get_client(sync_client=True) as client:
                deadline = time.monotonic() + 300
                while True:
                    runs = [client.read_flow_run(flow_run_id(output.stdout)) for output in started]
                    if all(run.state.is_final() for run in runs):
                        break
                    assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
                    time.sleep(1)
            # Whoever holds the Prefect password asks the worker to run a command of theirs: refused, nothing runs.
            marker = tmp_path / "ran-as-root"
            with get_client(sync_client=True) as client:
                verify, parameters = resolve(client, f"verify/{customer.stack}")
                planted = client.create_flow_run_from_deployment(
                    verify.id, parameters=parameters, job_variables={"command": f"touch {marker}"}
                ).id
            wait_for_state(planted, "Crashed", 60)
            assert state_of(planted) == "Crashed" and not marker.exists()
            assert "refuses flow run" in (tmp_path / "worker.log").read_text()
            in_progress = flow_run_id(customer.incarnate("trigger", f"backup/{customer.stack}").stdout)
            wait_for_state(in_progress, "Running")
        # Stopped (SIGTERM, as a service manager does) with a run in progress: it took no new run, let that one
        # finish, then ended, leaving no process behind.
        log = (tmp_path / "worker.log").read_text()
        assert worker.returncode == 0, log[-3000:]
        assert "SIGTERM: taking no new runs; waiting for the runs in progress to end" in log
        assert state_of(in_progress) == "Completed", log[-3000:]
        assert log.rindex("Finished in state Completed()") < log.index("stopped: its runs ended"), log[-3000:]
        assert subprocess.run(["pgrep", "-s", str(worker.pid)], capture_output=True).returncode == 1  # its session
        assert [run.state.name for run in runs] == ["Completed", "Completed"], (tmp_path / "worker.log").read_text()[
            -3000:
        ]
        assert {run.work_pool_name for run in runs} == {pool}
        first, second = sorted(runs, key=lambda run: run.start_time)
        assert second.start_time >= first.end_time  # one at a time on this host: the second waited for the slot
        assert "backup ok" in (tmp_path / "worker.log").read_text()  # the flows' own logs, on the host that ran them
    finally:
        customer.remove_from(second_engine)
        with get_client(sync_client=True) as client:
            try:
                client.delete_work_pool(pool)
            except ObjectNotFound:
                pass
