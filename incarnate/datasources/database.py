"""What every database engine shares: the database, the Compose service that runs it, its container."""

import json
import re
import shlex
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import cached_property, partial
from typing import BinaryIO, ClassVar

from incarnate import settings
from incarnate.backup_format import Artifact, artifact_name
from incarnate.compose import ComposeProject
from incarnate.datasources import volume
from incarnate.datasources.engine_api import exec_out
from incarnate.errors import HostError, IntegrityError, StageError
from incarnate.host import Host

# mariadb-dump and pg_dump write to a pipe in 4 kB pieces, and each crosses the container's shim, the engine and the
# docker CLI as a message of its own: 1 GB cost 27 CPU-s of the machine in 16 s. Handed on by dd in 1 MB writes,
# 18 CPU-s in 12 s (README, bench/recovery_speed.py). A POSIX sh has no pipefail: the dump's own exit status is
# carried out through fd 4 and becomes the wrapper's.
IN_LARGE_WRITES = (
    'exec 3>&1; status=$( { { "$@"; echo $? >&4; } | dd ibs=64k obs=1M 2>/dev/null >&3; } 4>&1 ); exit "${status:-1}"'
)


def in_large_writes(command: tuple[str, ...]) -> list[str]:
    """`command`, its stdout handed on in 1 MB writes, its exit status kept (needs sh and dd where it runs)."""
    return ["sh", "-c", IN_LARGE_WRITES, "sh", *command]


def end_processes(pids: list[int]) -> str:
    """A root shell script that asks the processes to end, and ends those that did not within 2 s."""
    ids = " ".join(shlex.quote(str(pid)) for pid in pids)  # numbers already; quoted all the same
    return f"kill -TERM {ids} 2>/dev/null; sleep 2; kill -KILL {ids} 2>/dev/null; true"  # ids: quoted above


class NoDataVolume(StageError):
    """The server's data directory is not a volume's root: a physical base could not be restored into it."""


class Database(ABC):
    """A database inside a running service's container; an engine module subclasses it with its own commands."""

    kind: ClassVar[str] = "database"
    replays_at_start: ClassVar[bool] = False  # its server replays archived log itself as it starts (PostgreSQL)
    engine: ClassVar[str]
    program: ClassVar[str]  # the dump command, as it shows in the container's process list
    exec_user: ClassVar[str | None] = None  # who the engine's tools run as in the container (the image's default)
    physical_program: ClassVar[str | None] = None  # what takes a physical base; None: incarnate takes none
    auto_dumps: ClassVar[str | None] = None  # why `auto` dumps it when it does (None: auto always dumps it, silently)
    _replaced = False  # a physical base was (maybe in part) put into its files: a reset removes them

    def __init__(self, project: ComposeProject, name: str, service: str, base: str = "logical") -> None:
        self.project, self.target, self.service, self.base = project, name, service, base

    @cached_property
    def physical(self) -> bool:
        """Whether its backups are physical bases: when the stack asks for them (refused at once where no restore
        could put one back), and with `auto` where the engine's own rule says so."""
        if self.physical_program is None or self.base == "logical":
            return False
        if self.base == "physical":
            return bool(self.data_volume)
        return self.physical_by_default()

    def physical_by_default(self) -> bool:
        """Whether `backup.base: auto` takes physical bases of it."""
        return False

    def dumped_instead(self) -> str | None:
        """Why backup.base did not take a physical base of it, where that is worth saying."""
        if self.base == "logical" or self.physical:
            return None
        if self.physical_program is None:
            return f"no physical base of {self.engine} in incarnate" if self.base == "physical" else None
        return self.auto_dumps

    @property
    @abstractmethod
    def data_directory(self) -> str:
        """Where the server keeps its files, in its container."""

    @property
    def engine_version(self) -> str | None:
        """The version a physical base of it starts only on (engines with physical bases say)."""
        return None

    @abstractmethod
    def other_databases(self) -> list[str]:
        """The server's databases beside the target, but for its system ones (a physical base replaces them all)."""

    @cached_property
    def data_volume(self) -> str:
        """The volume that holds the server's data directory, as its root (a physical base replaces what it holds)."""
        directory = self.data_directory
        mounts = json.loads(
            self.host.run(
                ["docker", "inspect", "--format", "{{json .Mounts}}", self.container],
                what=f"listing the volumes of service {self.service}",
            )
        )
        for mount in mounts or []:
            if mount.get("Destination") == directory and mount.get("Type") == "volume":
                return mount["Name"]
        raise NoDataVolume(
            f"stack {self.project.name}: the data directory {directory} of service {self.service} is not the root of "
            f"a volume of its own, the only place a physical base of database {self.target} is restored into; "
            f"nothing was changed. Mount a volume there, or set backup.base: logical (auto does so by itself)."
        )

    @property
    def artifact(self) -> str:
        return artifact_name(self.kind, self.target)

    @property
    def host(self) -> Host:
        return self.project.host

    @cached_property
    def container(self) -> str:
        """Looked up once: every operation of one stage talks to the same running container."""
        return self.project.container(self.service)

    def _exec(self, *command: str, interactive: bool = False) -> list[str]:
        """`command` run in the database's container, as the engine's tools expect to be run."""
        return [
            "docker",
            "exec",
            *(["-i"] if interactive else []),
            *(["--user", self.exec_user] if self.exec_user else []),
            self.container,
            *command,
        ]

    @cached_property
    def _has_sh_and_dd(self) -> bool:
        """Whether the container has what in_large_writes needs: a vendor's database image may lack them, and then
        the dump goes in its own small writes."""
        try:
            with exec_out(
                self.host,
                self.container,
                ["sh", "-c", "command -v dd"],
                user=self.exec_user,
                what=f"looking for dd in service {self.service}",
            ) as found:
                found.read()
        except HostError:
            return False
        return True

    def dump(self) -> AbstractContextManager[BinaryIO]:
        """A consistent dump, streamed: read from the engine's exec API (as `docker exec` runs it, without the CLI)."""
        command = self.dump_command()
        return exec_out(
            self.host,
            self.container,
            in_large_writes(command) if self._has_sh_and_dd else list(command),
            user=self.exec_user,
            what=f"dumping database {self.target}",
        )

    @property
    def _orphan_mark(self) -> str:
        """The argument that tells this database's backup among the container's processes."""
        return self.target

    def end_orphans(self) -> int:
        """End this database's dumps still running in its container (their run was killed, or gave up on them):
        they hold a transaction and would stream to nobody. How many were ended."""
        listing = self.host.run(
            ["docker", "top", self.container, "-eo", "pid,args"], what=f"listing processes of {self.service}"
        )
        pids = [
            int(fields[0])
            for fields in map(str.split, listing.splitlines()[1:])
            if len(fields) > 1
            and fields[0].isdigit()
            and fields[1].rsplit("/", 1)[-1] == self.program
            and self._orphan_mark in fields[2:]
        ]
        if pids:
            shell, what = self.host.shell(), f"ending orphaned {self.program} of database {self.target}"
            shell.execute(shell.as_root(end_processes(pids)), what=what)
        return len(pids)

    def wait_until_serving(self, seconds: float) -> None:
        """Return once the engine answers a real query on the target database as the server that stays: an image's
        health check may pass while its entrypoint's initialisation server runs (the official PostgreSQL and MariaDB
        images do that), which stops again under a restore ("the database system is shutting down"). Asked with
        growing pauses for at most `seconds`; StageError naming the last answer after that."""
        deadline, pause = time.monotonic() + seconds, 0.2
        while True:
            try:
                reason = self.not_serving()
            except HostError as error:
                reason = str(error)
            if reason is None:
                return
            if time.monotonic() + pause > deadline:
                raise StageError(
                    f"database {self.target} of service {self.service} in stack {self.project.name} did not answer as "
                    f"a running server within {seconds:.0f} s (INCARNATE_READY_SECONDS): {reason.rstrip('.')}; "
                    f"nothing was loaded."
                )
            time.sleep(pause)
            pause = min(pause * 2, 2.0)

    def load_base(self, artifact: Artifact, source: BinaryIO) -> None:
        """Load a physical base (the server's files) this engine took: refused before anything is stopped when the
        server's version differs or it holds other databases; else the container is stopped, its data volume
        emptied, the base put there (`_put_base`) and the container started on it. A failure leaves the volume to
        `reset`, which empties it again."""
        if self.physical_program is None or artifact.engine != self.engine:
            raise IntegrityError(
                f"artifact {artifact.name} is a physical base of {artifact.engine}, which incarnate cannot load into "
                f"database {self.target} ({self.engine}); nothing was loaded."
            )
        if artifact.engine_version != self.engine_version:
            raise IntegrityError(
                f"artifact {artifact.name} is a physical base of {self.engine} {artifact.engine_version}, and service "
                f"{self.service} runs {self.engine} {self.engine_version}, which cannot start on those files; nothing "
                f"was loaded. Restore a logical backup across versions (backup.base: logical)."
            )
        if others := self.other_databases():
            raise IntegrityError(
                f"service {self.service} holds database(s) {', '.join(others)} beside {self.target}, and a physical "
                f"base replaces the whole server; nothing was loaded. Declare them in the release, or back the stack "
                f"up with backup.base: logical."
            )
        self.data_volume  # noqa: B018 - refused (NoDataVolume) before the server is stopped
        self._replaced = True
        self._restart(partial(self._put_base, source))

    @abstractmethod
    def _put_base(self, source: BinaryIO) -> None:
        """The base's files put into the emptied data volume while the server is stopped."""

    def _restart(self, while_stopped: Callable[[], None], keep: bool = False) -> None:
        """The container stopped, its data volume emptied (unless `keep`), `while_stopped` done to it, the container
        started and (unless `keep`: a recovery may end in a stop) serving."""
        host, what = self.host, f"service {self.service} of stack {self.project.name}"
        host.run(["docker", "stop", self.container], what=f"stopping {what}")
        if not keep:
            volume.reset(host, self.data_volume)
        while_stopped()
        host.run(["docker", "start", self.container], what=f"starting {what}")
        if not keep:
            self.wait_until_serving(settings.ready_seconds())

    def _reset_replaced(self) -> bool:
        """After a physical base was put (maybe in part) into the server's files, they are removed and the container
        started again: its image initialises them anew. Whether it was so."""
        if self._replaced:
            self._restart(lambda: None)
        return self._replaced

    def _read_bytes(self, path: str, offset: int, limit: int, what: str) -> bytes:
        """At most `limit` bytes of a file in the container from `offset` (its log: dd as the engine's user)."""
        command = ["dd", f"if={path}", "iflag=skip_bytes,count_bytes", f"skip={int(offset)}", f"count={int(limit)}"]
        with exec_out(
            self.host, self.container, [*command, "bs=1M", "status=none"], user=self.exec_user, what=what
        ) as out:
            return out.read()

    def archiving(self) -> str | None:
        """Why the engine's log cannot be archived and replayed onto a dump; None when it can."""
        return f"incarnate does not archive the log of {self.engine} yet"

    def log_files(self) -> list | None:
        """The log files the server keeps (incarnate.log_archive.LogSource); None: archiving is not possible."""
        return None

    @abstractmethod
    def not_serving(self) -> str | None:
        """Why the engine is not yet the server that stays (an initialisation server, no target database), None
        when it is; a failed query raises HostError."""

    @abstractmethod
    def is_empty(self) -> bool:
        """No tables (the database itself may exist, created by the container's init)."""

    @abstractmethod
    def dump_command(self) -> tuple[str, ...]:
        """The command, run in the container, that writes a consistent dump to stdout (`program` is its first word)."""

    @abstractmethod
    def load(self, source: BinaryIO) -> None:
        """Load a dump this engine made."""

    @abstractmethod
    def reset(self) -> None:
        """Back to empty after a failed load."""

    @abstractmethod
    def row_counts(self) -> dict[str, int]:
        """Exact rows per table: what a restore drill compares."""

    @abstractmethod
    def row_counter(self) -> "RowCounter":
        """Counts the rows of each table in this engine's dump as it streams past (recorded in the manifest); reads
        what a physical base says of itself as it streams past."""


class RowCounter(ABC):
    """Reads a dump as it streams past, whatever the pieces it comes in, a block of whole lines at a time: a dump
    holds millions of rows, so the rows themselves are counted with bytes.count and find, never a line at a time
    in Python (that cost seconds of the GIL per gigabyte, on the path of the slowest stream of a backup)."""

    statement: ClassVar[re.Pattern[bytes]]  # a table's definition (it has rows, maybe none) or the start of its rows
    base: ClassVar[str] = "logical"
    engine_version: ClassVar[str | None] = None

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}
        self.log_start: tuple[str, int] | None = None  # where the database's log stood, when the dump says so
        self.table: str | None = None  # whose rows the lines being read are
        self._partial = b""

    def feed(self, data: bytes) -> None:
        """Whole lines are counted where they lie in `data` (a megabyte a piece): only the line cut between two
        pieces is copied."""
        last = data.rfind(b"\n") + 1
        if not last:
            self._partial += data
            return
        start = 0
        if self._partial:
            start = data.find(b"\n") + 1
            head = self._partial + data[:start]
            self.block(head, 0, len(head))
        if start < last:
            self.block(data, start, last)
        self._partial = data[last:]

    def result(self) -> dict[str, int]:
        if self._partial:
            tail, self._partial = self._partial + b"\n", b""
            self.block(tail, 0, len(tail))
        return dict(sorted(self.rows.items()))

    def block(self, text: bytes, start: int, stop: int) -> None:
        """Count what the whole lines of text[start:stop] hold (the last ends with a newline at stop)."""
        position = start
        while position < stop:
            if self.table is not None:
                position = self.count(text, position, stop)
                continue
            statement = self.statement.search(text, position, stop)
            if statement is None:
                return
            position = self.begin(statement, text, stop)

    @abstractmethod
    def begin(self, statement: re.Match[bytes], text: bytes, stop: int) -> int:
        """Note the table `statement` names (and set `table` when its rows follow); where reading goes on."""

    @abstractmethod
    def count(self, text: bytes, position: int, stop: int) -> int:
        """Add the rows of `table` from `position` on, up to their end (then `table` is None) or `stop`; where
        reading goes on."""
