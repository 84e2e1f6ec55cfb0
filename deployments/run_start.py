"""How `incarnate serve` starts a run's process: forked from a process that imported the flows when serve started.

Prefect's `serve` starts each run as `python -m prefect.engine`, a new Python that imports Prefect and loads the flow
from its entrypoint before the run begins: 1.35 s of a quiet core, several seconds of a busy one, most of what a
button's run waits (bench/fleet_scale.py). Here the runner is handed each deployment's flow, as Prefect's own
`flow.serve()` does, so it starts a run from the flow it holds through multiprocessing; and multiprocessing's fork
server, started with serve and having imported the flows once, forks each run: 0.45 s to the flow's body.

Not a fork of serve itself: serve has threads (the archiver, Prefect's loops), and the fork of a threaded process can
inherit a lock another thread held. The fork server has one thread and nothing but imported modules, so a run is what
a new Python that imported them would be: Prefect hands each run its whole environment and settings, as it does a
spawned one, and `random` reseeds in every fork. The flows are the ones serve started with: after incarnate itself is
upgraded, restart serve (as for a new registration).

INCARNATE_RUN_START=fresh starts every run as Prefect's `serve` does, a new Python each (default `forked`).
"""

import asyncio
import multiprocessing
import sys
from collections.abc import Iterable
from multiprocessing import forkserver
from types import ModuleType

import prefect.flow_engine
from prefect import Flow
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import TerminationSignal
from prefect.runner import Runner

from incarnate import settings

# Before these, multiprocessing's fork server listened on an abstract socket any local user could ask for a fork
# (CVE-2022-42919): such a Python starts runs fresh.
SAFE_FORK_SERVER = (3, 11, 1)
SERVING = "Your deployments are being served"  # said, as Prefect's serve says it, once every deployment is made


class SpawnFromForkServer:
    """multiprocessing as Prefect's engine sees it: asked for the spawn context, it gets the fork server's."""

    def __init__(self, context: multiprocessing.context.BaseContext) -> None:
        self.context = context

    def get_context(self, method: str | None = None) -> multiprocessing.context.BaseContext:
        return self.context if method == "spawn" else multiprocessing.get_context(method)

    def __getattr__(self, name: str) -> object:
        return getattr(multiprocessing, name)


def fork_server(modules: Iterable[str], engine: ModuleType = prefect.flow_engine) -> str | None:
    """Start the fork server, `modules` imported, and have Prefect's engine start runs from it, as INCARNATE_RUN_START
    says; why not, when runs start fresh. Call it from the main thread: the fork server keeps the niceness of the
    thread that starts it (the archiver's is +10)."""
    if settings.run_start() == "fresh":
        return "INCARNATE_RUN_START=fresh"
    if sys.version_info < SAFE_FORK_SERVER:
        return f"Python {'.'.join(map(str, sys.version_info[:3]))}'s fork server is not safe to use"
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["__main__", *sorted(set(modules))])
    forkserver.ensure_running()
    engine.multiprocessing = SpawnFromForkServer(context)
    return None


def serve(deployments: list[RunnerDeployment], flows: list[Flow], limit: int, query_seconds: float) -> None:
    """Prefect's `serve` of these deployments until SIGTERM or SIGINT; their runs forked from a fork server of
    `flows`' modules unless they must start fresh. The serve log says which."""
    fresh = fork_server(flow.fn.__module__ for flow in flows)
    runner = Runner(pause_on_shutdown=True, limit=limit, query_seconds=query_seconds)
    held = {flow.name: flow for flow in flows}
    for deployment in deployments:
        made = runner.add_deployment(deployment)
        if not fresh:
            # What Prefect's flow.serve() does with its flow: the runner starts a run from the flow it holds.
            runner._deployment_registry.register_flow(made, held[deployment.flow_name])
    print(
        f"runs start: each in a new Python ({fresh})"
        if fresh
        else "runs start: forked from a process that imported the flows once (INCARNATE_RUN_START=fresh: a new Python)"
    )
    print(f"{SERVING}: {', '.join(f'{made.flow_name}/{made.name}' for made in deployments)}")
    try:
        asyncio.run(runner.start())
    except (KeyboardInterrupt, TerminationSignal) as signal:
        print(f"{type(signal).__name__}: stopped serving")
