"""Benchmark: a stack's time until healthy after a total loss, recovered from a physical base against a logical dump
of the same data, in one run, for PostgreSQL (pgdemo) or MariaDB (demo).

    .venv/bin/python bench/physical_base.py [--gb 1.0] [--product pgdemo|demo]

Makes a customer of the product of its own (a repo and an unencrypted store in a temporary folder), installs it and
fills its database with a table of about GB as the dump writes it (an id with its primary key and 256 characters a
row, made in the server: generate_series, MariaDB's sequence engine). Then for logical and for physical (backup.base
in stack.yaml, a commit each): `incarnate backup`, the stack lost whole (containers and volumes), `incarnate recover`,
timed from the command's start until the app's health URL first answers 200 (polled every 0.1 s), the rows checked.
Prints the backups' seconds, both times until healthy and physical / logical. The stack is removed at the end.
"""

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cli import prefect_server  # noqa: E402

prefect_server.connect()  # before Prefect is first imported: it reads its settings then

from bench.lying_health import customer_repo, forget_secrets, remove_stack  # noqa: E402
from bench.recovery_speed import until_healthy  # noqa: E402

INCARNATE = str(Path(sys.executable).with_name("incarnate"))
STACK = "bench-physical-base"
ROW_BYTES = 265  # of the dump's text per row filled below
STAGE = re.compile(r"(restore|replay logs|start|migrate) ok \(([\d.]+ s)\)")
# Per product: the query command in its database container, the fill, the database's size on disk.
QUERY = {
    "pgdemo": ["--user", "postgres", f"{STACK}-db-1", "psql", "-d", "pgdemo", "-tAc"],
    "demo": [f"{STACK}-db-1", "mariadb", "demo", "--batch", "--skip-column-names", "-e"],
}
FILL = {
    "pgdemo": ["INSERT INTO bulk SELECT i, repeat(md5(i::text), 8) FROM generate_series(1, {rows}) i"],
    "demo": ["INSERT INTO bulk SELECT seq, repeat(md5(seq), 8) FROM seq_1_to_{rows}", "ANALYZE TABLE bulk"],
}
SIZE = {
    "pgdemo": "SELECT pg_database_size('pgdemo')",
    "demo": "SELECT SUM(data_length + index_length) FROM information_schema.tables WHERE table_schema = 'demo'",
}


def incarnate(*args: str) -> str:
    result = subprocess.run([INCARNATE, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"incarnate {' '.join(args)} failed: {(result.stderr or result.stdout).strip()[-2000:]}")
    return result.stdout + result.stderr


def query(product: str, sql: str) -> str:
    return subprocess.run(
        ["docker", "exec", *QUERY[product], sql], capture_output=True, text=True, check=True
    ).stdout.strip()


def fill(product: str, gigabytes: float) -> int:
    rows = max(1000, int(gigabytes * 1e9 / ROW_BYTES))
    query(product, "CREATE TABLE bulk (id bigint PRIMARY KEY, payload text)")
    for statement in FILL[product]:
        query(product, statement.format(rows=rows))
    return rows


def use_base(repo: Path, base: str) -> None:
    stack_yaml = repo / "stack.yaml"
    lines = [line for line in stack_yaml.read_text().splitlines() if not line.startswith("  base:")]
    stack_yaml.write_text("\n".join([*lines, f"  base: {base}"]) + "\n")
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qam", base],
        check=True,
    )


def one_base(product: str, repo: Path, url: str, base: str, rows: int) -> tuple[float, float]:
    """(backup seconds, seconds until healthy after the loss)."""
    use_base(repo, base)
    began = time.perf_counter()
    incarnate("backup", str(repo))
    backup_seconds = time.perf_counter() - began
    remove_stack(STACK, files=False)
    with until_healthy(url) as seen:
        said = incarnate("recover", str(repo))
    restored = int(query(product, "SELECT count(*) FROM bulk"))
    if restored != rows:
        raise SystemExit(f"{base}: {restored} rows recovered, {rows} backed up")
    stages = ", ".join(f"{name} {seconds}" for name, seconds in STAGE.findall(said))
    print(f"  {base}: backup {backup_seconds:.1f} s; recovered and healthy in {seen['seconds']:.1f} s ({stages})")
    return backup_seconds, seen["seconds"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0, help="size of the table as pg_dump writes it (default 1.0)")
    parser.add_argument("--product", choices=sorted(QUERY), default="pgdemo", help="pgdemo (PostgreSQL) or demo")
    args = parser.parse_args()
    product = args.product
    with tempfile.TemporaryDirectory(prefix="bench-physical-") as scratch:
        repo = customer_repo(Path(scratch), product, STACK)
        try:
            incarnate("install", str(repo))
            port = next(line for line in (repo / "stack.yaml").read_text().splitlines() if line.startswith("http_port"))
            url = f"http://127.0.0.1:{port.split(':')[1].strip()}/health"
            began = time.perf_counter()
            rows = fill(product, args.gb)
            size = int(query(product, SIZE[product]))
            print(f"filled {rows:,} rows in {time.perf_counter() - began:.1f} s; the database holds {size:,} bytes")
            logical = one_base(product, repo, url, "logical", rows)
            physical = one_base(product, repo, url, "physical", rows)
        finally:
            remove_stack(STACK)
            forget_secrets(STACK)
    print(
        f"time until healthy after a total loss: logical {logical[1]:.1f} s, physical {physical[1]:.1f} s; "
        f"physical / logical = {physical[1] / logical[1]:.2f}"
    )
    print(f"backup: logical {logical[0]:.1f} s, physical {physical[0]:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
