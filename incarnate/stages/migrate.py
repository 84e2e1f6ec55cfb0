"""Migrate: the release's own containers migrate the data on start; this waits until the stack reports the pinned
release and schema version (as its release.yaml says to ask), then records the deployment on the host."""

from incarnate import settings
from incarnate.backup_format import Snapshot
from incarnate.compose import ComposeProject
from incarnate.pinned import PinnedStack
from incarnate.readiness import Readiness, wait_until_ready
from incarnate.state import write_state

NAME = "migrate"


def run(project: ComposeProject, pinned: PinnedStack, snapshot: Snapshot, kept_data: bool = False) -> Readiness:
    """The stack's readiness once it runs the release; the state records where the data came from."""
    readiness = wait_until_ready(project, pinned.release, pinned.customer.config.http_port, settings.ready_seconds())
    write_state(project, pinned, snapshot, kept_data)
    return readiness
