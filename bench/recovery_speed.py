"""Benchmark: backup and disaster recovery of a filled stack against the hand floor and restic, in one run.

    .venv/bin/python bench/recovery_speed.py CUSTOMER_REPO [--gb 1.0]

Fills the deployed demo stack of CUSTOMER_REPO once (a database whose dump is about GB, and GB of files, half
random, half text), then back to back:

- backup: `incarnate backup` (the command, whole) against the hand floor (the same dump and volume read by hand
  the fastest way measured: `docker exec ... mariadb-dump` and a `docker run --log-driver none` tar, at once, into
  files) and restic fed as users typically do (`docker exec ... mariadb-dump | restic backup --stdin`,
  `docker run ... tar | restic backup --stdin`, one after the other);
- recovery: the stack removed, `incarnate recover` (whole) against the hand floor (the database service up, the
  dump loaded, the tar extracted, `docker compose up --wait`).

Prints seconds and the ratios the speed issue names; the stack is left as the hand floor brought it up (incarnate's
files, the same data). Run it on a machine where nothing else runs.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cli.main import use_local_prefect_server  # noqa: E402
from incarnate.datasources.volume import toolbox_image  # noqa: E402
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


def fill(db: str, app: str, gigabytes: float) -> None:
    """Once per stack: a table whose dump is about `gigabytes`, and as many bytes of files."""
    marker = subprocess.run(["docker", "exec", app, "test", "-f", "/data/files/.bench-filled"]).returncode == 0
    if marker:
        return
    rows = int(gigabytes * 1e9 / ROW_BYTES)
    print(f"filling: {rows:,} rows, {gigabytes:g} GB of files")
    sh("docker", "exec", db, "mariadb", "demo", "-e",
       "CREATE TABLE IF NOT EXISTS bench (id INT PRIMARY KEY, body TEXT) ENGINE=InnoDB")
    step = 1_000_000
    for first in range(0, rows, step):
        last = min(rows, first + step)
        sh("docker", "exec", db, "mariadb", "demo", "-e",
           f"INSERT INTO bench SELECT seq, REPEAT(MD5(seq), 16) FROM seq_{first + 1}_to_{last}")
    half = int(gigabytes * 1e9 / 2)
    sh("docker", "exec", app, "sh", "-c", f"head -c {half} /dev/urandom > /data/files/random.bin && "
       f"yes 'a line of a log file the app keeps, with some words in it' | head -c {half} > /data/files/text.log && "
       "touch /data/files/.bench-filled")


def hand_backup(db: str, volume: str, folder: Path) -> None:
    """The fastest hand-run read of the same data: the dump and the archive at once, each into a file."""
    with open(folder / "dump.sql", "wb") as dump, open(folder / "files.tar", "wb") as archive:
        reading = [subprocess.Popen(["docker", "exec", db, "mariadb-dump", "--single-transaction", "--databases", "demo"], stdout=dump),
                   subprocess.Popen(["docker", "run", "--rm", "--log-driver", "none", "--network", "none", "-v", f"{volume}:/data:ro",
                                     toolbox_image(), "tar", "-c", "-C", "/data", "-f", "-", "."], stdout=archive)]
        for process in reading:
            assert process.wait() == 0


def restic_backup(db: str, volume: str, repository: Path) -> None:
    env = {**os.environ, "RESTIC_REPOSITORY": str(repository), "RESTIC_PASSWORD": "bench"}
    subprocess.run(["restic", "init", "--quiet"], env=env, check=True, stdout=subprocess.DEVNULL)
    for source, name in ((["docker", "exec", db, "mariadb-dump", "--single-transaction", "--databases", "demo"], "dump.sql"),
                         (["docker", "run", "--rm", "--network", "none", "-v", f"{volume}:/data:ro", toolbox_image(),
                           "tar", "-c", "-C", "/data", "-f", "-", "."], "files.tar")):
        producer = subprocess.Popen(source, stdout=subprocess.PIPE)
        subprocess.run(["restic", "backup", "--quiet", "--stdin", "--stdin-filename", name], env=env, check=True,
                       stdin=producer.stdout, stdout=subprocess.DEVNULL)
        assert producer.wait() == 0


def hand_recovery(project, db: str, volume: str, folder: Path) -> None:
    compose = project.command_line  # the stack's own files, size and env file, as incarnate wrote them
    sh(*compose("up", "--detach", "--wait", "db"))
    with open(folder / "dump.sql", "rb") as dump:
        sh("docker", "exec", "-i", db, "mariadb", stdin=dump)
    with open(folder / "files.tar", "rb") as archive:
        sh("docker", "run", "--rm", "-i", "--log-driver", "none", "--network", "none", "-v", f"{volume}:/data", toolbox_image(),
           "tar", "-x", "-C", "/data", "-f", "-", stdin=archive)
    sh(*compose("up", "--detach", "--wait"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo")
    parser.add_argument("--gb", type=float, default=1.0, help="size of the dump, and of the files (default 1.0)")
    args = parser.parse_args()
    if not shutil.which("restic"):
        print("restic is missing: apt-get install restic (scripts/services.sh installs it)", file=sys.stderr)
        return 2
    use_local_prefect_server()
    stack = load_customer_config(args.repo).config.stack
    project = create_host.run(Host(), stack)
    db, app = project.container("db"), project.container("app")
    volume = project.volume("files")
    fill(db, app, args.gb)
    work = Path(tempfile.mkdtemp(prefix="bench-recovery-", dir=os.environ.get("TMPDIR", "/var/tmp")))
    try:
        print(f"backup of stack {stack}")
        ours = timed("incarnate backup (whole command)", lambda: sh(INCARNATE, "backup", args.repo))
        floor = timed("hand floor: dump and tar at once, into files", lambda: hand_backup(db, volume, work))
        restic = timed("restic fed through docker exec / docker run", lambda: restic_backup(db, volume, work / "restic"))
        print(f"backup: incarnate / floor = {ours / floor:.2f} (aim 1.2), incarnate / restic = {ours / restic:.2f} (aim 0.6)")

        print(f"recovery of stack {stack}")
        project.down(volumes=True)
        ours_back = timed("incarnate recover (whole command)", lambda: sh(INCARNATE, "recover", args.repo))
        project.down(volumes=True)
        project = create_host.run(Host(), stack)
        floor_back = timed("hand floor: db up, load dump, untar, compose up --wait",
                           lambda: hand_recovery(project, project.name + "-db-1", volume, work))
        print(f"recovery: incarnate / floor = {ours_back / floor_back:.2f} (aim 1.25)")
        print(f"stack {stack} runs as the hand floor brought it up: incarnate's files, the same data")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
