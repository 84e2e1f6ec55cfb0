"""Start: pull the pinned images, `compose up`, and wait until every service is healthy; the container of an optional
service the stack no longer activates is removed (its volumes are kept)."""

from incarnate.compose import ComposeProject

NAME = "start"


def run(project: ComposeProject) -> list[str]:
    """The services that are no longer activated, whose containers went."""
    removed = project.remove_unconfigured()  # first: Compose itself may or may not count them as orphans
    project.pull()
    project.up()
    if removed:
        print(f"stack {project.name}: {', '.join(removed)} no longer activated: container removed, its volumes kept")
    return removed
