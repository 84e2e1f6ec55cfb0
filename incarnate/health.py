"""Healthy, as incarnate waits for it after `compose up`: each started container runs, and its health check passes.

incarnate runs a container's health check itself (`docker exec` of the very command Docker runs, as the
container's user) every half second until it passes, instead of waiting for Docker to report it healthy
(`compose up --wait`): Docker runs the first check one interval after the start, and engines before 25 have
no start_interval, so a product with a sensible interval (30 s, not 2 s that cost an idle host a core per
twenty stacks) would add that interval to every deployment, twice when one service waits for another.
A container without a health check is ready once it runs, a one-shot one once it exited with 0. A container
that exits otherwise, or restarts after the first look, fails the wait at once; Docker's own "unhealthy" does too.
"""

import json
import time
from dataclasses import dataclass

from incarnate.errors import HostError, StageError, tail
from incarnate.host import Host

POLL_SECONDS = 0.5
DEFAULT_CHECK_TIMEOUT = 30.0  # Docker's own default for a health check's timeout


@dataclass(frozen=True)
class Container:
    id: str
    service: str
    status: str  # created, running, restarting, exited, dead, ...
    exit_code: int
    restarts: int
    health: str | None  # starting, healthy, unhealthy; None without a health check
    check: tuple[str, ...] | None  # the health check as `docker exec` runs it
    check_timeout: float


def container_of(inspected: dict) -> Container:
    """What `docker inspect` says of a container, as the wait needs it."""
    state, config = inspected["State"], inspected["Config"]
    healthcheck = config.get("Healthcheck") or {}
    test = healthcheck.get("Test") or []
    check: tuple[str, ...] | None = None
    if len(test) > 1 and test[0] == "CMD":
        check = tuple(test[1:])
    elif len(test) == 2 and test[0] == "CMD-SHELL":
        check = ("/bin/sh", "-c", test[1])  # what Docker runs for the shell form on Linux
    health = (state.get("Health") or {}).get("Status")
    return Container(
        id=inspected["Id"],
        service=config.get("Labels", {}).get("com.docker.compose.service", inspected["Name"].lstrip("/")),
        status=state["Status"],
        exit_code=state.get("ExitCode", 0),
        restarts=inspected.get("RestartCount", 0),
        health=health,
        check=check if health is not None else None,
        check_timeout=(healthcheck.get("Timeout") or DEFAULT_CHECK_TIMEOUT * 1e9) / 1e9,
    )


def still_starting(containers: list[Container], passed: set[str], restarts_at_start: dict[str, int]) -> list[Container]:
    """The containers not yet seen healthy; StageError naming the first that failed instead."""
    pending = []
    for container in containers:
        if container.status == "exited" and container.exit_code == 0 and not container.restarts:
            continue  # a one-shot service (an init job) that did its work
        if container.status in ("exited", "dead"):
            raise StageError(f"service {container.service} exited with code {container.exit_code}")
        if container.status == "restarting" or container.restarts > restarts_at_start.get(
            container.id, container.restarts
        ):
            raise StageError(f"service {container.service} keeps restarting")
        if container.health == "unhealthy":
            raise StageError(f"service {container.service} is unhealthy (Docker's own health check failed its retries)")
        if container.status != "running" or (container.health not in (None, "healthy") and container.id not in passed):
            pending.append(container)
    return pending


def compose_filters(project: str, **labels: str) -> list[str]:
    """`--filter` arguments selecting what Compose made for a project, narrowed by its other labels (service=,
    volume=, oneoff=): the engine finds them by label, without the compose file or Compose's own parsing."""
    wanted = {"project": project, **labels}
    return [
        argument
        for key, value in wanted.items()
        for argument in ("--filter", f"label=com.docker.compose.{key}={value}")
    ]


class HealthWait:
    """One wait for the containers of some services of a Compose project to be healthy."""

    def __init__(self, host: Host, project: str, services: list[str] | None) -> None:
        self.host, self.project, self.services = host, project, services
        self.passed: set[str] = set()
        self.restarts_at_start: dict[str, int] = {}
        self.last_output: dict[str, str] = {}

    def containers(self) -> list[Container]:
        ids = self.host.run(
            ["docker", "ps", "--all", "--quiet", *compose_filters(self.project, oneoff="False")],  # not `compose run`'s
            what=f"listing containers of stack {self.project}",
        ).split()
        if not ids:
            return []
        inspected = json.loads(
            self.host.run(["docker", "inspect", *ids], what=f"inspecting containers of stack {self.project}")
        )
        found = [container_of(item) for item in inspected]
        return [container for container in found if not self.services or container.service in self.services]

    def check(self, container: Container) -> None:
        """Run the container's health check once; remember it passed, or what it said."""
        if container.status != "running" or container.check is None:
            return
        try:
            self.host.run(
                ["docker", "exec", container.id, *container.check],
                what=f"health check of service {container.service}",
                timeout=container.check_timeout,
            )
        except HostError as failure:
            self.last_output[container.service] = str(failure)
            return
        self.passed.add(container.id)

    def until_healthy(self, timeout: float) -> None:
        """Return once every container is healthy; StageError naming the stack, its host and the service that
        failed, or is still not healthy after `timeout` seconds."""
        try:
            self._wait(timeout)
        except StageError as failure:
            raise StageError(f"stack {self.project} on host {self.host.name}: {failure}.") from None

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            containers = self.containers()
            for container in containers:
                self.restarts_at_start.setdefault(container.id, container.restarts)
            pending = still_starting(containers, self.passed, self.restarts_at_start)
            for container in pending:
                self.check(container)
            pending = [container for container in pending if container.id not in self.passed]
            if not pending:
                return
            if time.monotonic() >= deadline:
                first = pending[0]
                said = self.last_output.get(first.service)
                raise StageError(
                    f"service {first.service} is not healthy after {timeout:.0f} s"
                    + (f" (its health check: {tail(said, 1)})" if said else f" ({first.status})")
                )
            time.sleep(POLL_SECONDS)
