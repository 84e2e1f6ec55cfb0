"""Benchmark: backup and disaster recovery of a filled stack against the hand floor and restic, in one run.

    .venv/bin/python bench/recovery_speed.py [CUSTOMER_REPO] [--gb 1.0] [--memory-at 2.0]

CUSTOMER_REPO defaults to the demo customer that `scripts/setup.sh` makes (installed first if it does not run).
Fills its demo stack (a database whose dump is about GB, and GB of files, half random, half text; on later runs
what is there is kept when it has that size, grown or cut back when not), then back to back:

- backup: `incarnate backup` (the command, whole) against the hand floor (the same dump and volume read by hand
  the fastest way measured: `docker exec ... mariadb-dump | dd obs=1M` and `docker cp` of the volume out of a created
  helper, at once, into files), the best of two runs each in turns: first with the random half of the files written
  anew before each turn (a backup that stores new data, compressed and sealed), once the database has written back
  and purged what an earlier load left (whoever read first would pay for it), then with nothing changed (a nightly
  one, its chunks stored already); and restic fed as users typically do (`docker exec ... mariadb-dump | restic
  backup --stdin`, `docker run ... tar | restic backup --stdin`, one after the other);
- recovery: the stack removed, `incarnate recover` (whole) against the hand floor (the database service up, the
  dump loaded, the tar extracted, `docker compose up --wait`, its health checks every second: bench/fast_health.py).

Then the volume's extract alone: the same archive (the floor's files.tar) into a fresh volume by incarnate's own
`extract` (filtered, unpacked by the engine) and by `docker run -i ... tar -x` from the file.

Prints seconds, the ratios the speed issue names, the time until the app is healthy (from the command's start until
the app's own health URL, what its health check asks, first answers 200: polled every 0.1 s) and the peak memory
(RSS) of incarnate's backup and recover
commands. With --memory-at, the data then grows to that size and incarnate backs up (twice: storing the new data,
then reusing it) and recovers it again: the peak memory at both sizes and their ratio, a backup of data stored already
compared with one at the first size (it must stay flat: nothing is staged). The stack is left with incarnate's files
and the data at the last size. Run it on a machine where nothing else runs.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cli import prefect_server  # noqa: E402

prefect_server.connect()  # before Prefect is first imported: it reads its settings then

from bench.fast_health import fast_health_override  # noqa: E402
from examples.demo.build import BASE_IMAGE  # noqa: E402  (GNU tar: the hand baseline's tool)
from incarnate import settings  # noqa: E402
from incarnate.datasources.database import in_large_writes  # noqa: E402
from incarnate.datasources.volume import extract  # noqa: E402
from incarnate.host import Host  # noqa: E402
from incarnate.repo import load_customer_config  # noqa: E402
from incarnate.stages import create_host  # noqa: E402

INCARNATE = str(Path(sys.executable).with_name("incarnate"))
ROW_BYTES = 560  # of dump per row inserted below


def sh(*args: str, stdin=None, stdout=subprocess.DEVNULL) -> None:
    subprocess.run(list(args), check=True, stdin=stdin, stdout=stdout)


def timed(what: str, call) -> float:
    began = time.perf_counter()
    call()
    seconds = time.perf_counter() - began
    print(f"  {what:<52} {seconds:7.1f} s")
    return seconds


@contextmanager
def until_healthy(url: str) -> Iterator[dict[str, float]]:
    """Within the block, polls `url` every 0.1 s; yields a dict that gets "seconds": from the block's start until
    the first 200."""
    began, seen, done = time.perf_counter(), {}, threading.Event()

    def poll() -> None:
        while not done.is_set():
            try:
                with urllib.request.urlopen(url, timeout=1) as answer:
                    if answer.status == 200:
                        seen["seconds"] = time.perf_counter() - began
                        return
            except OSError:
                pass  # not up yet
            done.wait(0.1)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    try:
        yield seen
    finally:
        done.set()
        watcher.join()


def fill(db: str, app: str, gigabytes: float) -> None:
    """A table whose dump is about `gigabytes`, and as many bytes of files; what is there already is kept (a larger
    table from an earlier --memory-at is cut back to size, and larger files are written anew)."""
    sh(
        "docker",
        "exec",
        db,
        "mariadb",
        "demo",
        "-e",
        "CREATE TABLE IF NOT EXISTS bench (id INT PRIMARY KEY, body TEXT) ENGINE=InnoDB",
    )
    have = int(
        subprocess.run(
            ["docker", "exec", db, "mariadb", "demo", "-N", "-e", "SELECT COALESCE(MAX(id), 0) FROM bench"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    rows, half = int(gigabytes * 1e9 / ROW_BYTES), int(gigabytes * 1e9 / 2)
    if have > rows:
        print(f"shrinking: {have - rows:,} rows fewer")
        sh("docker", "exec", db, "mariadb", "demo", "-e", f"DELETE FROM bench WHERE id > {rows}")
    step = 1_000_000
    for first in range(have, rows, step):
        last = min(rows, first + step)
        sh(
            "docker",
            "exec",
            db,
            "mariadb",
            "demo",
            "-e",
            f"INSERT INTO bench SELECT seq, REPEAT(MD5(seq), 16) FROM seq_{first + 1}_to_{last}",
        )
    sizes = subprocess.run(
        ["docker", "exec", app, "sh", "-c", "stat -c %s /data/files/random.bin /data/files/text.log"],
        capture_output=True,
        text=True,
    ).stdout.split()
    if sizes != [str(half)] * 2:
        print(f"writing {gigabytes:g} GB of files")
        renew_random(app, half)
        sh(
            "docker",
            "exec",
            app,
            "sh",
            "-c",
            f"yes 'a line of a log file the app keeps, with some words in it' | head -c {half} > /data/files/text.log",
        )


def settle(db: str, limit: float = 180.0) -> None:
    """Wait until the database has done what a load left it to do in the background (writing back dirty pages,
    purging history): a backup timed while it still does (just after a recovery) runs against that work, the floor
    after it does not. MariaDB stops writing back once it has no reason to (hundreds of pages may stay dirty), so
    settled is: history purged, and no fewer dirty pages than five seconds before."""
    began, before = time.monotonic(), None
    while True:
        dirty, history = innodb_backlog(db)
        if history <= 1000 and (dirty == 0 or before is not None and dirty >= before):
            print(
                f"database settled after {time.monotonic() - began:.0f} s ({dirty} dirty pages left, history {history})"
            )
            return
        if time.monotonic() - began >= limit:
            print(f"database still busy after {limit:.0f} s ({dirty} dirty pages, history {history}): timed anyway")
            return
        before = dirty
        time.sleep(5)


def innodb_backlog(db: str) -> tuple[int, int]:
    """The buffer pool's dirty pages and the history list's length."""
    query = (
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME IN "
        "('INNODB_BUFFER_POOL_PAGES_DIRTY', 'INNODB_HISTORY_LIST_LENGTH') ORDER BY VARIABLE_NAME"
    )
    dirty, history = subprocess.run(
        ["docker", "exec", db, "mariadb", "-N", "-e", query], check=True, capture_output=True, text=True
    ).stdout.split()
    return int(dirty), int(history)


def renew_random(app: str, size: int) -> None:
    """The random half of the files written anew: data no backup stored yet, settled on disk before it is timed."""
    sh("docker", "exec", app, "sh", "-c", f"head -c {size} /dev/urandom > /data/files/random.bin")
    sh("sync")


def incarnate(*args: str) -> float:
    """Run an incarnate command; the peak RSS in MB of it and what it waited for (its docker CLIs)."""
    process = subprocess.Popen([INCARNATE, *args], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"incarnate {' '.join(args)} failed (exit {process.returncode})")
    return usage.ru_maxrss / 1024


def best_of_two(
    ours: Callable[[], None],
    floor: Callable[[], None],
    before: Callable[[], None] = lambda: None,
) -> tuple[float, float]:
    """The best of two runs of incarnate's backup and of the floor, in turns (incarnate first, then the floor first):
    on two shared cores one run varies by a tenth and more, and whoever reads first after a change warms the caches."""
    seconds: dict[str, list[float]] = {"ours": [], "floor": []}
    ways = {
        "ours": ("incarnate backup (whole command)", ours),
        "floor": ("hand floor: dump and docker cp at once, into files", floor),
    }
    for order in (("ours", "floor"), ("floor", "ours")):
        before()
        for who in order:
            seconds[who].append(timed(*ways[who]))
    return min(seconds["ours"]), min(seconds["floor"])


def hand_backup(db: str, volume: str, folder: Path) -> None:
    """The fastest hand-run read of the same data: the dump and the archive at once, each into a file. Measured
    (2026-11-26, 1 GB each): the dump through `docker exec` stdout 16.0-16.5 s and 27 CPU-s of the machine, handed on
    by dd in 1 MB writes 12.2-12.9 s and 18 CPU-s; the volume by `docker cp` out of a created helper (the engine's
    archive API) 2.8-4.0 s against 3.7-4.5 s through `docker run ... tar -c` stdout."""
    helper = subprocess.run(
        ["docker", "create", "--network", "none", "-v", f"{volume}:/data:ro", BASE_IMAGE, "true"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    try:
        with open(folder / "dump.sql", "wb") as dump, open(folder / "files.tar", "wb") as archive:
            reading = [
                subprocess.Popen(
                    [
                        "docker",
                        "exec",
                        db,
                        *in_large_writes(("mariadb-dump", "--single-transaction", "--databases", "demo")),
                    ],
                    stdout=dump,
                ),
                subprocess.Popen(["docker", "cp", f"{helper}:/data/.", "-"], stdout=archive),
            ]
            for process in reading:
                assert process.wait() == 0
    finally:
        sh("docker", "rm", "--force", helper)


def restic_backup(db: str, volume: str, repository: Path) -> None:
    env = {**os.environ, "RESTIC_REPOSITORY": str(repository), "RESTIC_PASSWORD": "bench"}
    subprocess.run(["restic", "init", "--quiet"], env=env, check=True, stdout=subprocess.DEVNULL)
    for source, name in (
        (["docker", "exec", db, "mariadb-dump", "--single-transaction", "--databases", "demo"], "dump.sql"),
        (
            [
                "docker",
                "run",
                "--rm",
                "--network",
                "none",
                "-v",
                f"{volume}:/data:ro",
                BASE_IMAGE,
                "tar",
                "-c",
                "-C",
                "/data",
                "-f",
                "-",
                ".",
            ],
            "files.tar",
        ),
    ):
        producer = subprocess.Popen(source, stdout=subprocess.PIPE)
        subprocess.run(
            ["restic", "backup", "--quiet", "--stdin", "--stdin-filename", name],
            env=env,
            check=True,
            stdin=producer.stdout,
            stdout=subprocess.DEVNULL,
        )
        assert producer.wait() == 0


def hand_recovery(project, db: str, volume: str, folder: Path) -> None:
    # The stack's own files, size and env file, as incarnate wrote them, its health checks every second.
    override = fast_health_override(project.workdir / "compose.yaml", folder)

    def compose(*args: str) -> list[str]:
        return project.command_line("--file", str(override), *args)

    sh(*compose("create"))  # every container and volume, labelled as Compose's own (tar -x must not create the volume)
    sh(*compose("up", "--detach", "--wait", "db"))
    with open(folder / "dump.sql", "rb") as dump:
        sh("docker", "exec", "-i", db, "mariadb", stdin=dump)
    with open(folder / "files.tar", "rb") as archive:
        sh(
            "docker",
            "run",
            "--rm",
            "-i",
            "--log-driver",
            "none",
            "--network",
            "none",
            "-v",
            f"{volume}:/data",
            BASE_IMAGE,
            "tar",
            "-x",
            "-C",
            "/data",
            "-f",
            "-",
            stdin=archive,
        )
    sh(*compose("up", "--detach", "--wait"))


def compare_extract(archive: Path) -> None:
    """The volume extract alone: incarnate's against `tar -x` in a helper fed from the file, each into a new volume."""
    host, scratch = Host(), f"bench-extract-{os.getpid()}"

    def fresh() -> str:
        sh("docker", "volume", "rm", "--force", scratch)
        sh("docker", "volume", "create", scratch)
        return scratch

    def ours() -> None:
        with open(archive, "rb") as source:
            extract(host, fresh(), source)

    def floor() -> None:
        with open(archive, "rb") as source:
            sh(
                "docker",
                "run",
                "--rm",
                "-i",
                "--log-driver",
                "none",
                "--network",
                "none",
                "-v",
                f"{fresh()}:/data",
                BASE_IMAGE,
                "tar",
                "-x",
                "-C",
                "/data",
                "-f",
                "-",
                stdin=source,
            )

    try:
        seconds = {
            name: min(timed(f"volume extract, {name}", way) for _ in range(2))
            for name, way in (
                ("incarnate (filtered, the engine unpacks)", ours),
                ("docker run -i tar -x < file", floor),
            )
        }
    finally:
        sh("docker", "volume", "rm", "--force", scratch)
    ours_best, floor_best = seconds.values()
    print(f"volume extract, best of 2: incarnate / tar -x = {ours_best / floor_best:.2f} (aim 1.1)")


def deployed(repo: str) -> tuple[str, object]:
    """The stack of `repo` and its Compose project, installed first when it does not run."""
    stack = load_customer_config(repo).config.stack
    if not Host().client().containers.list(filters={"label": f"com.docker.compose.project={stack}"}):
        print(f"installing stack {stack} from {repo}")
        incarnate("install", repo)
    return stack, create_host.run(Host(), stack)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "repo",
        nargs="?",
        default=str(settings.home() / "customers" / "demo"),
        help="customer repo of a demo stack (default: the demo customer scripts/setup.sh makes)",
    )
    parser.add_argument("--gb", type=float, default=1.0, help="size of the dump, and of the files (default 1.0)")
    parser.add_argument("--memory-at", type=float, help="then grow the data to this size and compare peak memory")
    args = parser.parse_args()
    if not shutil.which("restic"):
        print("restic is missing: apt-get install restic (scripts/services.sh installs it)", file=sys.stderr)
        return 2
    stack, project = deployed(args.repo)
    health_url = (
        f"http://127.0.0.1:{load_customer_config(args.repo).config.http_port}/health"  # the demo app's own check
    )
    db, app = project.container("db"), project.container("app")
    volume = project.volume("files")
    fill(db, app, args.gb)
    work = Path(tempfile.mkdtemp(prefix="bench-recovery-", dir=os.environ.get("TMPDIR", "/var/tmp")))
    peaks: dict[str, float] = {}
    try:
        new_bytes = int(args.gb * 1e9 / 2)

        def backup(peak: str) -> Callable[[], None]:
            def run() -> None:
                peaks[peak] = max(peaks.get(peak, 0.0), incarnate("backup", args.repo))

            return run

        def floor() -> None:
            hand_backup(db, volume, work)

        def new_data() -> None:
            renew_random(app, new_bytes)
            settle(db)

        print(
            f"backup of stack {stack} storing new data: its random file ({new_bytes / 1e6:,.0f} MB) written anew each "
            f"time"
        )
        ours_new, floor_new = best_of_two(backup("backup storing new data"), floor, before=new_data)
        print(f"backup storing new data, best of 2: incarnate / floor = {ours_new / floor_new:.2f} (aim 1.2)")
        print(f"backup of stack {stack}, nothing changed since (a nightly one)")
        ours, floor_best = best_of_two(backup("backup"), floor)
        restic = timed(
            "restic fed through docker exec / docker run", lambda: restic_backup(db, volume, work / "restic")
        )
        print(
            f"backup, best of 2: incarnate / floor = {ours / floor_best:.2f} (aim 1.2), "
            f"incarnate / restic = {ours / restic:.2f} (aim 0.6)"
        )

        print(f"recovery of stack {stack}")
        project.down(volumes=True)
        with until_healthy(health_url) as ours_healthy:
            ours_back = timed(
                "incarnate recover (whole command)",
                lambda: peaks.setdefault("recover", incarnate("recover", args.repo)),
            )
        project.down(volumes=True)
        project = create_host.run(Host(), stack)
        with until_healthy(health_url) as floor_healthy:
            floor_back = timed(
                "hand floor: db up, load dump, untar, compose up --wait",
                lambda: hand_recovery(project, project.name + "-db-1", volume, work),
            )
        print(f"recovery: incarnate / floor = {ours_back / floor_back:.2f} (aim 1.25)")
        if "seconds" in ours_healthy and "seconds" in floor_healthy:
            print(
                f"until the app is healthy: incarnate {ours_healthy['seconds']:.1f} s, floor "
                f"{floor_healthy['seconds']:.1f} s, "
                f"ratio {ours_healthy['seconds'] / floor_healthy['seconds']:.2f} (aim 1.1)"
            )
        else:
            print(f"until the app is healthy: {health_url} never answered 200 (not the demo product?)")
        compare_extract(work / "files.tar")
        print(
            f"peak memory at {args.gb:g} GB: backup {peaks['backup']:.0f} MB (storing new data "
            f"{peaks['backup storing new data']:.0f} MB), recover {peaks['recover']:.0f} MB"
        )
        if args.memory_at:
            compare_memory(args.repo, project, args.gb, args.memory_at, peaks)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def compare_memory(repo: str, project, gigabytes: float, larger: float, peaks: dict[str, float]) -> None:
    """Grow the data to `larger`, back up and recover it with incarnate again: peak memory must not grow with it.
    Like is compared with like: a backup of data stored already (its chunks reused) at both sizes; a backup that
    stores new data holds more chunks in flight (compressed and sealed), so it is printed on its own."""
    small = incarnate("backup", repo)  # the data of the last backup, recovered: its chunks are in the store
    fill(project.container("db"), project.container("app"), larger)
    new_data = incarnate("backup", repo)
    grown = {"backup": incarnate("backup", repo)}
    project.down(volumes=True)
    grown["recover"] = incarnate("recover", repo)
    print(
        f"peak memory of incarnate backup of data stored already: {small:.0f} MB at {gigabytes:g} GB, "
        f"{grown['backup']:.0f} MB at {larger:g} GB: ratio {grown['backup'] / small:.2f} (aim: within 10 %)"
    )
    print(f"peak memory of incarnate backup storing the new data at {larger:g} GB: {new_data:.0f} MB")
    print(
        f"peak memory of incarnate recover: {peaks['recover']:.0f} MB at {gigabytes:g} GB, {grown['recover']:.0f} MB "
        f"at "
        f"{larger:g} GB: ratio {grown['recover'] / peaks['recover']:.2f} (aim: within 10 %)"
    )


if __name__ == "__main__":
    sys.exit(main())
