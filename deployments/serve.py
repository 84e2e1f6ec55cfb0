"""The deployments operators use, generated from the registered customers, served by one process.

Per registered stack: `install/<stack>`, `update/<stack>`, `disaster-recovery/<stack>`,
`rollback/<stack>`, `restore-drill/<stack>` (UI buttons, CI triggers) and `backup/<stack>`,
scheduled nightly at 02:00 in the stack's time zone. Each has its customer repo as the
default parameter; the other parameters keep their typed, described defaults. Besides them,
one `publish-release/releases`: a release folder on this machine into the release store.

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
from flows.publish import publish_release
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


def release_deployment() -> RunnerDeployment:
    """Publishing from the UI (a folder on the serving machine); CI runs `incarnate release publish` itself."""
    return publish_release.to_deployment(name="releases", tags=["releases"],
                                         description="publish a release folder (release.yaml, compose.yaml) into the release store")


def all_deployments() -> list[RunnerDeployment]:
    stacks = [deployment for repo, host in hosts().items() for deployment in stack_deployments(load_customer_config(repo), host)]
    return [*stacks, release_deployment()]


def main() -> None:
    deployments = all_deployments()
    if len(deployments) == 1:
        print("no customers registered (serving only publish-release/releases): `incarnate register CUSTOMER_REPO`, "
              "then start this again")
    serve(*deployments)
