"""Start: pull the pinned images, `compose up`, and wait until every service is healthy."""

from incarnate.compose import ComposeProject

NAME = "start"


def run(project: ComposeProject) -> None:
    project.pull()
    project.up()
