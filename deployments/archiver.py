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
import random
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TypeVar

from prefect.events import emit_event

from blocks import resolve
from deployments.stacks import stacks_of
from incarnate import settings
from incarnate.archiver import Kept, Round, ship_stack
from incarnate.compose import ComposeProject
from incarnate.config import StackConfig
from incarnate.errors import IncarnateError
from incarnate.host import Host
from incarnate.repo import load_customer_config
from incarnate.stages import create_host
from incarnate.stores import Store
from tasks.backup import stack_resource

LOG_ARCHIVED = "incarnate.log.archived"  # what the archive alert (deployments/alerts.py) waits for
NEW_WRITES_EVERY, IDLE_EVERY = 60.0, 300.0  # seconds between two announcements of one stack
ARCHIVER_NICE = 10  # how far the rounds stand back behind the runs (behind_runs)
REOPEN_SECONDS = 300.0  # a stack's config and store are read again this often (a changed stack.yaml is seen)
POOL_SECONDS = 60.0  # a worker asks which stacks its pool runs this often
Item, Outcome = TypeVar("Item"), TypeVar("Outcome")


@dataclass
class Announcer:
    """Rate-limits the archived events per stack."""

    said_at: dict[str, float] = field(default_factory=dict)

    def after(self, result: Round) -> None:
        shipped = any(database.pieces for database in result.shipped)
        last = self.said_at.get(result.stack)
        wait = NEW_WRITES_EVERY if shipped else IDLE_EVERY
        archiving = [database for database in result.shipped if not database.unbegun]
        if not archiving or (last is not None and time.monotonic() - last < wait):
            return
        newest = result.newest_event()
        emit_event(
            event=LOG_ARCHIVED,
            resource={"prefect.resource.id": stack_resource(result.stack), "prefect.resource.name": result.stack},
            payload={"newest_write": newest.isoformat(timespec="seconds") if newest else None},
        )
        self.said_at[result.stack] = time.monotonic()


@dataclass
class Opened:
    """A stack as a round needs it: its config, its project on its host, its store."""

    config: StackConfig
    project: ComposeProject
    store: Store
    at: float = field(default_factory=time.monotonic)
    kept: Kept = field(default_factory=Kept)  # its databases as the last round met them


@dataclass
class Hosts:
    """The hosts one round opened: each host once, whichever of the round's threads asks first (one engine
    connection and one check of Compose serve every stack on a host: a thousand stacks on one host are one open)."""

    opened: dict[str | None, Host] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, address: str | None) -> Host:
        with self.lock:
            if address not in self.opened:
                self.opened[address] = resolve.host(address)
            return self.opened[address]


def open_stack(repo: str, docker_host: str | None, hosts: Hosts | None = None) -> Opened:
    """The stack as a round needs it, on the host `hosts` keeps (opened now without them)."""
    config = load_customer_config(repo).config
    host = hosts.get(docker_host) if hosts else resolve.host(docker_host)
    return Opened(config, create_host.run(host, config.stack), resolve.backup_store(config))


def archive_once(repo: str, docker_host: str | None, opened: Opened | None = None) -> Round:
    """One round for the stack of a customer repo, on its host (as `opened` holds it, else opened now, and then the
    newest write archived is looked up when this round shipped none: an operator asked)."""
    held = opened or open_stack(repo, docker_host)
    backup = held.config.backup
    return ship_stack(held.project, held.store, backup, look_up=opened is None, kept=held.kept)


@dataclass
class Rounds:
    """What rounds keep between them: each stack opened (the repo cloned, the store's key read) once every
    REOPEN_SECONDS, not every round, and kept when reopening fails (archiving must not stop because the git server
    is away); what was last said of each, so a failure that lasts is said again only every IDLE_EVERY seconds."""

    opened: dict[tuple[str, str | None], Opened] = field(default_factory=dict)
    said: dict[str, tuple[str, float]] = field(default_factory=dict)
    hosts: Hosts = field(default_factory=Hosts)  # for one round: a host that went away is met afresh

    def ship(self, repo: str, host: str | None, say: Callable[[str], None]) -> Round | Exception:
        """The stack's round, or what failed it (one stack's failure, whatever it is, must not stop the others)."""
        try:
            return archive_once(repo, host, self.stack(repo, host, say))
        except Exception as error:  # noqa: BLE001 - said by the caller, once a while
            return error

    def stack(self, repo: str, host: str | None, say: Callable[[str], None]) -> Opened:
        known = self.opened.get((repo, host))
        if known is not None and time.monotonic() - known.at < REOPEN_SECONDS:
            return known
        try:
            self.opened[(repo, host)] = opened = open_stack(repo, host, self.hosts)
            if known is None:  # the first time: each stack's reopening falls at a moment of its own, not all at once
                opened.at -= random.uniform(0, REOPEN_SECONDS)
        except IncarnateError as error:
            if known is None:
                raise
            self.say_once(repo, f"archiving of {repo}: {error}; archiving goes on with the config read before", say)
            known.at = time.monotonic()
        return self.opened[(repo, host)]

    def say_once(self, repo: str, text: str, say: Callable[[str], None]) -> None:
        last = self.said.get(repo)
        if last is None or last[0] != text or time.monotonic() - last[1] > IDLE_EVERY:
            say(text)
            self.said[repo] = (text, time.monotonic())


def run_rounds(
    stacks: Callable[[], list[tuple[str, str | None]]],
    stop: threading.Event,
    say: Callable[[str], None] = print,
    quiet: bool = False,
) -> None:
    """Round after round over `stacks` (repo, host) until `stop` is set, INCARNATE_ARCHIVE_PARALLEL stacks at once;
    a failing stack is said and skipped (a failure that lasts, once every few minutes), and the others go on."""
    every, parallel, announcer, rounds = settings.archive_seconds(), settings.archive_parallel(), Announcer(), Rounds()
    first, slow_said_at = True, float("-inf")
    behind_runs()
    while not stop.is_set():
        began = time.monotonic()
        rounds.hosts = Hosts()
        listed = stacks()
        outcomes = each_at_once(lambda stack: rounds.ship(*stack, say), listed, parallel)
        for (repo, _), outcome in zip(listed, outcomes, strict=True):
            if isinstance(outcome, Exception):
                rounds.say_once(repo, f"archiving of {repo}: {outcome}", say)
                continue
            if not (quiet and not any(database.pieces for database in outcome.shipped)):
                say(outcome.describe())
            announcer.after(outcome)
        took = time.monotonic() - began
        # A slow round is said once every IDLE_EVERY seconds while it lasts, not every round.
        if first or (took > every and time.monotonic() - slow_said_at > IDLE_EVERY):
            say(round_took(len(listed), took, every, first))
            if took > every:
                slow_said_at = time.monotonic()
        first = False
        stop.wait(max(0.0, every - took))


def each_at_once(work: Callable[[Item], Outcome], items: list[Item], parallel: int) -> list[Outcome]:
    """`work` of every item, `parallel` at a time, the results in the items' order. Daemon threads, as the
    archiver's own: a process that ends does not wait for a stack whose host does not answer."""
    results: list[Outcome] = [None] * len(items)  # type: ignore[list-item] - each is set before it is read
    upcoming, lock = iter(range(len(items))), threading.Lock()

    def take_turns() -> None:
        while True:
            with lock:
                index = next(upcoming, None)
            if index is None:
                return
            results[index] = work(items[index])

    threads = [threading.Thread(target=take_turns, daemon=True) for _ in range(min(parallel, len(items)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def behind_runs() -> None:
    """This thread, the threads it starts and their processes (the rounds' `docker` commands) yield the CPU to the
    runs beside them (nice +10): a button's run that serve starts while a long round goes on starts as on a quiet
    machine, and the rounds take what is left. Linux sets a thread's own nice; elsewhere the rounds keep theirs."""
    with suppress(OSError, AttributeError):
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + ARCHIVER_NICE))


def round_took(stacks: int, took: float, every: float, first: bool) -> str:
    """What a round's length means for the recovery point: said after the first round (its stacks opened), and
    whenever a round outlasts the interval (writes then reach the store that much later)."""
    said = f"archiving: {'the first round' if first else 'a round'} over {stacks} stack(s) took {took:.1f} s"
    if took <= every:
        return said
    return (
        f"{said}, longer than the {every:g} s between rounds (INCARNATE_ARCHIVE_SECONDS): each stack's writes reach "
        f"its store up to {took:.0f} s late"
    )


def pool_stacks(pool: str) -> Callable[[], list[tuple[str, str | None]]]:
    """The stacks whose flows the workers of `pool` run (their nightly backups' repos), on the worker's own engine;
    asked of the Prefect server again every minute, the last answer kept while it does not answer."""
    known: dict[str, object] = {"at": -POOL_SECONDS, "stacks": []}

    def stacks() -> list[tuple[str, str | None]]:
        if time.monotonic() - known["at"] >= POOL_SECONDS:
            from prefect.client.orchestration import get_client
            from prefect.client.schemas.filters import (
                DeploymentFilter,
                DeploymentFilterTags,
                WorkPoolFilter,
                WorkPoolFilterName,
            )

            try:
                with get_client(sync_client=True) as client:
                    found = client.read_deployments(
                        work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])),
                        deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=["nightly"])),
                    )
                known["stacks"] = sorted({(repo, None) for made in found for repo in stacks_of(made).values()})
                known["at"] = time.monotonic()
            except Exception as error:  # noqa: BLE001 - the stacks known before go on being archived
                print(f"archiving: the stacks of pool {pool} could not be read from the Prefect server ({error})")
        return known["stacks"]

    return stacks


def in_background(stacks: Callable[[], list[tuple[str, str | None]]], what: str) -> threading.Event:
    """Archive these stacks in a daemon thread of this process (serve, worker); set the event to stop it. A wrong
    setting is refused here, by the caller, not by the thread."""
    every, parallel = settings.archive_seconds(), settings.archive_parallel()
    stop = threading.Event()
    thread = threading.Thread(target=run_rounds, args=(stacks, stop), kwargs={"quiet": True}, name="archiver")
    thread.daemon = True
    thread.start()
    print(f"archiving the database logs of {what} every {every:g} s, {parallel} stacks at once")
    return stop
