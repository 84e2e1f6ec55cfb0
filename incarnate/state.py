"""What a host knows of the stack it runs (state.json beside its compose file), and whether it is healthy."""

from datetime import UTC, datetime

from pydantic import BaseModel

from incarnate.backup_format import Snapshot
from incarnate.compose import STATE_FILE, ComposeProject
from incarnate.errors import StageError
from incarnate.health import HealthWait
from incarnate.pinned import PinnedStack
from incarnate.private import write_private
from incarnate.readiness import observe


class StackState(BaseModel):
    """Written after a deployment, read by status, backup and the next deployment."""

    stack: str
    product: str
    release: str
    schema_version: int
    repo: str
    ref: str
    config_commit: str
    restored_from: str
    kept_data: bool = False  # the targets held data, which was kept: restored_from was not loaded
    deployed_at: str
    http_port: int
    registry: str
    services: list[str] = []  # optional services activated
    size: str | None = None


def read_state(project: ComposeProject) -> StackState | None:
    path = project.workdir / STATE_FILE
    return StackState.model_validate_json(path.read_text()) if path.is_file() else None


def write_state(
    project: ComposeProject, pinned: PinnedStack, snapshot: Snapshot, kept_data: bool = False
) -> StackState:
    customer = pinned.customer
    state = StackState(
        stack=pinned.stack,
        product=customer.config.product,
        release=pinned.release.release,
        schema_version=pinned.release.schema_version,
        repo=customer.repo,
        ref=customer.ref,
        config_commit=customer.commit,
        restored_from=snapshot.id,
        kept_data=kept_data,
        deployed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        http_port=customer.config.http_port,
        registry=pinned.registry,
        services=customer.config.services,
        size=pinned.size,
    )
    write_private(project.workdir / STATE_FILE, state.model_dump_json(indent=2).encode())
    project.save_on_host()
    return state


def runs_as_deployed(project: ComposeProject, pinned: PinnedStack, state: StackState) -> bool:
    """The stack (whose state the host keeps) was deployed from this very config commit and release, all its
    services run, and it reports that release and schema (as its release.yaml says to ask): a deployment would
    change nothing."""
    if (state.config_commit, state.release) != (pinned.customer.commit, pinned.release.release):
        return False
    services = project.services()
    if {service.get("Service") for service in services} != set(pinned.release.images):
        return False
    if any(service.get("State") != "running" for service in services):
        return False
    try:  # Docker may not have run a check since the start (one interval): the checks are run now, once
        HealthWait(project.host, project.name, None).until_healthy(timeout=0)
    except StageError:
        return False
    readiness, _ = observe(project, pinned.release, state.http_port)
    return readiness is not None
