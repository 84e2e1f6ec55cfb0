"""Migrate: the release's own containers migrate the data on start; this waits until the app reports the pinned
release and schema version, then records the deployment on the host."""

import time

from incarnate.backup_format import Snapshot
from incarnate.compose import ComposeProject
from incarnate.errors import StageError
from incarnate.pinned import PinnedStack
from incarnate.state import read_health, write_state

NAME = "migrate"


def run(project: ComposeProject, pinned: PinnedStack, snapshot: Snapshot, kept_data: bool = False, timeout: float = 300) -> dict:
    """The app's health report once it matches the release; the state records where the data came from."""
    release = pinned.release
    url = project.host.app_url(pinned.customer.config.http_port) + release.health.path
    deadline, health = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        health = read_health(url)
        if health and health.get("release") == release.release and health.get("schema_version") == release.schema_version:
            write_state(project, pinned, snapshot, kept_data)
            return health
        time.sleep(1)
    raise StageError(
        f"stack {pinned.stack}: {url} reports {health or 'nothing'} after {timeout:.0f} s; release "
        f"{release.release} expects schema version {release.schema_version}; see "
        f"`docker compose -p {pinned.stack} logs`."
    )
