"""The deployments operators use, generated from the registered customers, served by one process.

Per registered stack: `install/<stack>`, `update/<stack>`, `disaster-recovery/<stack>`,
`rollback/<stack>` (UI buttons, CI triggers); `backup/<stack>`, scheduled nightly (a minute of the
stack's own in 02:00-02:09, its time zone); and the weekly proof that the backups are good,
`restore-drill/<stack>` and `verify/<stack>` (a sample of the chunks), on stack.yaml's `backup`
schedules. Each has its customer repo as the default parameter; the other parameters keep their
typed, described defaults. Besides them, one `publish-release/releases`: a release folder on this
machine into the release store. Every deployment is tagged `incarnate`: the alert automations
(deployments/alerts.py) match that.

Why `serve` (one process polling for its own deployments) by default: it needs no pool,
worker or code storage, and runs each flow in the process that has this checkout. A stack
registered with `--pool NAME` instead gets the same deployments in the Prefect work pool NAME
(process type, one per container host): `incarnate worker --pool NAME` on that host runs them
there (deployments/worker.py), so its dumps stream from the host to the store, not through
this machine. Their entrypoints are module paths (`flows.backup.backup_stack`): a worker
needs incarnate installed, not this checkout at the same path.
"""

import os

from prefect import serve
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.schedules import Cron

from deployments import alerts, archiver
from deployments.worker import POLL_SECONDS, ensure_pool
from flows.backup import backup_stack
from flows.drill import restore_drill
from flows.install import disaster_recovery, install
from flows.publish import publish_release
from flows.rollback import rollback
from flows.update import update
from flows.verify import verify_stack
from incarnate import settings as machine
from incarnate.config import spread
from incarnate.customers import Registration, registrations
from incarnate.repo import CustomerConfig, load_customer_config

LOCAL = Registration()  # a stack on this machine, run by `incarnate serve`
ON_DEMAND = {"install": install, "update": update, "disaster-recovery": disaster_recovery, "rollback": rollback}


def stack_deployments(customer: CustomerConfig, where: Registration = LOCAL) -> list[RunnerDeployment]:
    """The stack's deployments; all but disaster recovery (which goes elsewhere) default to its host. Those of a
    stack in a work pool act on the engine of the worker's own host."""
    stack, repo, zone, backup = customer.config.stack, customer.repo, customer.config.timezone, customer.config.backup
    nightly, drill, verify = (
        spread(cron, stack) for cron in (backup.schedule, backup.drill_schedule, backup.verify_schedule)
    )
    tags = [alerts.TAG, f"stack:{stack}", f"product:{customer.config.product}"]
    on_host = {"repo": repo, **({"docker_host": where.host} if where.host else {})}
    pooled = {"entrypoint_type": EntrypointType.MODULE_PATH} if where.pool else {}

    def deployment(
        flow, parameters: dict, description: str, more_tags: tuple[str, ...] = (), **options
    ) -> RunnerDeployment:
        return flow.to_deployment(
            name=stack,
            parameters=parameters,
            tags=[*tags, *more_tags],
            description=f"{description}{f'; run by the workers of pool {where.pool}' if where.pool else ''}",
            **pooled,
            **options,
        )

    made = [
        deployment(
            flow, {"repo": repo} if name == "disaster-recovery" else on_host, f"{name} of stack {stack} ({repo})"
        )
        for name, flow in ON_DEMAND.items()
    ]
    made.append(
        deployment(
            backup_stack,
            on_host,
            f"nightly backup of stack {stack} ({nightly}, {zone}), then retention",
            more_tags=("nightly",),
            schedules=[Cron(nightly, timezone=zone)],
        )
    )
    made.append(
        deployment(
            restore_drill,
            {**on_host, "at": "random"},  # a random second since the oldest backup: logs replayed, older bases tried
            f"restore drill of stack {stack}: newest backup into a scratch stack, checked, removed ({drill}, {zone})",
            more_tags=("weekly",),
            schedules=[Cron(drill, timezone=zone)],
        )
    )
    made.append(
        deployment(
            verify_stack,
            {"repo": repo, "sample": backup.verify_sample},
            f"verify of stack {stack}: re-reads {backup.verify_sample} of its stored chunks ({verify}, {zone})",
            more_tags=("weekly",),
            schedules=[Cron(verify, timezone=zone)],
        )
    )
    return made


def deploy_to_pools(pooled: dict[str, list[RunnerDeployment]]) -> list[str]:
    """Create or update the deployments of the stacks in work pools; what happened, a line each pool."""
    said = []
    for pool, deployments in pooled.items():
        ensure_pool(pool)
        for made in deployments:
            made.apply(work_pool_name=pool)
        said.append(
            f"work pool {pool}: {len(deployments)} deployments, run by `incarnate worker --pool {pool}` on its host"
        )
    return said


def release_deployment() -> RunnerDeployment:
    """Publishing from the UI (a folder on the serving machine); CI runs `incarnate release publish` itself."""
    return publish_release.to_deployment(
        name="releases",
        tags=[alerts.TAG, "releases"],
        description="publish a release folder (release.yaml, compose.yaml) into the release store",
    )


def main(settings: alerts.AlertSettings, max_runs: int) -> None:
    customers = [(load_customer_config(repo), where) for repo, where in registrations().items()]
    served: list[RunnerDeployment] = []
    pooled: dict[str, list[RunnerDeployment]] = {}
    for customer, where in customers:
        (pooled.setdefault(where.pool, []) if where.pool else served).extend(stack_deployments(customer, where))
    if not customers:
        print(
            "no customers registered (serving only publish-release/releases): `incarnate register CUSTOMER_REPO`, "
            "then start this again"
        )
    for line in [
        *alerts.apply([customer.config.stack for customer, _ in customers], settings),
        *deploy_to_pools(pooled),
    ]:
        print(line)
    told = (
        f"failed or crashed runs and stale backups (after {settings.stale_after}) go to {settings.block}"
        if settings.block
        else "none chosen (--alerts TYPE/NAME or INCARNATE_ALERTS): failures show only in the UI"
    )
    print(f"alerts: {told}; runs silent for {settings.heartbeat_grace.total_seconds():.0f} s are marked Crashed")
    # Served runs are subprocesses of this one: they beat as often as the crash detection expects.
    os.environ["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] = str(settings.heartbeat_seconds)
    # serve's own limit, not a global concurrency limit taken inside the flow: a run waiting for a global slot has
    # already started its process, so a hundred runs due at once would still cost a hundred processes here.
    print(f"runs at once: at most {max_runs} (--max-runs, INCARNATE_MAX_RUNS); the others wait their turn, in order")
    local = [(customer.repo, where.host) for customer, where in customers if not where.pool]
    if local:
        archiver.in_background(lambda: local)
        print(f"archiving the database logs of {len(local)} stack(s) every {machine.archive_seconds():g} s")
    serve(*served, release_deployment(), limit=max_runs, query_seconds=POLL_SECONDS)
