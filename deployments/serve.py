"""The deployments operators use, generated from the registered customers, served by one process.

One deployment of each flow serves many stacks: `install/NAME`, `update/NAME`, `disaster-recovery/NAME`,
`rollback/NAME` (UI buttons, CI triggers), `backup/NAME` with a nightly schedule per stack (a minute of the stack's
own in 02:00-02:09, in its time zone), and the weekly proof that the backups are good, `restore-drill/NAME` and
`verify/NAME` (a sample of the chunks), a schedule per stack on stack.yaml's `backup` schedules. NAME is this
serving machine's (`--name`, INCARNATE_SERVE_NAME, its host name); each schedule carries its stack's repo, and a run
by hand chooses the stack's repo from the list of the registered ones (deployments/stacks.py), so `incarnate trigger
backup/STACK` still names one stack. Stacks on another engine (`register --docker-host`) get deployments of their
own (`NAME-on-HOST`), whose runs act on that engine. Besides them, `fleet/NAME` keeps the fleet table current (the
artifact `fleet`, hourly), and one `publish-release/releases` puts a release folder on this machine into the release
store. Every deployment is tagged `incarnate`: the alert automations (deployments/alerts.py) match that; every run
tags itself with its stack (flows/report.py).

Why per flow: a thousand stacks' deployments per stack were 7,000, created one by one at serve's start (27 min) and
paused one by one on its way out (15 min); per flow they are seven, with the same 3,000 schedules, and serve starts
in 16 s and stops in 7 s with a thousand stacks registered (docs/benchmarks.md).

Why `serve` (one process polling for its own deployments) by default: it needs no pool, worker or code storage, and
runs each flow in the process that has this checkout. Stacks registered with `--pool POOL` instead get the same
deployments (`NAME-in-POOL`) in the Prefect work pool POOL (process type, one per container host): `incarnate worker
--pool POOL` on that host runs them there (deployments/worker.py), so its dumps stream from the host to the store, not
through this machine. Their entrypoints are module paths (`flows.backup.backup_stack`): a worker needs incarnate
installed, not this checkout at the same path.
"""

import inspect
import os
import re
from concurrent.futures import ThreadPoolExecutor

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.schedules import Cron
from prefect.utilities.callables import ParameterSchema

from deployments import alerts, archiver, run_start
from deployments.stacks import TAG, read_all_deployments, serve_only
from deployments.worker import POLL_SECONDS, ensure_pool
from flows.backup import backup_stack
from flows.drill import restore_drill
from flows.fleet import fleet_overview
from flows.install import disaster_recovery, install
from flows.publish import publish_release
from flows.rollback import rollback
from flows.update import update
from flows.verify import verify_stack
from incarnate.config import spread
from incarnate.customers import Registration, registrations
from incarnate.errors import ConfigError
from incarnate.repo import CustomerConfig, load_customer_config

TAGS_A_REQUEST = 50  # a filter of 200 tags fails on the server (SQLite), 100 passes
READERS = 8  # customer repos read at once: git clones, mostly waiting on the disk or the network
ON_DEMAND = {"install": install, "update": update, "disaster-recovery": disaster_recovery, "rollback": rollback}
SCHEDULED = {
    "backup": (backup_stack, "nightly"),
    "restore-drill": (restore_drill, "weekly"),
    "verify": (verify_stack, "weekly"),
}
SERVED_FLOWS = [*ON_DEMAND.values(), *(flow for flow, _ in SCHEDULED.values()), publish_release, fleet_overview]
WHAT = {
    "install": "install a stack from its newest backup (or a snapshot)",
    "update": "update a stack to its repo's ref",
    "disaster-recovery": "recover a stack from its backup, onto a host of your choice",
    "rollback": "roll a stack back to an earlier incarnation",
    "backup": "back up each stack nightly (a minute of its own in 02:00-02:09, its time zone), then retention",
    "restore-drill": "restore each stack's backup (a random second since the oldest) into a scratch stack weekly, "
    "check it, remove it",
    "verify": "re-read a sample of each stack's stored chunks weekly",
}


def deployment_name(serving: str, where: Registration) -> str:
    """The name of the deployments that serve the stacks registered `where`."""
    host = re.sub(r"[^A-Za-z0-9._-]+", "-", where.host.split("://", 1)[-1]).strip("-") if where.host else ""
    return "-".join([serving, *([f"in-{where.pool}"] if where.pool else []), *([f"on-{host}"] if host else [])])


def flow_deployments(serving: str, where: Registration, customers: list[CustomerConfig]) -> list[RunnerDeployment]:
    """One deployment of each flow for these stacks (all registered `where`); all but disaster recovery (which goes
    elsewhere) default to their host. Those of stacks in a work pool act on the engine of the worker's own host."""
    name = deployment_name(serving, where)
    stacks = {customer.config.stack: customer.repo for customer in customers}
    on_host = {"docker_host": where.host} if where.host else {}
    pooled = {"entrypoint_type": EntrypointType.MODULE_PATH} if where.pool else {}
    runner = f"; run by the workers of pool {where.pool}" if where.pool else ""

    def deployment(flow, kind: str, parameters: dict, more_tags: tuple[str, ...] = (), **options) -> RunnerDeployment:
        made = flow.to_deployment(
            name=name,
            parameters=parameters,
            tags=[TAG, f"served-by:{serving}", *more_tags],
            description=f"{WHAT[kind]}: {len(stacks)} stacks served by {serving}{runner} (choose the stack's repo)",
            **pooled,
            **options,
        )
        # The repo parameter lists the registered repos: the UI's choice, and the server refuses any other.
        made._parameter_openapi_schema = ParameterSchema(
            **serve_only(made._parameter_openapi_schema.model_dump(), stacks)
        )
        return made

    def host_of(flow) -> dict:
        # A flow that acts on no host (verify reads the store) must not be given one: its runs would crash.
        return on_host if "docker_host" in inspect.signature(flow.fn).parameters else {}

    made = [
        deployment(flow, kind, {} if kind == "disaster-recovery" else host_of(flow)) for kind, flow in ON_DEMAND.items()
    ]
    for kind, (flow, cadence) in SCHEDULED.items():
        schedules = [stack_schedule(kind, customer) for customer in customers]
        # A drill's default: a random second since the oldest backup, so logs are replayed and older bases tried.
        defaults = {**host_of(flow), **({"at": "random"} if kind == "restore-drill" else {})}
        made.append(deployment(flow, kind, defaults, more_tags=(cadence,), schedules=schedules))
    return made


def placed(where: Registration, stacks: int) -> str:
    runner = f"run by the workers of pool {where.pool}" if where.pool else "served here"
    engine = where.host or ("the worker's host" if where.pool else "this machine")
    return f"{stacks} stack(s) on {engine}, {runner}"


def stack_schedule(kind: str, customer: CustomerConfig) -> Cron:
    """The stack's schedule of a scheduled flow: stack.yaml's cron (H spread by the stack's name) in its time zone,
    with its repo (and what else its runs get)."""
    stack, backup = customer.config.stack, customer.config.backup
    cron, extra = {
        "backup": (backup.schedule, {}),
        "restore-drill": (backup.drill_schedule, {}),
        "verify": (backup.verify_schedule, {"sample": backup.verify_sample}),
    }[kind]
    return Cron(
        spread(cron, stack),
        timezone=customer.config.timezone,
        parameters={"repo": customer.repo, **extra},
        slug=stack,
    )


def grouped(
    customers: list[tuple[CustomerConfig, Registration]], serving: str
) -> dict[Registration, list[CustomerConfig]]:
    """The stacks by where they run; refused when two places would share a deployment name."""
    groups: dict[Registration, list[CustomerConfig]] = {}
    for customer, where in customers:
        groups.setdefault(where, []).append(customer)
    names: dict[str, Registration] = {}
    for where in groups:
        clash = names.setdefault(deployment_name(serving, where), where)
        if clash != where:
            raise ConfigError(
                f"hosts {clash.host} and {where.host} would share the deployments {deployment_name(serving, where)}; "
                f"register one of them under another address (its name in ~/.ssh/config, or an incarnate-ssh-host "
                f"block)."
            )
    return groups


def retire(serving: str, wanted: list[RunnerDeployment], stacks: list[str]) -> list[str]:
    """Delete what an earlier start of this serve made that is no longer wanted (a host no stack runs on any more),
    and the deployments an earlier incarnate made per stack of the stacks served now. What went, a line each."""
    keep = {(made.flow_name, made.name) for made in wanted}
    gone = []
    with get_client(sync_client=True) as client:
        mine = DeploymentFilter(tags=DeploymentFilterTags(all_=[f"served-by:{serving}"]))
        present = read_all_deployments(client, deployment_filter=mine)
        tags = [f"stack:{stack}" for stack in stacks]
        for start in range(0, len(tags), TAGS_A_REQUEST):  # in batches: see TAGS_A_REQUEST
            per_stack = DeploymentFilter(tags=DeploymentFilterTags(any_=tags[start : start + TAGS_A_REQUEST]))
            present += read_all_deployments(client, deployment_filter=per_stack)
        # By id, a request each of the few flows found: a listing of the server's flows is a page (200) of them.
        flows = {flow_id: client.read_flow(flow_id).name for flow_id in {found.flow_id for found in present}}
        for found in present:
            if (flows[found.flow_id], found.name) not in keep:
                client.delete_deployment(found.id)
                gone.append(f"removed deployment {flows[found.flow_id]}/{found.name} (no longer wanted)")
    return gone


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
        tags=[TAG, "releases"],
        description="publish a release folder (release.yaml, compose.yaml) into the release store",
    )


def registered_customers() -> list[tuple[CustomerConfig, Registration]]:
    """Every registered repo's stack.yaml and where its stack runs; the repos are read a few at once (each is a
    clone: a thousand one by one are most of serve's start). The first that cannot be read stops the start."""
    registered = registrations()
    with ThreadPoolExecutor(READERS) as readers:
        return list(zip(readers.map(load_customer_config, registered), registered.values(), strict=True))


def fleet_deployment(serving: str) -> RunnerDeployment:
    """The fleet table kept current: the artifact `fleet`, hourly (a minute of this serve's own)."""
    return fleet_overview.to_deployment(
        name=serving,
        tags=[TAG, f"served-by:{serving}"],
        description="every served stack in one table (the artifact `fleet`): host, release, backups, drills, alerts",
        schedules=[Cron(spread("H * * * *", serving))],
    )


def main(settings: alerts.AlertSettings, max_runs: int, serving: str) -> None:
    customers = registered_customers()
    served: list[RunnerDeployment] = []
    pooled: dict[str, list[RunnerDeployment]] = {}
    for where, members in grouped(customers, serving).items():
        made = flow_deployments(serving, where, members)
        (pooled.setdefault(where.pool, []) if where.pool else served).extend(made)
        print(f"deployments {deployment_name(serving, where)} of {len(made)} flows: {placed(where, len(members))}")
    releases, overview = release_deployment(), fleet_deployment(serving)
    stacks = [customer.config.stack for customer, _ in customers]
    if not customers:
        print(
            "no customers registered (serving only publish-release/releases): `incarnate register CUSTOMER_REPO`, "
            "then start this again"
        )
    for line in [
        *retire(serving, [*served, *(made for group in pooled.values() for made in group), releases, overview], stacks),
        *alerts.apply(settings),
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
        archiver.in_background(lambda: local, f"{len(local)} stack(s)")
    run_start.serve([*served, releases, overview], SERVED_FLOWS, limit=max_runs, query_seconds=POLL_SECONDS)
