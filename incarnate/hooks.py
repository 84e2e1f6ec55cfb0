"""Lifecycle hooks: commands a release runs in one of its services at fixed points of a stack's life (its first-run
installer before the vanilla backup, pointing the app at the customer's settings after a restore, maintenance mode
around a backup), each with a timeout, its exit status checked and its output in the run log.

A hook runs in its service's container with the service's environment (compose.yaml gives it the stack's settings
and secrets), plus INCARNATE_HOOK (the point) and INCARNATE_STACK; stack secrets are masked in what it prints."""

import time
from typing import Literal

from pydantic import Field

from incarnate.compose import ComposeProject
from incarnate.config import Strict
from incarnate.errors import StageError

# In the order a stack meets them. first_install runs only where a release is published, on empty data;
# after_install only when a stack's data came from its release's vanilla backup (a new customer).
POINTS = ("first_install", "after_install", "after_restore", "after_update", "before_backup", "after_backup")
Point = Literal[POINTS]


class Hook(Strict):
    """One command a release runs at a point of a stack's life."""

    service: str = Field(description="The service it runs in (it must be running then).")
    command: list[str] = Field(
        min_length=1,
        description='Argument list run with `docker compose exec`; no shell (use [sh, -c, "..."] if you need one).',
    )
    timeout: int = Field(
        default=300,
        ge=1,
        le=3600,
        description="Seconds after which it counts as failed (its stage fails; a command still running in the "
        "container is not killed: give it its own time limit if it must not outlive the hook).",
    )


def masked(text: str, hidden: list[str]) -> str:
    for value in sorted(hidden, key=len, reverse=True):
        text = text.replace(value, "****")
    return text


def secret_values(project: ComposeProject, names: list[str]) -> list[str]:
    """The values of the stack's secrets (variables `names`): what a hook never shows."""
    return [value for value in project.variables(names).values() if len(value) >= 4]


def run_hook(project: ComposeProject, point: str, hook: Hook, hidden: list[str]) -> str:
    """Run one hook; StageError naming the point, the service and its last output lines when it fails."""
    began = time.monotonic()
    what = f"the {point} hook `{' '.join(hook.command)[:80]}` in service {hook.service} of stack {project.name}"
    try:
        output = project.compose(
            "exec",
            "-T",
            "--env",
            f"INCARNATE_HOOK={point}",
            "--env",
            f"INCARNATE_STACK={project.name}",
            hook.service,
            *hook.command,
            what=what,
            timeout=hook.timeout,
        )
    except StageError as error:
        raise StageError(masked(str(error), hidden)) from None
    for line in masked(output, hidden).splitlines():
        print(f"stack {project.name}: {point} hook in {hook.service}: {line}")
    return f"{hook.service}: {hook.command[0]} ({time.monotonic() - began:.1f} s)"


def run_hooks(project: ComposeProject, point: str, hooks: list[Hook], secret_names: list[str]) -> str:
    """Every hook of `point` in order, the first failure stopping the rest; what ran, for the stage's report."""
    if not hooks:
        return ""
    hidden = secret_values(project, secret_names)
    return f"{point} hooks: " + "; ".join(run_hook(project, point, hook, hidden) for hook in hooks)


def running_only(project: ComposeProject, point: str, hooks: list[Hook]) -> list[Hook]:
    """The hooks whose service runs now (a backup of a stack whose app is stopped skips the app's backup hooks: there
    is no maintenance mode to enter in a stopped app), saying which were skipped."""
    if not hooks:
        return []
    running = {service["Service"] for service in project.services() if service.get("State") == "running"}
    skipped = [hook for hook in hooks if hook.service not in running]
    for hook in skipped:
        print(f"stack {project.name}: {point} hook in {hook.service} skipped: the service is not running")
    return [hook for hook in hooks if hook.service in running]
