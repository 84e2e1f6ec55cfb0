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

from incarnate import pipeline, settings  # noqa: E402
from incarnate.cli import use_local_prefect_server  # noqa: E402
from incarnate.host import Host  # noqa: E402


def plain_recovery(repo: str) -> dict[str, float]:
    """The seven stages as plain functions, timed one by one."""
    seconds, releases = {}, pipeline.default_release_store()

    def timed(name, call):
        began = time.perf_counter()
        result = call()
        seconds[name] = time.perf_counter() - began
        return result

    deployment = timed("load config", lambda: pipeline.load_config(repo, "HEAD", releases, settings.registry()))
    store = pipeline.backup_store(deployment.customer.config)
    project = timed("create host", lambda: pipeline.create_host(Host(), deployment.stack, deployment.customer.config.host))
    source = timed("fetch backup", lambda: pipeline.fetch_backup(deployment, store, releases))
    timed("restore", lambda: pipeline.restore(project, deployment, store, source))
    timed("start", lambda: pipeline.start(project, deployment))
    timed("migrate", lambda: pipeline.migrate(project, deployment, source))
    timed("backup", lambda: pipeline.backup(project, store, deployment.customer.config.backup.lock_days))
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    use_local_prefect_server()
    os.environ.setdefault("INCARNATE_TRIGGERED_BY", "bench/orchestration_overhead.py")
    from flows.install import disaster_recovery
    from incarnate.repo import load_customer_config

    stack = load_customer_config(args.repo).config.stack
    project = pipeline.create_host(Host(), stack)
    flow_walls, plain_walls = [], []
    for round_number in range(1, args.rounds + 1):
        pipeline.remove_stack(project)
        began = time.perf_counter()
        result = disaster_recovery(repo=args.repo)
        flow_walls.append(time.perf_counter() - began)
        print(f"round {round_number} flow   {flow_walls[-1]:6.2f} s: " + ", ".join(f"{k} {v:.2f}" for k, v in result["seconds"].items()))

        pipeline.remove_stack(project)
        began = time.perf_counter()
        stages = plain_recovery(args.repo)
        plain_walls.append(time.perf_counter() - began)
        print(f"round {round_number} plain  {plain_walls[-1]:6.2f} s: " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    best_flow, best_plain = min(flow_walls), min(plain_walls)
    print(f"\nbest of {args.rounds}: flow {best_flow:.2f} s, plain stages {best_plain:.2f} s, "
          f"orchestration overhead ratio {best_flow / best_plain:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
