from prefect import task

from incarnate import pipeline
from incarnate.compose import ComposeProject
from tasks import NETWORK_RETRIES, STAGE, transient


@task(name="start", retry_condition_fn=transient, **NETWORK_RETRIES, **STAGE)
def start(project: ComposeProject, deployment: pipeline.Deployment) -> None:
    """Pull the pinned images, compose up, wait until every service is healthy."""
    pipeline.start(project, deployment)
