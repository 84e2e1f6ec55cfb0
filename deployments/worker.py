"""`incarnate worker --pool NAME`: the Prefect process worker of one container host.

A stack registered with `--pool NAME` has its deployments in that work pool (deployments/serve.py);
the worker on the stack's host polls the pool and runs each flow in a process of its own on that
host, against the host's own Docker engine, so dumps and archives stream from the host straight
to the store. At most --max-runs runs at once (the worker's limit); the others wait in the pool,
in the order they were due. Its runs beat as often as serve's, for the same crash detection.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

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


def main(pool: str, max_runs: int, settings: AlertSettings) -> int:
    """Run Prefect's process worker for the pool until it ends or this process is asked to stop; the exit code."""
    ensure_pool(pool)
    os.environ["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] = str(settings.heartbeat_seconds)
    os.environ["PREFECT_WORKER_QUERY_SECONDS"] = str(POLL_SECONDS)
    print(f"worker of pool {pool}: runs its flows on this host (engine {os.environ.get('DOCKER_HOST') or 'local'}), "
          f"at most {max_runs} at once (--max-runs, INCARNATE_MAX_RUNS); the others wait their turn, in order", flush=True)
    prefect = str(Path(sys.executable).with_name("prefect"))
    asked = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: asked.set())
    # Its own process group: a terminal's Ctrl-C reaches this process only, which says when the worker ends.
    worker = subprocess.Popen([prefect, "worker", "start", "--pool", pool, "--type", ProcessWorker.type,
                               "--limit", str(max_runs)], process_group=0)
    while worker.poll() is None and not asked.wait(1):
        pass
    if worker.poll() is None:
        stop(worker)
        return 0
    return worker.returncode


def stop(worker: subprocess.Popen) -> None:
    """Stop Prefect's worker once the flow runs it started have ended. Its first SIGINT stops it taking runs, but
    Prefect 3's worker then never ends by itself, even with nothing running; its second SIGINT kills it at once."""
    worker.send_signal(signal.SIGINT)
    while worker.poll() is None and running_children(worker.pid):
        time.sleep(1)
    if worker.poll() is None:
        worker.send_signal(signal.SIGINT)
        worker.wait()


def running_children(pid: int) -> bool:
    """Whether the process has children: the process worker runs each flow run as one."""
    try:
        return any((task / "children").read_text().strip() for task in Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return False
