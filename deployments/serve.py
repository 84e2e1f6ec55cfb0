"""The deployments operators use, generated from the registered customers, served by one process.

Per registered stack: `install/<stack>`, `update/<stack>`, `disaster-recovery/<stack>`,
`rollback/<stack>`, `restore-drill/<stack>` (UI buttons, CI triggers) and `backup/<stack>`,
scheduled nightly at 02:00 in the stack's time zone. Each has its customer repo as the
default parameter; the other parameters keep their typed, described defaults.

Why `serve` (one process polling for its own deployments) and not a work pool yet: it needs
no pool, worker or code storage, and runs each flow in the process that has this checkout.
For many hosts, the same deployments go to a process work pool with one worker per
container host (`flow.deploy(work_pool_name=...)`), so backups stream from that host.
"""

from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

from flows.backup import backup_stack
from flows.drill import restore_drill
from flows.install import disaster_recovery, install
from flows.rollback import rollback
from flows.update import update
from incarnate.customers import hosts
from incarnate.repo import CustomerConfig, load_customer_config

NIGHTLY = "0 2 * * *"
ON_DEMAND = {"install": install, "update": update, "disaster-recovery": disaster_recovery,
             "rollback": rollback, "restore-drill": restore_drill}


def stack_deployments(customer: CustomerConfig, host: str | None = None) -> list[RunnerDeployment]:
    """The stack's deployments; all but disaster recovery (which goes elsewhere) default to its host."""
    stack, repo = customer.config.stack, customer.repo
    tags = [f"stack:{stack}", f"product:{customer.config.product}"]
    on_host = {"repo": repo, **({"docker_host": host} if host else {})}
    made = [flow.to_deployment(name=stack, parameters={"repo": repo} if name == "disaster-recovery" else on_host, tags=tags,
                               description=f"{name} of stack {stack} ({repo})") for name, flow in ON_DEMAND.items()]
    made.append(backup_stack.to_deployment(
        name=stack, parameters=on_host, tags=[*tags, "nightly"],
        schedules=[Cron(NIGHTLY, timezone=customer.config.timezone)],
        description=f"nightly backup of stack {stack} at 02:00 {customer.config.timezone}, then retention",
    ))
    return made


def all_deployments() -> list[RunnerDeployment]:
    return [deployment for repo, host in hosts().items() for deployment in stack_deployments(load_customer_config(repo), host)]


def main() -> None:
    deployments = all_deployments()
    if not deployments:
        print("no customers registered: `incarnate register CUSTOMER_REPO` first, then start this again")
    serve(*deployments)
