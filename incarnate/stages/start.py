"""Start: pull the pinned images, `compose up`, and wait until every service is healthy; the container of an optional
service the stack no longer activates is removed (its volumes are kept). Then the release's hooks of the deployment
run, in order (incarnate.hooks), before readiness is waited for."""

from incarnate.compose import ComposeProject
from incarnate.hooks import run_hooks
from incarnate.releases import ReleaseDescriptor

NAME = "start"


def run(project: ComposeProject) -> list[str]:
    """The services that are no longer activated, whose containers went."""
    removed = project.remove_unconfigured()  # first: Compose itself may or may not count them as orphans
    project.pull()
    project.up()
    if removed:
        print(f"stack {project.name}: {', '.join(removed)} no longer activated: container removed, its volumes kept")
    return removed


def hook_points(from_vanilla: bool, update: bool) -> list[str]:
    """The hook points a deployment runs once its stack is started: after_install when the data came from the
    release's vanilla backup (a new customer), after_restore always, after_update on an update."""
    return [*(["after_install"] if from_vanilla else []), "after_restore", *(["after_update"] if update else [])]


def hooks(project: ComposeProject, release: ReleaseDescriptor, point: str) -> str:
    """Run the release's hooks of `point`; what ran."""
    return run_hooks(project, point, release.hooks_at(point), release.hidden_variables)
