"""Benchmark: `incarnate serve` for a fleet of registered customers, most of them registrations only.

    .venv/bin/python bench/fleet_scale.py [--stacks 1000] [--running 0] [--triggers 5] [--max-runs N]

Makes N customer repos (stack.yaml only, demo 1.0.0, one shared store, time zones spread over the world) and registers
them in a registry of its own; `--running K` of them are installed demo stacks (as bench/nightly_scale.py makes them).
Then: the seconds `incarnate serve` takes from its start until its deployments are served (it reads every registered
repo, makes one deployment per flow with a schedule per stack, and the alert automations), the memory (RSS) of its
process tree while idle, how long the server's scheduler takes to make the runs ahead for the fleet's schedules
(measured before the buttons: a server busy inserting them answers late), the seconds from a button's run (a verify
run of a stack, created as the UI or CI creates it) until the run started, for `--triggers` runs one at a time, one
nightly window of the running stacks (every backup due at one instant) when K > 0, and the seconds serve takes to stop
on SIGTERM. The Prefect database (SQLite) is measured before and after: its growth is the fleet's deployments and the
scheduled runs the server makes for them. Everything it made is removed at the end. Run it where nothing else runs.
"""

import argparse
import concurrent.futures
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cli import prefect_server  # noqa: E402

prefect_server.connect()  # before Prefect is first imported: it reads its settings then

from prefect.client.orchestration import get_client  # noqa: E402
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags  # noqa: E402

from bench.nightly_scale import (  # noqa: E402
    app_ports,
    customer_repo,
    incarnate,
    one_night,
    process_tree_rss_mb,
    start_serve,
    workspace,
)
from deployments.stacks import read_all_deployments, resolve  # noqa: E402
from incarnate import settings  # noqa: E402
from tests.e2e.conftest import COMPOSE, SERVING, forget_on_prefect_server, forget_store_key  # noqa: E402

SCHEDULES = 3  # a stack's: nightly backup, weekly drill, weekly verify (the scheduler keeps three runs ahead of each)
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC", "Australia/Sydney", "America/Sao_Paulo")


def database_bytes() -> int | None:
    """The Prefect server's SQLite database with its write-ahead log; None when the server keeps it elsewhere."""
    base = settings.home() / "prefect" / "prefect.db"
    parts = [base, base.with_name("prefect.db-wal")]
    return sum(part.stat().st_size for part in parts if part.exists()) if base.exists() else None


def served_within(serve: subprocess.Popen, log: Path, started: float) -> float:
    while SERVING not in log.read_text(errors="replace"):
        if serve.poll() is not None:
            raise SystemExit(f"serve ended before its deployments were served: {log.read_text()[-1500:]}")
        time.sleep(0.2)
    return time.monotonic() - started


def idle_rss_mb(pid: int, seconds: float = 10) -> float:
    peak, deadline = 0.0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak = max(peak, process_tree_rss_mb(pid))
        time.sleep(1)
    return peak


def scheduler_settled(client, serving: str, expected: int, seconds: float = 180) -> tuple[int, float]:
    """Wait until the server's scheduler made the runs ahead for the fleet's schedules (it looks every 60 s and
    inserts them then: a button pressed meanwhile waits on a busy server); the runs made and the seconds waited."""
    mine = DeploymentFilter(tags=DeploymentFilterTags(all_=[f"served-by:{serving}"]))
    began, made = time.monotonic(), 0
    while time.monotonic() - began < seconds:
        made = client.count_flow_runs(deployment_filter=mine)
        if made >= expected:
            break
        time.sleep(2)
    return made, time.monotonic() - began


def trigger_latencies(client, stacks: list[str]) -> list[tuple[float, str]]:
    """Seconds from a verify run's creation until it started, and how it ended, one run at a time."""
    measured = []
    for stack in stacks:
        deployment, parameters = resolve(client, f"verify/{stack}")
        run = client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
        while not (run := client.read_flow_run(run.id)).state.is_final():
            time.sleep(0.2)
        measured.append(((run.start_time - run.created).total_seconds(), run.state.name))
    return measured


def stop_seconds(serve: subprocess.Popen) -> float:
    started = time.monotonic()
    os.killpg(serve.pid, signal.SIGTERM)
    serve.wait(600)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", type=int, default=1000, help="registered customers (default 1000)")
    parser.add_argument("--running", type=int, default=0, help="of them, installed demo stacks (default 0)")
    parser.add_argument("--triggers", type=int, default=5, help="button runs measured one at a time (default 5)")
    parser.add_argument("--max-runs", type=int, default=settings.max_runs())
    args = parser.parse_args()
    tag, folder, store, env = workspace("fleet")
    stacks = [f"f{tag}x{number:04d}" for number in range(args.stacks)]
    running = stacks[: args.running]
    serve, failed = None, 0
    try:
        started = time.monotonic()
        ports = app_ports(len(running))
        repos = [customer_repo(folder, stack, store, port) for stack, port in zip(running, ports, strict=True)]
        repos += [  # registered, never installed: what serve reads of most customers
            customer_repo(folder, stack, store, more=f"timezone: {ZONES[index % len(ZONES)]}\n")
            for index, stack in enumerate(stacks[len(running) :])
        ]
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda repo: incarnate("install", str(repo), env=env), repos[: len(running)]))
        (folder / "customers.yaml").write_text("customers:\n" + "".join(f"- {repo}\n" for repo in repos))
        os.chmod(folder / "customers.yaml", 0o600)
        print(f"{args.stacks} customers registered ({len(running)} installed) in {time.monotonic() - started:.0f} s")
        before = database_bytes()
        log = folder / "serve.log"
        began = time.monotonic()
        serve = start_serve(args.max_runs, env, log)
        ready = served_within(serve, log, began)
        print(f"serve ready (its deployments served) after {ready:.1f} s")
        print(f"serve's process tree idle: {idle_rss_mb(serve.pid):.0f} MB RSS")
        with get_client(sync_client=True) as client:
            made, waited = scheduler_settled(client, env["INCARNATE_SERVE_NAME"], 3 * SCHEDULES * args.stacks)
            print(f"the server's scheduler made {made:,} runs ahead for the fleet within {waited:.0f} s")
            measured = trigger_latencies(client, stacks[: args.triggers])
            print(
                f"button to start, {len(measured)} verify runs one at a time: "
                f"{', '.join(f'{seconds:.1f}' for seconds, _ in measured)} s (max {max(s for s, _ in measured):.1f}); "
                f"ended {', '.join(sorted({state for _, state in measured}))}"
            )
            if running:
                deployments = {stack: resolve(client, f"backup/{stack}") for stack in running}
                night = one_night(client, deployments, serve)
                failed = night["failed"]
                print(
                    f"one night of {len(running)} running stacks: last backup ended {night['seconds']:.1f} s after "
                    f"the instant, peak {night['peak_mb']:.0f} MB RSS, {night['failed']} failed"
                )
        print(f"serve stopped {stop_seconds(serve):.1f} s after SIGTERM")
        after = database_bytes()
        if before is None or after is None:
            print("Prefect database: not SQLite under INCARNATE_HOME, not measured")
        else:
            print(f"Prefect database: {after / 2**20:.0f} MiB, {(after - before) / 2**20:+.1f} MiB for this fleet")
    finally:
        if serve is not None and serve.poll() is None:
            serve.kill()
        for stack in running:
            subprocess.run([COMPOSE, "-p", stack, "down", "--volumes"], capture_output=True)
            shutil.rmtree(settings.stacks_dir() / stack, ignore_errors=True)
        for stack in running:
            forget_on_prefect_server(stack)
        with get_client(sync_client=True) as client:
            for made in read_all_deployments(
                client,
                deployment_filter=DeploymentFilter(
                    tags=DeploymentFilterTags(all_=[f"served-by:{env['INCARNATE_SERVE_NAME']}"])
                ),
            ):
                client.delete_deployment(made.id)
        forget_store_key(store)
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
