"""The deployments operators use, generated from the registered customers, served by one process.

Per registered stack: `install/<stack>`, `update/<stack>`, `disaster-recovery/<stack>`,
`rollback/<stack>` (UI buttons, CI triggers); `backup/<stack>`, scheduled nightly (a minute of the
stack's own in 02:00-02:09, its time zone); and the weekly proof that the backups are good,
`restore-drill/<stack>` and `verify/<stack>` (a sample of the chunks), on stack.yaml's `backup`
schedules. Each has its customer repo as the default parameter; the other parameters keep their
typed, described defaults. Besides them, one `publish-release/releases`: a release folder on this
machine into the release store. Every deployment is tagged `incarnate`: the alert automations
(deployments/alerts.py) match that.

Why `serve` (one process polling for its own deployments) and not a work pool yet: it needs
no pool, worker or code storage, and runs each flow in the process that has this checkout.
For many hosts, the same deployments go to a process work pool with one worker per
container host (`flow.deploy(work_pool_name=...)`), so backups stream from that host.
"""

import os

from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

from deployments import alerts
from flows.backup import backup_stack
from flows.drill import restore_drill
from flows.install import disaster_recovery, install
from flows.publish import publish_release
from flows.rollback import rollback
from flows.update import update
from flows.verify import verify_stack
from incarnate.config import spread
from incarnate.customers import hosts
from incarnate.repo import CustomerConfig, load_customer_config

ON_DEMAND = {"install": install, "update": update, "disaster-recovery": disaster_recovery, "rollback": rollback}


def stack_deployments(customer: CustomerConfig, host: str | None = None) -> list[RunnerDeployment]:
    """The stack's deployments; all but disaster recovery (which goes elsewhere) default to its host."""
    stack, repo, zone, backup = customer.config.stack, customer.repo, customer.config.timezone, customer.config.backup
    nightly, drill, verify = (spread(cron, stack) for cron in (backup.schedule, backup.drill_schedule, backup.verify_schedule))
    tags = [alerts.TAG, f"stack:{stack}", f"product:{customer.config.product}"]
    on_host = {"repo": repo, **({"docker_host": host} if host else {})}
    made = [flow.to_deployment(name=stack, parameters={"repo": repo} if name == "disaster-recovery" else on_host, tags=tags,
                               description=f"{name} of stack {stack} ({repo})") for name, flow in ON_DEMAND.items()]
    made.append(backup_stack.to_deployment(
        name=stack, parameters=on_host, tags=[*tags, "nightly"], schedules=[Cron(nightly, timezone=zone)],
        description=f"nightly backup of stack {stack} ({nightly}, {zone}), then retention",
    ))
    made.append(restore_drill.to_deployment(
        name=stack, parameters=on_host, tags=[*tags, "weekly"], schedules=[Cron(drill, timezone=zone)],
        description=f"restore drill of stack {stack}: newest backup into a scratch stack, checked, removed ({drill}, {zone})",
    ))
    made.append(verify_stack.to_deployment(
        name=stack, parameters={"repo": repo, "sample": backup.verify_sample}, tags=[*tags, "weekly"],
        schedules=[Cron(verify, timezone=zone)],
        description=f"verify of stack {stack}: re-reads {backup.verify_sample} of its stored chunks ({verify}, {zone})",
    ))
    return made


def release_deployment() -> RunnerDeployment:
    """Publishing from the UI (a folder on the serving machine); CI runs `incarnate release publish` itself."""
    return publish_release.to_deployment(name="releases", tags=[alerts.TAG, "releases"],
                                         description="publish a release folder (release.yaml, compose.yaml) into the release store")


def main(settings: alerts.AlertSettings, max_runs: int) -> None:
    customers = [(load_customer_config(repo), host) for repo, host in hosts().items()]
    deployments = [deployment for customer, host in customers for deployment in stack_deployments(customer, host)]
    if not customers:
        print("no customers registered (serving only publish-release/releases): `incarnate register CUSTOMER_REPO`, "
              "then start this again")
    for line in alerts.apply([customer.config.stack for customer, _ in customers], settings):
        print(line)
    print(f"alerts: {f'failed or crashed runs and stale backups (after {settings.stale_after}) go to {settings.block}' if settings.block else 'none chosen (--alerts TYPE/NAME or INCARNATE_ALERTS): failures show only in the UI'}; "
          f"runs silent for {settings.heartbeat_grace.total_seconds():.0f} s are marked Crashed")
    # Served runs are subprocesses of this one: they beat as often as the crash detection expects.
    os.environ["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] = str(settings.heartbeat_seconds)
    # serve's own limit, not a global concurrency limit taken inside the flow: a run waiting for a global slot has
    # already started its process, so a hundred runs due at once would still cost a hundred processes here.
    print(f"runs at once: at most {max_runs} (--max-runs, INCARNATE_MAX_RUNS); the others wait their turn, in order")
    serve(*deployments, release_deployment(), limit=max_runs)
