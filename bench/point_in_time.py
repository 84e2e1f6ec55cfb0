"""Benchmark: the recovery point of continuous log archiving, measured with a writer that never stops.

    .venv/bin/python bench/point_in_time.py [REPO] [--seconds 60] [--interval 10] [--losses 5]

REPO is a customer repo of the demo or pgdemo (with backup.base: physical) whose stack is installed (default: the demo
customer set-up made). A writer acknowledges
a record every 100 ms through the app's API. First without archiving (the baseline write latency), then with
`incarnate archive --follow` running every --interval seconds (its CPU read from /proc); at a random moment between
half of --seconds and --seconds the stack is lost whole (containers and volumes), then `incarnate recover`: the
records acknowledged before the loss that did not come back (the recovery point, in rows and seconds); --losses
times. Then `incarnate recover --at` a random second of the last window: the records acknowledged before it that
are missing, and those acknowledged at or after it that are present (both should be 0: binlog times are whole
seconds, a record whose commit and acknowledgement straddle the second may land on either side). Prints the write
latency with archiving against the baseline (the ratio), the archiver's CPU, the log bytes it stored, and how long
the recoveries took.
"""

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cli import prefect_server  # noqa: E402

prefect_server.connect()  # before Prefect is first imported: it reads its settings then

from blocks.resolve import backup_store  # noqa: E402
from incarnate import settings  # noqa: E402
from incarnate.log_archive import listing  # noqa: E402
from incarnate.repo import load_customer_config  # noqa: E402
from incarnate.state import read_state  # noqa: E402

INCARNATE = str(Path(sys.executable).with_name("incarnate"))


@dataclass
class Writer:
    """Posts a record every 100 ms; notes when each was acknowledged and how long it took."""

    url: str
    acked: list[tuple[float, str]] = field(default_factory=list)  # (epoch seconds, title)
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, label: str) -> None:
        number = 0
        while not self.stop.is_set():
            title = f"{label} {number}"
            began = time.perf_counter()
            try:
                request = urllib.request.Request(
                    f"{self.url}/records", data=json.dumps({"title": title}).encode(), method="POST"
                )
                with urllib.request.urlopen(request, timeout=5) as response:
                    response.read()
            except OSError:
                self.failures += 1
            else:
                self.acked.append((time.time(), title))
                self.latencies.append(time.perf_counter() - began)
            number += 1
            self.stop.wait(max(0.0, 0.1 - (time.perf_counter() - began)))


def write_for(url: str, seconds: float, label: str) -> Writer:
    writer = Writer(url)
    thread = threading.Thread(target=writer.run, args=(label,), daemon=True)
    thread.start()
    time.sleep(seconds)
    writer.stop.set()
    thread.join()
    return writer


def titles(url: str) -> set[str]:
    with urllib.request.urlopen(f"{url}/records", timeout=30) as response:
        return {record["title"] for record in json.loads(response.read())}


def incarnate(*args: str) -> tuple[float, str]:
    began = time.perf_counter()
    result = subprocess.run([INCARNATE, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"incarnate {args[0]} failed: {result.stderr[-2000:]}")
    return time.perf_counter() - began, result.stdout + result.stderr


def lose_stack(stack: str) -> None:
    """The disaster: every container and volume of the stack gone at once."""
    for kind, command in (("container", ["ps", "-aq"]), ("volume", ["volume", "ls", "-q"])):
        found = subprocess.run(
            ["docker", *command, "--filter", f"label=com.docker.compose.project={stack}"],
            capture_output=True,
            text=True,
        ).stdout.split()
        if found:
            remove = ["rm", "-f"] if kind == "container" else ["volume", "rm", "-f"]
            subprocess.run(["docker", *remove, *found], capture_output=True)


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process and its children that ended, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def log_bytes(store, stack: str) -> int:
    """Raw log bytes archived for the stack's databases (every piece's range)."""
    databases = {key.split("/")[2] for key in store.list(f"logs/{stack}")} - {"histories"}
    return sum(
        end - offset
        for database in databases
        for ranges in listing(store, stack, database).pieces.values()
        for offset, end, _, _ in ranges
    )


@dataclass
class Loss:
    """One window of writing with archiving, ended by a total loss, and the recovery after it."""

    acked: list[tuple[float, str]]  # acknowledged before the loss
    lost: list[tuple[float, str]]  # of those, not back after the recovery
    point: float  # seconds between the newest record that came back and the loss
    began: float
    lost_at: float
    latencies: list[float]
    cpu_share: float  # of one core, by the archiver once started
    recover_seconds: float


def one_loss(repo: str, stack: str, url: str, seconds: float, interval: float) -> Loss:
    archiver = subprocess.Popen(
        [INCARNATE, "archive", repo, "--follow"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "INCARNATE_ARCHIVE_SECONDS": f"{interval:g}"},
        start_new_session=True,
    )
    writer = Writer(url)
    run = f"{datetime.now(UTC):%H%M%S}-{random.randrange(1 << 16):04x}"  # titles of an earlier run are in the data
    thread = threading.Thread(target=writer.run, args=(f"archived {run}",), daemon=True)
    began = time.time()
    thread.start()
    loss_after = seconds * random.uniform(0.5, 1.0)
    settled = min(5.0, loss_after / 2)  # the archiver's start (Python, its imports) is not archiving's cost
    time.sleep(settled)
    cpu_from = cpu_seconds(archiver.pid)
    time.sleep(loss_after - settled)
    cpu = cpu_seconds(archiver.pid) - cpu_from
    lost_at = time.time()
    lose_stack(stack)
    time.sleep(0.5)
    writer.stop.set()
    thread.join()
    os.killpg(archiver.pid, signal.SIGKILL)
    archiver.wait()
    acked = [(moment, title) for moment, title in writer.acked if moment < lost_at]
    recover_seconds, _ = incarnate("recover", repo)
    present = titles(url)
    lost = [(moment, title) for moment, title in acked if title not in present]
    kept = [moment for moment, title in acked if title in present]
    point = lost_at - max(kept) if kept else float("nan")
    return Loss(acked, lost, point, began, lost_at, writer.latencies, cpu / (loss_after - settled), recover_seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", nargs="?", default=str(settings.home() / "customers" / "demo"))
    parser.add_argument("--seconds", type=float, default=60.0, help="at most this long writing before each loss")
    parser.add_argument("--interval", type=float, default=10.0, help="INCARNATE_ARCHIVE_SECONDS of the archiver")
    parser.add_argument("--losses", type=int, default=5, help="total losses, each recovered (default 5)")
    args = parser.parse_args()
    config = load_customer_config(args.repo).config
    url = f"http://127.0.0.1:{read_state_of(config.stack).http_port}"
    store = backup_store(config)

    baseline = write_for(url, max(5.0, args.seconds / 4), "baseline")
    backup_seconds, _ = incarnate("backup", args.repo)
    losses = []
    for number in range(1, args.losses + 1):
        losses.append(one_loss(args.repo, config.stack, url, args.seconds, args.interval))
        print(
            f"  loss {number}/{args.losses}: {len(losses[-1].lost)} of {len(losses[-1].acked)} records lost, "
            f"newest recovered {losses[-1].point:.1f} s before the loss",
            flush=True,
        )
    last = losses[-1]
    chosen = datetime.fromtimestamp(random.uniform(last.began + 1, last.lost_at - 1), UTC).replace(microsecond=0)
    lose_stack(config.stack)
    at_seconds, _ = incarnate("recover", args.repo, "--at", chosen.isoformat())
    at_present = titles(url)
    cut = chosen.timestamp()
    missing_before = sum(1 for moment, title in last.acked if moment < cut and title not in at_present)
    present_after = sum(1 for moment, title in last.acked if moment >= cut and title in at_present)
    lose_stack(config.stack)
    incarnate("recover", args.repo)  # the stack ends as it was: every write archived is back

    latencies = [latency for loss in losses for latency in loss.latencies]
    ratio = statistics.median(latencies) / statistics.median(baseline.latencies)
    points = [loss.point for loss in losses]
    print(
        f"writes: {sum(len(loss.acked) for loss in losses)} acknowledged in {len(losses)} windows, archiving every "
        f"{args.interval:g} s"
    )
    print(
        f"recovery point: {sum(len(loss.lost) for loss in losses)} acknowledged records lost in {len(losses)} losses; "
        f"the newest recovered record was {statistics.median(points):.1f} s (median), {max(points):.1f} s (worst) "
        f"before the loss"
    )
    print(
        f"recover --at {chosen.isoformat()}: {missing_before} records acknowledged before it missing, "
        f"{present_after} acknowledged at or after it present"
    )
    print(
        f"write latency p50/p99: {1000 * statistics.median(latencies):.1f}/{1000 * percentile(latencies, 0.99):.1f} "
        f"ms archiving, {1000 * statistics.median(baseline.latencies):.1f}/"
        f"{1000 * percentile(baseline.latencies, 0.99):.1f} ms baseline; archiving / baseline median = {ratio:.2f}"
    )
    print(
        f"archiver CPU: {100 * statistics.median(loss.cpu_share for loss in losses):.1f}% of one core (median); "
        f"{log_bytes(store, config.stack):,} bytes of log archived in all"
    )
    print(
        f"recover {statistics.median(loss.recover_seconds for loss in losses):.1f} s (median), recover --at "
        f"{at_seconds:.1f} s (whole runs, each with its closing backup); the backup before the windows "
        f"{backup_seconds:.1f} s"
    )
    return 0


def read_state_of(stack: str):
    from blocks.resolve import host
    from incarnate.stages import create_host

    state = read_state(create_host.run(host(None), stack))
    if state is None:
        raise SystemExit(f"stack {stack} is not deployed here: install it first (`incarnate install REPO`).")
    return state


if __name__ == "__main__":
    sys.exit(main())
