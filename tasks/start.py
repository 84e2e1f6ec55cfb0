from prefect import task

from incarnate.compose import ComposeProject
from incarnate.stages import start as stage
from tasks import NETWORK_RETRIES, STAGE, transient


@task(name=stage.NAME, retry_condition_fn=transient, **NETWORK_RETRIES, **STAGE)
def start(project: ComposeProject) -> list[str]:
    """Pull the pinned images, compose up, wait until every service is healthy; deactivated services' containers go."""
    return stage.run(project)
