"""`incarnate worker --pool NAME`: the Prefect process worker of one container host.

A stack registered with `--pool NAME` has its deployments in that work pool (deployments/serve.py);
the worker on the stack's host polls the pool and runs each flow in a process of its own on that
host, against the host's own Docker engine, so dumps and archives stream from the host straight
to the store. At most --max-runs runs at once (the worker's limit); the others wait in the pool,
in the order they were due. Its runs beat as often as serve's, for the same crash detection.
"""

import os
import sys
from pathlib import Path
from typing import NoReturn

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists
from prefect.workers.process import ProcessWorker

from deployments.alerts import AlertSettings

# How often serve and a worker ask for runs to start: a UI button or a CI trigger waits for the next ask, and
# Prefect's default (10 s) would be most of a short run's wait. One request each time, whatever the number of stacks.
POLL_SECONDS = 2


def ensure_pool(name: str) -> None:
    """A process work pool of that name, made with Prefect's default job template when missing; left alone else."""
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type=ProcessWorker.type,
                                                   base_job_template=ProcessWorker.get_default_base_job_template()))
        except ObjectAlreadyExists:
            pass


def main(pool: str, max_runs: int, settings: AlertSettings) -> NoReturn:
    ensure_pool(pool)
    os.environ["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] = str(settings.heartbeat_seconds)
    os.environ["PREFECT_WORKER_QUERY_SECONDS"] = str(POLL_SECONDS)
    print(f"worker of pool {pool}: runs its flows on this host (engine {os.environ.get('DOCKER_HOST') or 'local'}), "
          f"at most {max_runs} at once (--max-runs, INCARNATE_MAX_RUNS); the others wait their turn, in order", flush=True)
    prefect = str(Path(sys.executable).with_name("prefect"))
    os.execv(prefect, [prefect, "worker", "start", "--pool", pool, "--type", ProcessWorker.type, "--limit", str(max_runs)])
