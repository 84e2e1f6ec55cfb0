from prefect import task

from incarnate.compose import ComposeProject
from incarnate.config import HostSettings
from incarnate.host import Host
from incarnate.stages import create_host as stage
from tasks import STAGE


@task(name=stage.NAME, **STAGE)
def create_host(host: Host, stack: str, settings: HostSettings | None = None) -> ComposeProject:
    """Prepare the host (with `settings`), its Docker engine answers, Compose v2 works, the stack's directory exists."""
    return stage.run(host, stack, settings)
