"""Benchmark: the nightly backups of many stacks due at one instant, as 02:00 makes them, under one `incarnate serve`.

    .venv/bin/python bench/nightly_scale.py [--stacks 16] [--max-runs N] [--nights 1] [--idle-seconds 60]
    [--install-jobs 2]

Installs N demo stacks (customer repos of its own, one shared local store, ports free on this machine), registers
them in a registry of its own, starts `incarnate serve --max-runs N`, and per night schedules every stack's backup
run (the `backup/<serve name>` deployment, the stack's repo) for one instant a few seconds ahead (what the cron does
at 02:00). It prints, per night: the seconds from that instant to the last run's end, the peak memory (RSS) of serve's
process tree (serve and the runs it started), the CPU seconds the machine spent meanwhile, and the runs that did not
complete; then every stack's newest snapshot is verified (every chunk re-read). Then five stacks' verify runs are
triggered one at a time, as a UI button or CI does, and the seconds from each trigger until its run started are
printed. Before the stacks are installed and after, it samples the share of the cores busy while nothing runs (the
stacks' health checks cost that). Everything it made is removed at the end. Run it where nothing else runs.
"""

import argparse
import concurrent.futures
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cli import prefect_server  # noqa: E402

prefect_server.connect()  # before Prefect is first imported: it reads its settings then

from prefect.client.orchestration import get_client  # noqa: E402
from prefect.client.schemas.filters import (  # noqa: E402
    DeploymentFilter,
    DeploymentFilterTags,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.client.schemas.objects import StateType  # noqa: E402
from prefect.states import Scheduled  # noqa: E402

from deployments.stacks import read_all_deployments, resolve  # noqa: E402
from incarnate import settings  # noqa: E402
from tests.e2e.conftest import COMPOSE, SERVING, forget_on_prefect_server, forget_store_key  # noqa: E402

INCARNATE = str(Path(sys.executable).with_name("incarnate"))
LEAD_SECONDS = 20  # at least this far ahead lies the instant: every run is created (Scheduled) before it comes


def app_ports(count: int, first: int = 21000) -> list[int]:
    """Ports free now below the kernel's ephemeral range: all are chosen before the first install, and a port from
    that range (what binding port 0 gives) may meanwhile be taken by any outgoing connection."""
    ports, port = [], first
    while len(ports) < count:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
                ports.append(port)
            except OSError:
                pass
        port += 1
    return ports


def customer_repo(folder: Path, stack: str, store: Path, port: int | None = None, more: str = "") -> Path:
    """A customer repo of demo 1.0.0 in the shared store; `more` adds stack.yaml lines (a time zone)."""
    repo = folder / stack
    repo.mkdir()
    published = f"http_port: {port}\n" if port else ""
    (repo / "stack.yaml").write_text(
        f"stack: {stack}\nproduct: demo\nrelease: 1.0.0\n{published}{more}"
        f"backup:\n  store:\n    kind: local\n    path: {store}\n"
    )
    for args in (["init", "-q", "--initial-branch=main"], ["add", "stack.yaml"], ["commit", "-qm", "pin demo 1.0.0"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    return repo


def workspace(kind: str) -> tuple[str, Path, Path, dict[str, str]]:
    """A bench run's own tag, folder, shared store, and the environment of its registry and serve name."""
    tag = uuid.uuid4().hex[:6]
    folder = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-", dir=os.environ.get("TMPDIR", "/var/tmp")))
    store = folder / "store"
    store.mkdir()
    return (
        tag,
        folder,
        store,
        {
            "INCARNATE_CUSTOMERS": str(folder / "customers.yaml"),
            "INCARNATE_SERVE_NAME": f"bench-{kind}-{tag}",
        },
    )


def start_serving(
    max_runs: int, env: dict[str, str], log: Path, command: tuple[str, ...] = ("serve",)
) -> subprocess.Popen:
    """`incarnate serve` (or another `command` that runs flows: a worker) in a session of its own (so its runs can be
    stopped with it), its output in `log`."""
    with open(log, "wb") as output:
        return subprocess.Popen(
            [INCARNATE, *command, "--max-runs", str(max_runs)],
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def attempt(what: str, step: Callable[..., object], *args: object) -> None:
    """One clean-up step: a failure is said and the steps after it still run (all the bench made must go, and the
    error that ended the bench is not hidden behind one of the clean-up's)."""
    try:
        step(*args)
    except Exception as error:  # noqa: BLE001 - whatever it is, the next step runs
        print(f"clean-up: {what} failed: {error}", file=sys.stderr)


def remove_stack(stack: str) -> None:
    """A stack the bench installed: its containers and volumes, then what forget_stack forgets."""
    subprocess.run([COMPOSE, "-p", stack, "down", "--volumes"], capture_output=True)
    forget_stack(stack)


def forget_stack(stack: str) -> None:
    """A stack's folder and its place on the Prefect server (its containers went with an engine of the bench's)."""
    shutil.rmtree(settings.stacks_dir() / stack, ignore_errors=True)
    forget_on_prefect_server(stack)


def delete_served(serving: str) -> None:
    """The deployments the bench's serve made, before its stacks are forgotten: taking a stack out of a deployment
    with a thousand schedules is a long update on the server, deleting the deployment one call."""
    with get_client(sync_client=True) as client:
        mine = DeploymentFilter(tags=DeploymentFilterTags(all_=[f"served-by:{serving}"]))
        for made in read_all_deployments(client, deployment_filter=mine):
            client.delete_deployment(made.id)


def incarnate(*args: str, env: dict[str, str]) -> None:
    result = subprocess.run([INCARNATE, *args], capture_output=True, text=True, env={**os.environ, **env})
    if result.returncode != 0:
        raise SystemExit(f"incarnate {' '.join(args)} failed: {result.stderr.strip()[-500:]}")


def process_tree_rss_mb(root: int) -> float:
    """RSS of `root` and every descendant, from /proc (the runs serve starts are its children)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            pages = int((entry / "statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        rss[int(entry.name)] = pages * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total / 2**20


def busy_cpu_seconds() -> float:
    """CPU seconds this machine spent on anything but idling, since boot."""
    values = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def idle_share(seconds: float) -> float:
    """The share of the machine's cores busy over `seconds` of doing nothing (the stacks' health checks, the
    Prefect server, the engine)."""
    before = busy_cpu_seconds()
    time.sleep(seconds)
    return (busy_cpu_seconds() - before) / (seconds * (os.cpu_count() or 1))


def wait_for_deployments(
    client, stacks: list[str], serve: subprocess.Popen, log: Path
) -> dict[str, tuple[object, dict]]:
    """The backup deployment that serves each stack and the parameters that name it, once serve says all are
    served."""
    while SERVING not in log.read_text(errors="replace"):
        if serve.poll() is not None:
            raise SystemExit(f"serve ended before its deployments were served: {log.read_text()[-1000:]}")
        time.sleep(1)
    return {stack: resolve(client, f"backup/{stack}") for stack in stacks}


def one_night(client, deployments: dict[str, tuple[object, dict]], serve: subprocess.Popen) -> dict[str, float]:
    """Every stack's backup scheduled for one instant; figures once all have ended."""
    instant = datetime.now(UTC) + timedelta(seconds=max(LEAD_SECONDS, len(deployments) / 2))
    runs = [
        client.create_flow_run_from_deployment(
            deployment.id, parameters=parameters, state=Scheduled(scheduled_time=instant)
        )
        for deployment, parameters in deployments.values()
    ]
    while datetime.now(UTC) < instant:
        time.sleep(0.2)
    cpu_before, peak = busy_cpu_seconds(), 0.0
    # One request a poll for all runs: a request per run would load the server being measured.
    mine = FlowRunFilter(id=FlowRunFilterId(any_=[run.id for run in runs]))
    while True:
        peak = max(peak, process_tree_rss_mb(serve.pid))
        states = client.read_flow_runs(flow_run_filter=mine, limit=len(runs))
        if len(states) == len(runs) and all(run.state.is_final() for run in states):
            break
        time.sleep(1)
    last_end = max(run.end_time for run in states)
    return {
        "seconds": (last_end - instant).total_seconds(),
        "peak_mb": peak,
        "cpu_seconds": busy_cpu_seconds() - cpu_before,
        "failed": sum(1 for run in states if run.state.name != "Completed"),
    }


@dataclass
class Press:
    """A button's run: seconds from its creation until it was taken (Pending: serve or a worker asked for it and
    starts its process) and until it started (Running: the process began the flow), and how it ended."""

    taken: float
    started: float
    ended: str


def trigger_latencies(client, stacks: list[str]) -> list[Press]:
    """A verify run of each stack, one at a time, as the UI's button or CI creates it."""
    measured = []
    for stack in stacks:
        deployment, parameters = resolve(client, f"verify/{stack}")
        run = client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
        while not (run := client.read_flow_run(run.id)).state.is_final():
            time.sleep(0.2)
        states = client.read_flow_run_states(run.id)
        pending = min(state.timestamp for state in states if state.type == StateType.PENDING)
        measured.append(
            Press(
                (pending - run.created).total_seconds(),
                (run.start_time - run.created).total_seconds(),
                run.state.name,
            )
        )
    return measured


def print_latencies(measured: list[Press], where: str) -> None:
    print(
        f"button to start{where}, {len(measured)} verify runs one at a time: "
        f"{', '.join(f'{press.started:.1f}' for press in measured)} s (max {max(p.started for p in measured):.1f}); "
        f"taken after {', '.join(f'{press.taken:.1f}' for press in measured)} s; "
        f"ended {', '.join(sorted({press.ended for press in measured}))}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", type=int, default=16)
    parser.add_argument("--max-runs", type=int, default=settings.max_runs())
    parser.add_argument("--nights", type=int, default=1)
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=60,
        help="how long the idle cost is sampled, before and after the stacks are installed (default 60)",
    )
    parser.add_argument(
        "--install-jobs", type=int, default=2, help="stacks installed at once while setting up (default 2)"
    )
    args = parser.parse_args()
    tag, folder, store, env = workspace("nightly")
    stacks = [f"n{tag}x{number}" for number in range(args.stacks)]
    serve, failed, bad = None, 0, []
    try:
        idle_before = idle_share(args.idle_seconds)
        print(f"installing {args.stacks} demo stacks (one shared store, {args.install_jobs} at once)")
        started = time.monotonic()
        repos = [
            customer_repo(folder, stack, store, port)
            for stack, port in zip(stacks, app_ports(len(stacks)), strict=True)
        ]
        with concurrent.futures.ThreadPoolExecutor(args.install_jobs) as pool:
            list(pool.map(lambda repo: incarnate("install", str(repo), env=env), repos))
        for repo in repos:  # one at a time: the registry file is rewritten by each
            incarnate("register", str(repo), env=env)
        print(f"installed and registered in {time.monotonic() - started:.0f} s")
        idle_after = idle_share(args.idle_seconds)
        print(
            f"idle, {args.idle_seconds:.0f} s each: {idle_before:.1%} of the cores busy without the stacks, "
            f"{idle_after:.1%} "
            f"with {args.stacks} (their health checks, {(idle_after - idle_before) / args.stacks:.2%} a stack)"
        )
        log = folder / "serve.log"
        serve = start_serving(args.max_runs, env, log)
        with get_client(sync_client=True) as client:
            deployments = wait_for_deployments(client, stacks, serve, log)
            time.sleep(3)  # the runner polls for its deployments' runs from now on
            print(
                f"{'night':<7}{'stacks':>7}{'max runs':>9}{'s to last end':>15}{'peak RSS MB':>13}"
                f"{'CPU s':>8}{'failed':>8}"
            )
            for night in range(1, args.nights + 1):
                figures = one_night(client, deployments, serve)
                failed += figures["failed"]
                print(
                    f"{night:<7}{args.stacks:>7}{args.max_runs:>9}{figures['seconds']:>15.1f}{figures['peak_mb']:>13.0f}"
                    f"{figures['cpu_seconds']:>8.0f}{figures['failed']:>8}"
                )
            print_latencies(trigger_latencies(client, stacks[:5]), "")
        bad = [
            stack
            for stack in stacks
            if subprocess.run(
                [INCARNATE, "verify", str(folder / stack)], capture_output=True, env={**os.environ, **env}
            ).returncode
            != 0
        ]
        print(f"verified the newest snapshot of {len(stacks)} stacks (every chunk re-read): {len(bad)} bad {bad or ''}")
    finally:
        if serve is not None:
            serve.terminate()  # it pauses its deployments' schedules on its way out
            try:
                serve.wait(300)
            except subprocess.TimeoutExpired:
                serve.kill()
        attempt("deleting the deployments", delete_served, env["INCARNATE_SERVE_NAME"])
        for stack in stacks:
            attempt(f"removing {stack}", remove_stack, stack)
        attempt("forgetting the store's key", forget_store_key, store)
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if failed or bad else 0


if __name__ == "__main__":
    sys.exit(main())
