"""Create host: the host is prepared (Docker, Compose, stack.yaml's host settings), its engine answers through
this machine's connection, Compose v2 works here, and (when it prepares) the stack's working folder exists."""

from incarnate.compose import ComposeProject
from incarnate.config import HostSettings
from incarnate.errors import HostError
from incarnate.host import Host
from incarnate.hostprep import prepare_host
from incarnate.private import private_dir

NAME = "create host"


def run(host: Host, stack: str, settings: HostSettings | None = None) -> ComposeProject:
    """Without `settings` the host is only checked, never changed (status, backup, a scratch stack)."""
    if settings is not None:
        prepare_host(host.shell(), stack, settings)
    host.check_engine()
    host.compose_command()
    workdir = host.stack_dir(stack)
    if settings is not None:  # a check leaves nothing behind: serve's archiver checks every registered stack
        try:
            private_dir(workdir)
        except OSError as error:
            raise HostError(f"host {host.name}: cannot create {workdir} ({error.strerror}).") from None
    project = ComposeProject(host=host, name=stack, workdir=workdir)
    project.load_from_host()
    return project
