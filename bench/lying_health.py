"""Benchmark: restores of a product whose database health check lies, against an honest one, in one run.

    .venv/bin/python bench/lying_health.py [--restores 20] [--baseline 5] [--init-pause 8]

The lying product (bench/lying_product.py) is pgdemo 1.0.0 whose database initialises as the official PostgreSQL
image does: an initialisation server that passes the health check with no TCP address, the database created after
--init-pause seconds, a stop after as many again, then the server that stays. It is published into a release store of
the run's own; then each restore is a new customer's `incarnate install` (the vanilla backup restored into an empty
database whose server is still initialising), checked to have loaded the database and answered healthy, and the
stack removed. As the baseline in the same run, as many installs of pgdemo itself (its database ready when healthy).
Prints how many restores of each succeeded, their median seconds, and the ratio.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cli import prefect_server  # noqa: E402

prefect_server.connect()  # before Prefect is first imported: it reads its settings then

from bench.lying_product import official_like_release  # noqa: E402
from incarnate import settings  # noqa: E402
from incarnate.host import Host, free_port  # noqa: E402

INCARNATE = str(Path(sys.executable).with_name("incarnate"))
STACK = "bench-lying-health"


def incarnate(*args: str, releases: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [INCARNATE, *args], capture_output=True, text=True, env={**os.environ, "INCARNATE_RELEASES": releases}
    )


def customer_repo(scratch: Path, product: str, stack: str = STACK, backup: str = "") -> Path:
    """A new customer of `product`: its repo and an unencrypted store of its own (no key block is left behind);
    `backup` more lines of its backup settings."""
    repo, store = scratch / "repo", scratch / "store"
    repo.mkdir()
    store.mkdir()
    (repo / "stack.yaml").write_text(
        f"stack: {stack}\nproduct: {product}\nrelease: 1.0.0\nhttp_port: {free_port()}\n"
        f"backup:\n  encrypt: false\n  store:\n    kind: local\n    path: {store}\n{backup}"
    )
    for args in (["init", "-q", "-b", "main"], ["add", "stack.yaml"], ["commit", "-qm", "new customer"]):
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=bench@localhost", *args])
    return repo


def remove_stack(stack: str = STACK, files: bool = True) -> None:
    """The stack's containers and volumes (a total loss), and with `files` its folder, so the next install restores
    into empty volumes again."""
    Host().run(
        [*Host().compose_command(), "--project-name", stack, "down", "--volumes", "--timeout", "1"],
        what=f"removing {stack}",
    )
    if files:
        shutil.rmtree(settings.stacks_dir() / stack, ignore_errors=True)


def restore(product: str, releases: str) -> tuple[bool, float, str]:
    """One new customer's install of `product`: (restored and healthy, seconds, the failure's last words)."""
    with tempfile.TemporaryDirectory(prefix="bench-lying-") as scratch:
        repo = customer_repo(Path(scratch), product)
        began = time.perf_counter()
        result = incarnate("install", str(repo), releases=releases)
        seconds = time.perf_counter() - began
        remove_stack()
    output = result.stdout + result.stderr
    ok = result.returncode == 0 and "database-pgdemo: loaded" in output
    return ok, seconds, "" if ok else output.strip().splitlines()[-1][-300:]


def forget_secrets(stack: str = STACK) -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.delete_block_document(client.read_block_document_by_name(f"incarnate-stack-{stack}", "secret").id)
        except ObjectNotFound:
            pass


def rounds(product: str, releases: str, count: int, label: str) -> list[tuple[bool, float, str]]:
    results = []
    for number in range(1, count + 1):
        results.append(restore(product, releases))
        ok, seconds, why = results[-1]
        print(f"  {label} {number}/{count}: {'restored' if ok else 'FAILED'} in {seconds:.1f} s {why}", flush=True)
    return results


def summary(label: str, results: list[tuple[bool, float, str]]) -> float:
    median = statistics.median(seconds for ok, seconds, _ in results if ok) if any(r[0] for r in results) else 0.0
    print(f"{label}: {sum(ok for ok, _, _ in results)} of {len(results)} restored; median {median:.1f} s")
    return median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restores", type=int, default=20)
    parser.add_argument("--baseline", type=int, default=5, help="installs of honest pgdemo (default 5)")
    parser.add_argument("--init-pause", type=int, default=8, help="seconds of each pause of the lying init")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-lying-releases-") as scratch:
        releases = str(Path(scratch) / "releases")
        folder, product = official_like_release(Path(scratch) / "release", args.init_pause)
        published = incarnate("release", "publish", str(folder), releases=releases)
        if published.returncode != 0:
            raise SystemExit(f"publishing the lying product failed: {published.stderr[-2000:]}")
        try:
            lying = rounds(product, releases, args.restores, "lying health")
            honest = rounds("pgdemo", settings.releases(), args.baseline, "pgdemo")
        finally:
            forget_secrets()
    lying_median, honest_median = summary("lying health", lying), summary("pgdemo (baseline)", honest)
    print(f"lying / baseline median = {lying_median / honest_median:.2f}" if honest_median else "no baseline")
    return 0 if all(ok for ok, _, _ in lying + honest) else 1


if __name__ == "__main__":
    sys.exit(main())
