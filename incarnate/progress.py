"""Progress of long transfers (a dump, an upload, a restore): bytes done, rate, what it is doing.

Domain code measures (`track`); whoever runs it decides where readings go (`reporting`): the CLI to the
terminal, a Prefect task to a progress artifact in the UI. A meter takes the sinks in force where it is created,
so readings reach them from any thread. Work shorter than a few seconds shows nothing.
"""

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol, TextIO

from incarnate import settings

EVERY_SECONDS = 1.0  # at most one reading a second reaches the sinks


def human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


@dataclass(frozen=True)
class Reading:
    what: str  # e.g. "backup of database-demo"
    done: int  # bytes
    total: int | None  # bytes expected, None when unknown
    estimated: bool  # the total is a guess (the previous backup's size)
    seconds: float
    finished: bool = False

    @property
    def expected(self) -> int | None:
        """The total, unless it was a guess the work has outgrown (the last backup was much smaller)."""
        if not self.total or (self.estimated and self.done > self.total):
            return None
        return self.total

    def percent(self) -> float | None:
        if self.finished:
            return 100.0
        if self.expected is None:
            return None
        return min(99.0 if self.estimated else 100.0, 100.0 * self.done / self.expected)

    def describe(self) -> str:
        rate = self.done / self.seconds if self.seconds > 0 else 0.0
        of = f" of {'~' if self.estimated else ''}{human(self.expected)}" if self.expected and not self.finished else ""
        share = f" ({self.percent():.0f} %)" if self.percent() is not None and not self.finished else ""
        state = "done" if self.finished else "at"
        return f"{self.what}: {human(self.done)}{of}{share} {state} {human(rate)}/s, {self.seconds:.0f} s"


class Sink(Protocol):
    def show(self, reading: Reading) -> None: ...


_sinks: ContextVar[tuple[Sink, ...]] = ContextVar("incarnate_progress_sinks", default=())


@contextmanager
def reporting(sink: Sink) -> Iterator[None]:
    """Meters created inside this block report to `sink` too."""
    token = _sinks.set((*_sinks.get(), sink))
    try:
        yield
    finally:
        _sinks.reset(token)


class Meter:
    def __init__(
        self,
        what: str,
        total: int | None,
        estimated: bool,
        sinks: tuple[Sink, ...],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what, self.total, self.estimated, self.sinks, self.clock = what, total, estimated, sinks, clock
        self.done, self.started, self._last, self._shown = 0, clock(), 0.0, False
        self.quiet = settings.progress_after()

    def reading(self, finished: bool = False) -> Reading:
        return Reading(self.what, self.done, self.total, self.estimated, self.clock() - self.started, finished)

    def advance(self, size: int) -> None:
        self.done += size
        if not self.sinks:
            return
        now = self.clock()
        if now - self.started >= self.quiet and now - self._last >= EVERY_SECONDS:
            self._last, self._shown = now, True
            self._show(self.reading())

    def finish(self) -> None:
        if self._shown:  # only work that showed progress says it is done
            self._show(self.reading(finished=True))

    def _show(self, reading: Reading) -> None:
        for sink in self.sinks:
            try:
                sink.show(reading)
            except Exception:  # noqa: BLE001 - a progress display must never fail the work it watches
                pass


@contextmanager
def track(what: str, total: int | None = None, estimated: bool = False) -> Iterator[Meter]:
    meter = Meter(what, total, estimated, _sinks.get())
    try:
        yield meter
    finally:
        meter.finish()


class TerminalSink:
    """One line that rewrites itself on a terminal; a line every `every` seconds into a log file or a pipe."""

    def __init__(self, stream: TextIO = sys.stderr, every: float = 15.0) -> None:
        self.stream, self.every = stream, every
        self.interactive = stream.isatty()
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def show(self, reading: Reading) -> None:
        with self._lock:
            if self.interactive:
                self.stream.write(f"\r\x1b[K{reading.describe()}" + ("\n" if reading.finished else ""))
            elif reading.finished or reading.seconds - self._last.get(reading.what, -self.every) >= self.every:
                self._last[reading.what] = reading.seconds
                self.stream.write(f"{reading.describe()}\n")
            self.stream.flush()
