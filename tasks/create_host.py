from prefect import task

from incarnate import pipeline
from incarnate.compose import ComposeProject
from incarnate.config import HostSettings
from incarnate.host import Host
from tasks import STAGE


@task(name="create host", **STAGE)
def create_host(host: Host, stack: str, settings: HostSettings | None = None) -> ComposeProject:
    """Prepare the host (with `settings`), its Docker engine answers, Compose v2 works, the stack's directory exists."""
    return pipeline.create_host(host, stack, settings)
