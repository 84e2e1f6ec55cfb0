"""Benchmark: `incarnate serve` for a fleet of registered customers, most of them registrations only.

    .venv/bin/python bench/fleet_scale.py [--stacks 1000] [--running 0] [--pool NAME] [--database sqlite]
        [--hosts-cpus CPUS] [--no-night] [--triggers 5] [--max-runs N]

Makes N customer repos (stack.yaml only, demo 1.0.0, one shared store, time zones spread over the world) and registers
them in a registry of its own; `--running K` of them are installed demo stacks (as bench/nightly_scale.py makes them).
Then: the seconds `incarnate serve` takes from its start until its deployments are served (it reads every registered
repo, makes one deployment per flow with a schedule per stack, and the alert automations), the memory (RSS) of its
process tree while idle, how long the server's scheduler takes to make the runs ahead for the fleet's schedules and how
long serve's log archiver takes to open every stack once (both measured before the buttons: a server busy inserting runs
answers late, and serve is busiest until its archiver opened its stacks), the seconds from a button's run (a verify run
of a stack, created as the UI or CI creates it) until the run started, for `--triggers` runs one at a time, one nightly
window of the running stacks (every backup due at one instant) when K > 0 (unless `--no-night`), and the seconds serve
takes to stop on SIGTERM. With `--pool NAME` the stacks not running are registered in that work pool instead (Prefect's
other way to place runs: a worker per container host): serve makes the pool's deployments, and `incarnate worker --pool
NAME` on this machine is measured as serve is (ready, memory, the buttons, its stop). With `--hosts-cpus 1` the running
stacks are installed on a Docker engine of their own whose daemon and containers are held to CPU 1 (a cpuset cgroup, one
CPU share for all of them): on a real fleet the stacks run on hosts of their own, not on the serving side's cores, and a
button's latency is the serving side's. The Prefect database (SQLite under INCARNATE_HOME, or with `--database
postgresql` the one set-up made) is measured before and after: its growth is the fleet's deployments and the scheduled
runs the server makes for them. Last, with serve stopped, two rounds of an archiver over the fleet (its first, which
opens every stack, and the next), one stack at a time and INCARNATE_ARCHIVE_PARALLEL at once. Everything it made is
removed at the end. Run it where nothing else runs.
"""

import argparse
import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cli import prefect_server  # noqa: E402

prefect_server.connect()  # before Prefect is first imported: it reads its settings then

from prefect.client.orchestration import get_client  # noqa: E402
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags  # noqa: E402
from prefect.exceptions import ObjectNotFound  # noqa: E402

from bench.nightly_scale import (  # noqa: E402
    Press,
    app_ports,
    attempt,
    customer_repo,
    delete_served,
    forget_stack,
    incarnate,
    one_night,
    print_latencies,
    process_tree_rss_mb,
    remove_stack,
    start_serving,
    trigger_latencies,
    workspace,
)
from deployments import archiver  # noqa: E402
from deployments.run_start import SERVING  # noqa: E402
from deployments.stacks import resolve  # noqa: E402
from incarnate import settings  # noqa: E402
from tests.e2e.conftest import forget_store_key  # noqa: E402
from tests.servers import PREFECT_DB_PORT, psql, start_engine  # noqa: E402

SCHEDULES = 3  # a stack's: nightly backup, weekly drill, weekly verify (the scheduler keeps three runs ahead of each)
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC", "Australia/Sydney", "America/Sao_Paulo")


def database_bytes(kind: str) -> int | None:
    """The Prefect server's database: the SQLite file with its write-ahead log under INCARNATE_HOME, or the
    PostgreSQL database set-up made (INCARNATE_PREFECT_DB_PORT, _NAME); None when there is none to measure."""
    if kind == "postgresql":
        port, name = (
            os.environ.get("INCARNATE_PREFECT_DB_PORT", PREFECT_DB_PORT),
            os.environ.get("INCARNATE_PREFECT_DB_NAME", "prefect"),
        )
        try:
            return int(psql(name, "select pg_database_size(current_database())", port))
        except subprocess.CalledProcessError:
            return None
    base = settings.home() / "prefect" / "prefect.db"
    parts = [base, base.with_name("prefect.db-wal")]
    return sum(part.stat().st_size for part in parts if part.exists()) if base.exists() else None


WORKING = "started!"  # Prefect's worker says `Worker '...' started!` once it polls its pool


def ready_within(process: subprocess.Popen, log: Path, started: float, says: str = SERVING) -> float:
    """Seconds from `started` until the process said `says` (serve: its deployments are served)."""
    while says not in log.read_text(errors="replace"):
        if process.poll() is not None:
            raise SystemExit(f"{process.args[1]} ended before it was ready: {log.read_text()[-1500:]}")
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


def archiver_rounds(stacks: list[tuple[str, str | None]], parallel: int) -> tuple[float, float]:
    """Seconds of an archiver's first round over these stacks (repo, host), each opened, and of its next one, with
    `parallel` stacks at once: what a round of serve's archiver does, without serve's other work beside it."""
    rounds, took = archiver.Rounds(), []
    for _ in range(2):
        began = time.monotonic()
        rounds.hosts = archiver.Hosts()
        archiver.each_at_once(lambda stack: rounds.ship(*stack, lambda said: None), stacks, parallel)
        took.append(time.monotonic() - began)
    return took[0], took[1]


def print_archiver_rounds(stacks: list[tuple[str, str | None]]) -> None:
    one_first, one_next = archiver_rounds(stacks, 1)
    parallel = settings.archive_parallel()
    first, following = archiver_rounds(stacks, parallel)
    print(
        f"an archiver's rounds over the {len(stacks)} stacks, one at a time: first {one_first:.1f} s, next "
        f"{one_next:.1f} s; {parallel} at once (INCARNATE_ARCHIVE_PARALLEL): first {first:.1f} s "
        f"({one_first / first:.1f}x faster), next {following:.1f} s ({one_next / following:.1f}x)"
    )


def stop_seconds(serving: subprocess.Popen) -> float:
    started = time.monotonic()
    os.killpg(serving.pid, signal.SIGTERM)
    serving.wait(600)
    return time.monotonic() - started


def registration(repo: Path, pool: str | None, host: str | None = None) -> str:
    if pool:
        return f"- repo: {repo}\n  pool: {pool}\n"
    return f"- repo: {repo}\n  host: {host}\n" if host else f"- {repo}\n"


HOSTS = "incarnate-bench-hosts"  # the engine and the cgroup of --hosts-cpus
ADDRESS_PREFIX = "10.232."  # its networks' (a /16 of their own)


def first_round(log: Path, serving: subprocess.Popen, seconds: float = 900) -> str:
    """What serve said of its archiver's first round (each stack it serves opened once), once it ended."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and serving.poll() is None:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("archiving: the first round"):
                return line.removeprefix("archiving: ")
        time.sleep(1)
    return f"no first round said within {seconds:.0f} s"


@contextlib.contextmanager
def engine_on_cpus(cpus: str | None) -> Iterator[str | None]:
    """With `cpus`, a Docker engine of its own whose daemon and containers run on those CPUs only (a cpuset
    cgroup, their CPU share one group's): the hosts of a fleet, which on a real one are not the serving side's
    cores. Stopped and its data removed at the end; without `cpus`, this machine's engine (None)."""
    if not cpus:
        yield None
        return
    if not Path("/sys/fs/cgroup/cpuset/cpuset.cpus").exists():
        raise SystemExit(
            "--hosts-cpus needs cgroup v1's cpuset hierarchy (/sys/fs/cgroup/cpuset); this machine has none"
        )
    cpuset = Path("/sys/fs/cgroup/cpuset") / HOSTS
    cpuset.mkdir(exist_ok=True)
    (cpuset / "cpuset.cpus").write_text(cpus)
    (cpuset / "cpuset.mems").write_text(Path("/sys/fs/cgroup/cpuset/cpuset.mems").read_text())
    try:
        yield start_engine(HOSTS, f"{ADDRESS_PREFIX}0.0/16", f"/{HOSTS}")
    finally:
        stop_engine(HOSTS)


def stop_engine(name: str) -> None:
    """The engine start_engine made, and all it left: what still runs in its cgroup (the daemon gives up on
    containers that take longer than its shutdown timeout to stop), its mounts, bridges, cgroups and data."""
    pidfile = Path(f"/run/{name}.pid")
    if pidfile.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
        deadline = time.monotonic() + 120
        while pidfile.exists() and time.monotonic() < deadline:  # the daemon removes it once it shut down
            time.sleep(0.5)
        if pidfile.exists():
            print(f"the engine {name} did not stop within 120 s; it and its data in /var/lib/{name} stay")
            return
    groups = [hierarchy / name for hierarchy in Path("/sys/fs/cgroup").iterdir() if (hierarchy / name).is_dir()]
    for _ in range(20):
        left = {int(pid) for group in groups for tasks in group.rglob("tasks") for pid in tasks.read_text().split()}
        if not left:
            break
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    roots = (f"/var/lib/{name}", f"/run/{name}")
    for mount in sorted((m for m in mounts if m in roots or m.startswith(tuple(f"{r}/" for r in roots))), reverse=True):
        subprocess.run(["umount", "--lazy", mount], capture_output=True)
    for bridge in json.loads(subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True).stdout or "[]"):
        if any(address.get("local", "").startswith(ADDRESS_PREFIX) for address in bridge.get("addr_info", [])):
            subprocess.run(["ip", "link", "delete", bridge["ifname"]], capture_output=True)
    for group in groups:
        for child in sorted(group.rglob("*"), reverse=True):
            if child.is_dir():
                with contextlib.suppress(OSError):
                    child.rmdir()
        with contextlib.suppress(OSError):
            group.rmdir()
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)
    Path(f"/run/{name}.json").unlink(missing_ok=True)


def delete_pool(pool: str) -> None:
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectNotFound):
        client.delete_work_pool(pool)


def measure_worker(client, pool: str, stacks: list[str], max_runs: int, env: dict[str, str], log: Path) -> None:
    """`incarnate worker --pool POOL` here: ready, idle memory, the buttons of the pool's `stacks`, its stop."""
    began = time.monotonic()
    worker = start_serving(max_runs, env, log, ("worker", "--pool", pool))
    try:
        print(f"worker of pool {pool} ready (polling) after {ready_within(worker, log, began, WORKING):.1f} s")
        print(f"the worker's process tree idle: {idle_rss_mb(worker.pid):.0f} MB RSS")
        print_latencies(trigger_latencies(client, stacks), f" (in pool {pool}, run by its worker)")
        print(f"worker stopped {stop_seconds(worker):.1f} s after SIGTERM")
    finally:
        if worker.poll() is None:
            worker.kill()


def fresh_latencies(client, stacks: list[str], max_runs: int, env: dict[str, str], log: Path) -> list[Press]:
    """The buttons again, serve started anew with runs started as Prefect's serve starts them (INCARNATE_RUN_START=
    fresh: a new Python each), once its archiver opened its stacks as before: the baseline of the forked starts."""
    began = time.monotonic()
    serve = start_serving(max_runs, {**env, "INCARNATE_RUN_START": "fresh"}, log)
    try:
        ready_within(serve, log, began)
        first_round(log, serve)
        return trigger_latencies(client, stacks)
    finally:
        stop_seconds(serve)


def print_run_starts(forked: list[Press], fresh: list[Press]) -> None:
    """The medians of both ways, the button's whole wait and its part after serve took the run (its process start)."""
    print_latencies(fresh, " (runs started fresh, as Prefect's serve starts them)")
    waits = {
        what: [statistics.median(measure(press) for press in presses) for presses in (forked, fresh)]
        for what, measure in (
            ("button to start", lambda press: press.started),
            ("taken to start (the run's process starting)", lambda press: press.started - press.taken),
        )
    }
    for what, (quick, slow) in waits.items():
        print(f"{what}, median: forked {quick:.2f} s, fresh {slow:.2f} s ({slow / max(quick, 0.01):.1f}x)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", type=int, default=1000, help="registered customers (default 1000)")
    parser.add_argument("--running", type=int, default=0, help="of them, installed demo stacks (default 0)")
    parser.add_argument("--pool", default=None, help="register the stacks not running in this work pool")
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the kind of the Prefect server's database, to measure its size (default sqlite)",
    )
    parser.add_argument(
        "--hosts-cpus",
        default=None,
        metavar="CPUS",
        help="run the installed stacks on a Docker engine of their own held to these CPUs (e.g. 1): "
        "the serving side then keeps the other cores, as it would beside hosts of their own",
    )
    parser.add_argument(
        "--night",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the running stacks' nightly window (default; bench/nightly_scale.py measures it on its own)",
    )
    parser.add_argument("--triggers", type=int, default=5, help="button runs measured one at a time (default 5)")
    parser.add_argument("--max-runs", type=int, default=settings.max_runs())
    args = parser.parse_args()
    tag, folder, store, env = workspace("fleet")
    stacks = [f"f{tag}x{number:04d}" for number in range(args.stacks)]
    running = stacks[: args.running]
    serve, failed = None, 0
    with engine_on_cpus(args.hosts_cpus) as host:
        try:
            started = time.monotonic()
            ports = app_ports(len(running))
            repos = [customer_repo(folder, stack, store, port) for stack, port in zip(running, ports, strict=True)]
            repos += [  # registered, never installed: what serve reads of most customers
                customer_repo(folder, stack, store, more=f"timezone: {ZONES[index % len(ZONES)]}\n")
                for index, stack in enumerate(stacks[len(running) :])
            ]
            where = ("--host", host) if host else ()
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                list(pool.map(lambda repo: incarnate("install", str(repo), *where, env=env), repos[: len(running)]))
            pools = [None] * len(running) + [args.pool] * (len(repos) - len(running))
            registrations = "".join(registration(repo, pool, host) for repo, pool in zip(repos, pools, strict=True))
            (folder / "customers.yaml").write_text("customers:\n" + registrations)
            os.chmod(folder / "customers.yaml", 0o600)
            print(
                f"{args.stacks} customers registered ({len(running)} installed) in {time.monotonic() - started:.0f} s"
            )
            before = database_bytes(args.database)
            log = folder / "serve.log"
            began = time.monotonic()
            serve = start_serving(args.max_runs, {**env, "INCARNATE_RUN_START": "forked"}, log)
            ready = ready_within(serve, log, began)
            print(f"serve ready (its deployments served) after {ready:.1f} s")
            print(f"serve's process tree idle: {idle_rss_mb(serve.pid):.0f} MB RSS")
            with get_client(sync_client=True) as client:
                made, waited = scheduler_settled(client, env["INCARNATE_SERVE_NAME"], 3 * SCHEDULES * args.stacks)
                print(f"the server's scheduler made {made:,} runs ahead for the fleet within {waited:.0f} s")
                if not args.pool or running:  # serve archives the stacks not in a pool: busiest until it opened them
                    print(f"serve's archiver: {first_round(log, serve)}")
                if args.pool:
                    pooled = stacks[len(running) :][: args.triggers]
                    measure_worker(client, args.pool, pooled, args.max_runs, env, folder / "worker.log")
                if running or not args.pool:
                    forked = trigger_latencies(client, stacks[: args.triggers])
                    print_latencies(forked, " (runs forked, serve's default)")
                if running and args.night:
                    deployments = {stack: resolve(client, f"backup/{stack}") for stack in running}
                    night = one_night(client, deployments, serve)
                    failed = night["failed"]
                    print(
                        f"one night of {len(running)} running stacks: last backup ended {night['seconds']:.1f} s after "
                        f"the instant, peak {night['peak_mb']:.0f} MB RSS, {night['failed']} failed"
                    )
            print(f"serve stopped {stop_seconds(serve):.1f} s after SIGTERM")
            if running or not args.pool:
                with get_client(sync_client=True) as client:
                    fresh = fresh_latencies(client, stacks[: args.triggers], args.max_runs, env, folder / "fresh.log")
                print_run_starts(forked, fresh)
            hosts = [host] * len(running) + [None] * (len(repos) - len(running))
            print_archiver_rounds([(str(repo), where) for repo, where in zip(repos, hosts, strict=True)])
            after = database_bytes(args.database)
            if before is None or after is None:
                print(f"Prefect database: no {args.database} database found to measure")
            else:
                print(f"Prefect database: {after / 2**20:.0f} MiB, {(after - before) / 2**20:+.1f} MiB for this fleet")
        finally:
            if serve is not None and serve.poll() is None:
                serve.kill()
            attempt("deleting the deployments", delete_served, env["INCARNATE_SERVE_NAME"])
            for stack in running:  # on the bench's own engine they go with it (stop_engine), at once
                attempt(f"removing {stack}", forget_stack if host else remove_stack, stack)
            if args.pool:
                attempt(f"deleting the work pool {args.pool}", delete_pool, args.pool)
            attempt("forgetting the store's key", forget_store_key, store)
            shutil.rmtree(folder, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
