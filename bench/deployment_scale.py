"""Benchmark: the deployments of many registered stacks on the Prefect server, in two shapes, in one run.

    .venv/bin/python bench/deployment_scale.py [--stacks 1000] [--sample 50] [--scheduler-wait 65]

The shape before 2026-12-04, per stack: seven deployments a stack (`backup/<stack>`, ...), three of them with a
schedule of their own, created one by one as `incarnate serve` did at its start; measured on `--sample` stacks and
scaled to `--stacks` (its cost is one apply a deployment: linear). The other shape, per flow: seven deployments in
all, the scheduled ones holding one schedule a stack (Prefect 3's schedules with parameters and a slug: the stack's
repo and its time zone ride on its own schedule), measured at `--stacks`. For each: the seconds to create the
deployments, to pause every schedule (what serve does on the way out) and to delete them, and how many scheduled runs
the server's scheduler made for them within `--scheduler-wait` seconds (it looks every 60 s). Nothing runs: the repos
are placeholders, the schedules are a minute of 02:00 in the stacks' zones, and everything made is deleted at the end
(prefix `bench-scale-`).
"""

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cli import prefect_server  # noqa: E402

prefect_server.connect()  # before Prefect is first imported: it reads its settings then

from prefect.client.orchestration import get_client  # noqa: E402
from prefect.client.schemas.filters import (  # noqa: E402
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterDeploymentId,  # noqa: E402
)
from prefect.schedules import Cron  # noqa: E402

from deployments.serve import ON_DEMAND  # noqa: E402
from flows.backup import backup_stack  # noqa: E402
from flows.drill import restore_drill  # noqa: E402
from flows.verify import verify_stack  # noqa: E402

PREFIX = "bench-scale-"
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC")
SCHEDULED = {"backup": backup_stack, "restore-drill": restore_drill, "verify": verify_stack}
CRONS = {"backup": "{minute} 2 * * *", "restore-drill": "{minute} 4 * * 0", "verify": "{minute} 5 * * 0"}


def stack(index: int) -> str:
    return f"{PREFIX}{index:05d}"


def schedule(kind: str, index: int, parameters: dict | None = None) -> Cron:
    cron = CRONS[kind].format(minute=index % 10)
    return Cron(cron, timezone=ZONES[index % len(ZONES)], parameters=parameters or {}, slug=parameters and stack(index))


def per_stack(count: int) -> list:
    """Before 2026-12-04: seven deployments a stack, each scheduled one with its own schedule."""
    made = []
    for index in range(count):
        on = {"repo": f"/nonexistent/{stack(index)}"}
        made += [flow.to_deployment(name=stack(index), parameters=on) for flow in ON_DEMAND.values()]
        made += [
            flow.to_deployment(name=stack(index), parameters=on, schedules=[schedule(kind, index)])
            for kind, flow in SCHEDULED.items()
        ]
    return made


def per_flow(count: int) -> list:
    """Seven deployments in all; the scheduled ones hold a schedule a stack, its repo as the schedule's parameter."""
    name = f"{PREFIX}fleet"
    made = [flow.to_deployment(name=name) for flow in ON_DEMAND.values()]
    made += [
        flow.to_deployment(
            name=name,
            schedules=[schedule(kind, index, {"repo": f"/nonexistent/{stack(index)}"}) for index in range(count)],
        )
        for kind, flow in SCHEDULED.items()
    ]
    return made


async def ours(client) -> list:
    found = await client.read_deployments(
        deployment_filter=DeploymentFilter(name=DeploymentFilterName(like_=PREFIX)), limit=200
    )
    more = found
    while len(more) == 200:
        more = await client.read_deployments(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(like_=PREFIX)), limit=200, offset=len(found)
        )
        found += more
    return found


async def pause_all(client, deployments: list) -> None:
    """As serve does on its way out: every deployment paused, one call each."""
    for deployment in deployments:
        await client.pause_deployment(deployment.id)


async def runs_of(client, deployments: list) -> int:
    ids = [deployment.id for deployment in deployments]
    total = 0
    for start in range(0, len(ids), 100):
        chosen = FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=ids[start : start + 100]))
        total += await client.count_flow_runs(flow_run_filter=chosen)
    return total


async def delete_all(client) -> int:
    deleted = 0
    while found := await ours(client):
        for deployment in found:
            await client.delete_deployment(deployment.id)
            deleted += 1
    return deleted


def measure(name: str, made: list, scale: float, wait: float) -> dict[str, float]:
    """Create, let the scheduler see them, pause, delete; seconds (scaled by `scale`) and scheduled runs."""
    began = time.perf_counter()
    for deployment in made:
        deployment.apply()
    created = time.perf_counter() - began

    async def rest() -> tuple[float, int, int, float, float]:
        async with get_client() as client:
            await asyncio.sleep(wait)
            found = await ours(client)
            schedules = sum(len(deployment.schedules) for deployment in found)
            runs = await runs_of(client, found)
            began = time.perf_counter()
            await pause_all(client, found)
            paused = time.perf_counter() - began
            began = time.perf_counter()
            await delete_all(client)
            return paused, schedules, runs, time.perf_counter() - began, len(found)

    paused, schedules, runs, deleted, count = asyncio.run(rest())
    figures = {
        "deployments": count * scale,
        "schedules": schedules * scale,
        "created": created * scale,
        "paused": paused * scale,
        "deleted": deleted * scale,
        "runs": runs * scale,
    }
    print(
        f"  {name}: {figures['deployments']:,.0f} deployments, {figures['schedules']:,.0f} schedules: created in "
        f"{figures['created']:.1f} s, every schedule paused in {figures['paused']:.1f} s, deleted in "
        f"{figures['deleted']:.1f} s; {figures['runs']:,.0f} scheduled runs made within {wait:g} s"
        + (f" (measured on {count // 7} stacks, scaled x{scale:g})" if scale != 1 else ""),
        flush=True,
    )
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", type=int, default=1000, help="registered stacks (default 1000)")
    parser.add_argument("--sample", type=int, default=50, help="stacks the per-stack shape is measured on")
    parser.add_argument(
        "--scheduler-wait", type=float, default=65.0, help="seconds the scheduler gets before runs are counted"
    )
    args = parser.parse_args()
    sample = min(args.sample, args.stacks)

    async def clean() -> int:
        async with get_client() as client:
            return await delete_all(client)

    if left := asyncio.run(clean()):
        print(f"removed {left} deployments an earlier run left")
    print(f"deployments of {args.stacks:,} registered stacks on the Prefect server:")
    try:
        wait = args.scheduler_wait
        today = measure("per stack (before)", per_stack(sample), args.stacks / sample, wait)
        fleet = measure("per flow, a schedule a stack", per_flow(args.stacks), 1, wait)
    finally:
        asyncio.run(clean())
    ratios = {key: fleet[key] / max(today[key], 1e-9) for key in ("created", "paused", "deployments")}
    print(
        f"per flow / per stack: create {ratios['created']:.3f}, pause {ratios['paused']:.3f}, "
        f"deployments {ratios['deployments']:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
