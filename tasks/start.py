from prefect import task

from incarnate.compose import ComposeProject
from incarnate.releases import ReleaseDescriptor
from incarnate.stages import start as stage
from tasks import NETWORK_RETRIES, STAGE, transient


@task(name=stage.NAME, retry_condition_fn=transient, **NETWORK_RETRIES, **STAGE)
def start(project: ComposeProject) -> list[str]:
    """Pull the pinned images, compose up, wait until every service is healthy; deactivated services' containers go."""
    return stage.run(project)


@task(name="hooks", task_run_name="{point} hooks", **STAGE)
def hooks(project: ComposeProject, release: ReleaseDescriptor, point: str) -> str:
    """The release's hooks of one point, in its services, in order; never retried (a hook need not be idempotent)."""
    return stage.hooks(project, release, point)
