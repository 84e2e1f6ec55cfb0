"""One run per stack: a Prefect global concurrency limit `stack-<stack>` with one slot, held by a lease."""

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from incarnate import settings
from incarnate.errors import StageError

# The shortest lease Prefect's server takes (it refuses less than 60 s): a killed run frees its stack within it.
LOCK_LEASE_SECONDS = 60


def _ensure_limit(name: str) -> None:
    """Global concurrency limits do nothing unless they exist: create the stack's with one slot."""
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            except ObjectAlreadyExists:
                pass  # another run created it first


@contextmanager
def stack_lock(stack: str) -> Iterator[None]:
    """Two runs on one stack never interleave: the second waits, then fails with a clear message. A run renews its
    hold on the stack while it lives; one that was killed frees it within the lease."""
    name = f"stack-{stack}"
    wait_seconds = settings.lock_wait_seconds()
    _ensure_limit(name)
    acquired = False
    try:
        with concurrency(name, occupy=1, timeout_seconds=wait_seconds, lease_duration=LOCK_LEASE_SECONDS, strict=True):
            acquired = True
            yield
    except TimeoutError:
        if acquired:
            raise
        raise StageError(
            f"stack {stack} is busy: another run holds concurrency limit {name}; gave up after "
            f"{wait_seconds:.0f} s. Nothing was changed; run again when it has finished."
        ) from None
