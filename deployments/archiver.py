"""Continuous archiving, run beside the deployments: `incarnate serve` ships the logs of the stacks it serves,
`incarnate worker --pool NAME` those of its pool's stacks, `incarnate archive REPO --follow` one stack's.

Every round ships what each stack's databases wrote since the last one (every INCARNATE_ARCHIVE_SECONDS, default 10:
the recovery point). A stack whose round succeeded is announced as the event `incarnate.log.archived` (at once
after new writes, at most once a minute; every 5 minutes when nothing was written), which the alert
`incarnate: log archive of <stack> behind` waits for (deployments/alerts.py): a round that fails (the store or the
host does not answer) says why in this process's output and announces nothing, and the next round ships what the
server kept meanwhile (it purges only what is archived).
"""

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prefect.events import emit_event

from blocks import resolve
from incarnate import settings
from incarnate.archiver import Round, ship_stack
from incarnate.compose import STATE_FILE
from incarnate.config import StackConfig
from incarnate.errors import ConfigError, IncarnateError
from incarnate.repo import load_customer_config
from incarnate.stages import create_host
from incarnate.state import StackState
from tasks.backup import stack_resource

LOG_ARCHIVED = "incarnate.log.archived"  # what the archive alert (deployments/alerts.py) waits for
NEW_WRITES_EVERY, IDLE_EVERY = 60.0, 300.0  # seconds between two announcements of one stack


def archive_seconds() -> float:
    text = os.environ.get("INCARNATE_ARCHIVE_SECONDS", "10")
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0
    if not 1 <= seconds <= 3600:
        raise ConfigError(f"INCARNATE_ARCHIVE_SECONDS {text!r}: expected seconds between 1 and 3600.")
    return seconds


@dataclass
class Announcer:
    """Rate-limits the archived events per stack."""

    said_at: dict[str, float] = field(default_factory=dict)

    def after(self, result: Round) -> None:
        shipped = any(database.pieces for database in result.shipped)
        last = self.said_at.get(result.stack)
        wait = NEW_WRITES_EVERY if shipped else IDLE_EVERY
        if not result.shipped or (last is not None and time.monotonic() - last < wait):
            return
        newest = result.newest_event()
        emit_event(
            event=LOG_ARCHIVED,
            resource={"prefect.resource.id": stack_resource(result.stack), "prefect.resource.name": result.stack},
            payload={"newest_write": newest.isoformat(timespec="seconds") if newest else None},
        )
        self.said_at[result.stack] = time.monotonic()


def archive_once(repo: str, docker_host: str | None) -> Round:
    """One round for the stack of a customer repo, on its host."""
    config: StackConfig = load_customer_config(repo).config
    project = create_host.run(resolve.host(docker_host), config.stack)
    return ship_stack(project, resolve.backup_store(config), config.backup.lock_days, config.backup.lock_mode)


def run_rounds(
    stacks: Callable[[], list[tuple[str, str | None]]],
    stop: threading.Event,
    say: Callable[[str], None] = print,
    quiet: bool = False,
) -> None:
    """Round after round over `stacks` (repo, host) until `stop` is set; a failing stack is said and skipped."""
    every, announcer = archive_seconds(), Announcer()
    while not stop.is_set():
        began = time.monotonic()
        for repo, host in stacks():
            try:
                result = archive_once(repo, host)
            except IncarnateError as error:
                say(f"archiving of {repo}: {error}")
                continue
            if not (quiet and not any(database.pieces for database in result.shipped)):
                say(result.describe())
            announcer.after(result)
        stop.wait(max(0.0, every - (time.monotonic() - began)))


def deployed_here() -> list[tuple[str, str | None]]:
    """The stacks deployed on this machine's engine, by the customer repo their state names (a worker's host)."""
    found = []
    for path in sorted(settings.stacks_dir().glob(f"*/{STATE_FILE}")):
        try:
            found.append((StackState.model_validate_json(path.read_text()).repo, None))
        except (OSError, ValueError) as error:
            print(f"archiving: {path} cannot be read ({error}); that stack is not archived from here")
    return found


def in_background(stacks: Callable[[], list[tuple[str, str | None]]]) -> threading.Event:
    """Archive these stacks in a daemon thread of this process (serve, worker); set the event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(target=run_rounds, args=(stacks, stop), kwargs={"quiet": True}, name="archiver")
    thread.daemon = True
    thread.start()
    return stop
