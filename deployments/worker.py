"""`incarnate worker --pool NAME`: the Prefect process worker of one container host.

A stack registered with `--pool NAME` has its deployments in that work pool (deployments/serve.py);
the worker on the stack's host polls the pool and runs each flow in a process of its own on that
host, against the host's own Docker engine, so dumps and archives stream from the host straight
to the store. At most --max-runs runs at once (the worker's limit); the others wait in the pool,
in the order they were due. Its runs beat as often as serve's, for the same crash detection.
"""

import os
import signal
import sys
from functools import partial

import anyio
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists
from prefect.utilities.processutils import command_to_string
from prefect.utilities.services import critical_service_loop
from prefect.workers.process import ProcessJobConfiguration, ProcessWorker

from deployments import archiver
from deployments.alerts import AlertSettings

# How often serve and a worker ask for runs to start: a UI button or a CI trigger waits for the next ask, and
# Prefect's default (10 s) would be most of a short run's wait. One request each time, whatever the number of stacks.
POLL_SECONDS = 2
FLOW_MODULES = "flows."  # the entrypoints of the deployments serve puts in work pools: module paths of flows/


class RefusedRun(Exception):
    """A run the worker will not start: its configuration is not the one incarnate registered."""


def run_refusal(
    pool_template: dict, run_variables: dict, deployment_variables: dict, entrypoint: str, pull_steps: list
) -> str | None:
    """Why a run must not start on this host, None when it is incarnate's own. Whoever holds the Prefect password
    could otherwise have a worker run any command as root (a `command`, `env` such as LD_PRELOAD, or `working_dir`
    in job variables or the pool's template, a pull step, or a flow from elsewhere); incarnate sets none of them."""
    if pool_template != ProcessWorker.get_default_base_job_template():
        return "its work pool's base job template was changed from Prefect's default, which incarnate made it with"
    for where, variables in (("the run", run_variables), ("its deployment", deployment_variables)):
        if variables:
            return f"{where} sets job variables ({', '.join(sorted(variables))}), which incarnate never sets"
    if pull_steps:
        return "its deployment has pull steps, which incarnate never sets"
    if not entrypoint.startswith(FLOW_MODULES):
        return f"its deployment's entrypoint {entrypoint!r} is not one of incarnate's flows"
    return None


class EngineCommand(ProcessJobConfiguration):
    """A run's process is Prefect's engine itself. Without a command, Prefect 3.9's process worker starts a workspace
    supervisor that resolves the run's workspace (dependency installs) and then starts the engine: two Python
    processes importing Prefect one after the other, about 5 s more for a button's run on the 2-core machine
    (bench/fleet_scale.py --pool). incarnate's flows need no workspace: they run from this checkout."""

    def prepare_for_flow_run(self, flow_run, deployment=None, flow=None, work_pool=None, worker_name=None, **more):
        self.command = command_to_string([sys.executable, "-m", "prefect.engine"])  # ours, never the server's
        super().prepare_for_flow_run(flow_run, deployment, flow, work_pool, worker_name, **more)


class IncarnateWorker(ProcessWorker):
    """Prefect's process worker, refusing every run that is not one of incarnate's own flows as incarnate
    registered them: such a run ends Crashed with the reason, and nothing of it runs on the host."""

    job_configuration = EngineCommand

    async def run(self, flow_run, configuration, task_status=None):
        deployment = await self.client.read_deployment(flow_run.deployment_id) if flow_run.deployment_id else None
        reason = (
            "it has no deployment"
            if deployment is None
            else run_refusal(
                self.work_pool.base_job_template,
                flow_run.job_variables or {},
                deployment.job_variables or {},
                deployment.entrypoint or "",
                deployment.pull_steps or [],
            )
        )
        if reason:
            raise RefusedRun(f"worker of pool {self.work_pool.name} refuses flow run {flow_run.name}: {reason}.")
        return await super().run(flow_run, configuration, task_status)


def ensure_pool(name: str) -> None:
    """A process work pool of that name, made with Prefect's default job template when missing; left alone else."""
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(
                WorkPoolCreate(
                    name=name, type=ProcessWorker.type, base_job_template=ProcessWorker.get_default_base_job_template()
                )
            )
        except ObjectAlreadyExists:
            pass


def main(pool: str, max_runs: int, settings: AlertSettings) -> int:
    """Run Prefect's process worker for the pool in this process until it is asked to stop; the exit code."""
    ensure_pool(pool)
    os.environ["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] = str(settings.heartbeat_seconds)
    print(
        f"worker of pool {pool}: runs its flows on this host (engine {os.environ.get('DOCKER_HOST') or 'local'}), "
        f"at most {max_runs} at once (--max-runs, INCARNATE_MAX_RUNS); the others wait their turn, in order"
    )
    # The pool's stacks run on this host: their logs are archived from here, where their databases are.
    archiver.in_background(archiver.pool_stacks(pool), f"pool {pool}'s stacks")
    anyio.run(serve_pool, pool, max_runs)
    return 0


async def serve_pool(pool: str, max_runs: int) -> None:
    """Take the pool's runs until SIGTERM or SIGINT, then take no new ones and wait for those in progress; asked a
    second time, end them at once. Prefect's own `worker start` ends its runs at the first signal (and then often
    hangs), so the worker runs here, with its loops under this function's control."""
    async with anyio.create_task_group() as everything:
        stopping = anyio.Event()
        everything.start_soon(on_signals, stopping, everything.cancel_scope)
        await take_runs(pool, max_runs, stopping)
        everything.cancel_scope.cancel()  # the runs ended: nothing left to listen for


async def on_signals(stopping: anyio.Event, everything: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as received:
        async for signum in received:
            if stopping.is_set():
                print(f"{signal.Signals(signum).name} again: ending the runs in progress now")
                everything.cancel()
                return
            print(
                f"{signal.Signals(signum).name}: taking no new runs; waiting for the runs in progress to end "
                f"(send it again to end them now)"
            )
            stopping.set()


async def take_runs(pool: str, max_runs: int, stopping: anyio.Event) -> None:
    """Prefect's worker loops (ask for runs every POLL_SECONDS, heartbeat the pool) until `stopping`; leaving the
    worker's context then waits for the runs it started."""
    async with IncarnateWorker(work_pool_name=pool, limit=max_runs) as worker:
        async with anyio.create_task_group() as loops:
            for workload, interval in (
                (worker.get_and_submit_flow_runs, POLL_SECONDS),
                (worker.sync_with_backend, worker.heartbeat_interval_seconds),
            ):
                loops.start_soon(
                    partial(critical_service_loop, workload=workload, interval=interval, jitter_range=0.3, backoff=4)
                )
            print(f"Worker {worker.name!r} started!")
            await stopping.wait()
            loops.cancel_scope.cancel()
    print(f"Worker {worker.name!r} stopped: its runs ended.")
