"""One Prefect task per pipeline stage, each a thin wrapper over incarnate/stages/<stage>.py of the same name;
chores.py: the steps flows run between stages (stop, remove, tear down, check, verify, prune), as tasks too.

Stages that talk to a network (store, registry) retry; the others fail fast. Errors that
a retry cannot cure (bad config, a missing release, corrupt data) are never retried.
"""

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from incarnate.errors import ConfigError, IntegrityError, ReleaseError, StageError
from incarnate.progress import Reading, reporting

# A deployment acts on the world; a cached result would skip work that must happen.
# Stages print what they find and do (create host's steps): into the run's log, not only a terminal.
STAGE = {"cache_policy": NO_CACHE, "persist_result": False, "log_prints": True}
NETWORK_RETRIES = {"retries": 2, "retry_delay_seconds": 5}


def transient(task: object, task_run: TaskRun, state: State) -> bool:
    """Retry unless the failure is one a retry cannot change (bad input, corrupt data, a failing service)."""
    error = state.result(raise_on_failure=False)
    return not isinstance(error, (ConfigError, ReleaseError, IntegrityError, StageError))


class ArtifactProgress:
    """A long transfer's progress as a Prefect progress artifact of the running task, updated every few seconds
    (each update is an API call) and once more when it is done."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self.artifacts: dict[str, UUID] = {}
        self.shown_at: dict[str, float] = {}

    def show(self, reading: Reading) -> None:
        if not reading.finished and reading.seconds - self.shown_at.get(reading.what, -self.every) < self.every:
            return
        self.shown_at[reading.what] = reading.seconds
        percent, description = reading.percent() or 0.0, reading.describe()
        if reading.what in self.artifacts:
            update_progress_artifact(
                artifact_id=self.artifacts[reading.what], progress=percent, description=description
            )
        else:
            self.artifacts[reading.what] = create_progress_artifact(progress=percent, description=description)


Params = ParamSpec("Params")
Result = TypeVar("Result")


def shows_progress(work: Callable[Params, Result]) -> Callable[Params, Result]:
    """Long transfers inside this task show as progress artifacts in the UI while it runs."""

    @functools.wraps(work)
    def run(*args: Params.args, **kwargs: Params.kwargs) -> Result:
        with reporting(ArtifactProgress()):
            return work(*args, **kwargs)

    return run
