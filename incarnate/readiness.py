"""Readiness: whether a started stack runs its release, as its release.yaml says to ask: the app's health answer
(a JSON report of release and schema version, or any 2xx), a schema command run in a service, or Compose's
healthchecks alone (which `compose up --wait` has already waited for)."""

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from incarnate.compose import ComposeProject
from incarnate.errors import StageError
from incarnate.releases import ReleaseDescriptor


@dataclass(frozen=True)
class Readiness:
    release: str
    schema_version: int | None  # None: release.yaml asks for no schema check

    def describe(self) -> str:
        schema = "schema not checked" if self.schema_version is None else f"schema {self.schema_version}"
        return f"release {self.release}, {schema}"

    def as_dict(self) -> dict:
        return {"release": self.release, "schema_version": self.schema_version}


def read_health(url: str) -> dict | None:
    """The app's JSON health report, or None while it does not answer with JSON."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None


def http_status(url: str) -> int | None:
    """The HTTP status the app answers with, None while nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def health_url(project: ComposeProject, release: ReleaseDescriptor, http_port: int) -> str | None:
    return project.host.app_url(http_port) + release.health.path if release.health.path else None


def schema_from_command(project: ComposeProject, release: ReleaseDescriptor) -> str:
    """What the release's schema command prints (stripped); its failure is an answer too, not an exception."""
    check = release.schema_check
    try:
        return project.compose(
            "exec",
            "-T",
            check.service,
            *check.command,
            what=f"reading the schema version in service {check.service}",
            timeout=60,
        ).strip()
    except StageError as error:
        return f"({error})"


def observe(project: ComposeProject, release: ReleaseDescriptor, http_port: int) -> tuple[Readiness | None, str]:
    """The stack's readiness when it runs `release`, else None and what was seen instead (for an error)."""
    url = health_url(project, release, http_port)
    schema: int | None = None
    if url and release.health.answer == "release":
        health = read_health(url)
        if not health or (health.get("release"), health.get("schema_version")) != (
            release.release,
            release.schema_version,
        ):
            return None, f"{url} reports {health or 'nothing'}"
        schema = release.schema_version
    elif url:
        status = http_status(url)
        if status is None or not 200 <= status < 300:
            return None, f"{url} answers {f'HTTP {status}' if status else 'nothing'}"
    if release.schema_check:
        printed = schema_from_command(project, release)
        if printed != str(release.schema_version):
            return (
                None,
                f"the schema command in service {release.schema_check.service} printed {printed or 'nothing'!r}",
            )
        schema = release.schema_version
    return Readiness(release.release, schema), "ready"


def wait_until_ready(
    project: ComposeProject, release: ReleaseDescriptor, http_port: int, timeout: float = 300
) -> Readiness:
    """Poll until the stack runs the release at its schema version; StageError naming what it saw after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        readiness, seen = observe(project, release, http_port)
        if readiness:
            return readiness
        if time.monotonic() >= deadline:
            raise StageError(
                f"stack {project.name}: {seen} after {timeout:.0f} s; release {release.release} expects schema version "
                f"{release.schema_version}; see `docker compose -p {project.name} logs`."
            )
        time.sleep(1)
