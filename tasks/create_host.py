from prefect import task

from incarnate import pipeline
from incarnate.compose import ComposeProject
from incarnate.host import Host
from tasks import STAGE


@task(name="create host", **STAGE)
def create_host(host: Host, stack: str) -> ComposeProject:
    """Docker engine answers, Compose v2 works, the stack's directory exists."""
    return pipeline.create_host(host, stack)
