"""Benchmark: what Prefect orchestration costs on top of the stages' own work, and the RTO per stage.

    .venv/bin/python bench/orchestration_overhead.py CUSTOMER_REPO [--rounds 3]

Each round removes the stack (containers and volumes, the disaster) and brings it back
from the newest backup twice: once as the `disaster-recovery` flow (Prefect tasks, server
round trips, artifacts, the concurrency limit, the incarnation tag), once as the same
stage functions called directly. Prints each stage's seconds and the ratio of the flow's
wall time to the plain stages' wall time. Run it against a stack that is deployed.
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cli import prefect_server  # noqa: E402

prefect_server.connect()  # before Prefect is first imported: it reads its settings then

from blocks import resolve  # noqa: E402
from incarnate.host import Host  # noqa: E402
from incarnate.stages import backup, create_host, fetch_backup, load_config, migrate, restore, start  # noqa: E402


def plain_recovery(repo: str) -> dict[str, float]:
    """The seven stages as plain functions, timed one by one."""
    seconds, releases = {}, resolve.release_store()

    def timed(stage, call):
        began = time.perf_counter()
        result = call()
        seconds[stage.NAME] = time.perf_counter() - began
        return result

    pinned = timed(load_config, lambda: load_config.run(repo, "HEAD", releases, resolve.registry))
    store = resolve.backup_store(pinned.customer.config)
    project = timed(create_host, lambda: create_host.run(Host(), pinned.stack, pinned.customer.config.host))
    source = timed(fetch_backup, lambda: fetch_backup.run(pinned, store, releases))
    outcome = timed(restore, lambda: restore.run(project, pinned, store, source, resolve.stack_secrets()))
    timed(start, lambda: start.run(project))
    timed(migrate, lambda: migrate.run(project, pinned, source))
    if not restore.runs_snapshot_data(source, outcome, pinned.release):  # as the flow decides
        timed(
            backup,
            lambda: backup.run(
                project, store, pinned.customer.config.backup.lock_days, pinned.customer.config.backup.lock_mode
            ),
        )
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("INCARNATE_TRIGGERED_BY", "bench/orchestration_overhead.py")
    from flows.install import disaster_recovery
    from incarnate.repo import load_customer_config

    stack = load_customer_config(args.repo).config.stack
    project = create_host.run(Host(), stack)
    flow_walls, plain_walls = [], []
    for round_number in range(1, args.rounds + 1):
        project.down(volumes=True)
        began = time.perf_counter()
        result = disaster_recovery(repo=args.repo)
        flow_walls.append(time.perf_counter() - began)
        print(
            f"round {round_number} flow   {flow_walls[-1]:6.2f} s: "
            + ", ".join(f"{k} {v:.2f}" for k, v in result["seconds"].items())
        )

        project.down(volumes=True)
        began = time.perf_counter()
        stages = plain_recovery(args.repo)
        plain_walls.append(time.perf_counter() - began)
        print(
            f"round {round_number} plain  {plain_walls[-1]:6.2f} s: "
            + ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
        )
    best_flow, best_plain = min(flow_walls), min(plain_walls)
    print(
        f"\nbest of {args.rounds}: flow {best_flow:.2f} s, plain stages {best_plain:.2f} s, "
        f"orchestration overhead ratio {best_flow / best_plain:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
