"""One Prefect task per pipeline stage, each a thin wrapper over incarnate/stages/<stage>.py of the same name;
chores.py: the steps flows run between stages (stop, remove, tear down, check, verify, prune), as tasks too.

Stages that talk to a network (store, registry) retry; the others fail fast. Errors that
a retry cannot cure (bad config, a missing release, corrupt data) are never retried.
"""

from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from incarnate.errors import ConfigError, IntegrityError, ReleaseError, StageError

# A deployment acts on the world; a cached result would skip work that must happen.
# Stages print what they find and do (create host's steps): into the run's log, not only a terminal.
STAGE = {"cache_policy": NO_CACHE, "persist_result": False, "log_prints": True}
NETWORK_RETRIES = {"retries": 2, "retry_delay_seconds": 5}


def transient(task: object, task_run: TaskRun, state: State) -> bool:
    """Retry unless the failure is one a retry cannot change (bad input, corrupt data, a failing service)."""
    error = state.result(raise_on_failure=False)
    return not isinstance(error, (ConfigError, ReleaseError, IntegrityError, StageError))
