"""PostgreSQL: pg_dump (a consistent snapshot by itself) and psql, run inside the database container
as the postgres superuser over the local socket."""

import re
import shlex
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import BinaryIO

from incarnate import settings, wal
from incarnate.datasources import volume
from incarnate.datasources.database import Database, NoDataVolume, RowCounter
from incarnate.datasources.engine_api import engine_refusals
from incarnate.errors import HostError, IntegrityError, StageError
from incarnate.host import copy_from
from incarnate.log_archive import LogFile

USER_TABLES = "FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"


# A statement whose rows are counted: a table's definition, or the start of its rows.
STATEMENT = re.compile(rb"^(?:CREATE TABLE (?P<table>\S+) \($|COPY (?P<copy>\S+) \(.*\) FROM stdin;\n)", re.MULTILINE)
END_OF_COPY = b"\\.\n"  # the line that ends a COPY block: a backslash in a value is escaped, so no row is this line


class DumpRows(RowCounter):
    """pg_dump writes each table's rows as the lines between `COPY table (...) FROM stdin;` and `\\.`, one a row
    (newlines inside values are escaped); the table is named as quote_ident names it, schema first."""

    statement = STATEMENT

    def begin(self, statement: re.Match[bytes], text: bytes, stop: int) -> int:
        self.rows.setdefault((statement["table"] or statement["copy"]).decode(), 0)
        self.table = statement["copy"] and statement["copy"].decode()
        return statement.end()

    def count(self, text: bytes, position: int, stop: int) -> int:
        if text.startswith(END_OF_COPY, position, stop):
            end = position
        else:
            found = text.find(b"\n" + END_OF_COPY, position, stop)
            end = stop if found < 0 else found + 1
        self.rows[self.table] += text.count(b"\n", position, end)
        if end == stop:
            return stop
        self.table = None
        return end + len(END_OF_COPY)


# backup_label, the first file of pg_basebackup's tar: where the base's WAL begins (the replay of archived WAL too).
START = re.compile(rb"START WAL LOCATION: ([0-9A-F]+)/([0-9A-F]+) \(file ([0-9A-F]{24})\)")
LABEL_WITHIN = 1 << 20  # backup_label comes first: a stream without it in its first megabyte is no physical base


class BaseLabel:
    """Reads what a physical base says of itself as it streams past: where its WAL begins (its backup_label)."""

    base = "physical"

    def __init__(self, engine_version: str) -> None:
        self.engine_version = engine_version
        self.log_start: tuple[str, int] | None = None
        self._head = b""

    def feed(self, data: bytes) -> None:
        if self.log_start is not None or len(self._head) > LABEL_WITHIN:
            return
        self._head += data[:LABEL_WITHIN]
        if found := START.search(self._head):
            self.log_start = (found[3].decode(), int(found[2], 16) % wal.SEGMENT)

    def result(self) -> None:
        if self.log_start is None:
            raise IntegrityError("the physical base has no backup_label where pg_basebackup writes it; not committed.")
        return None


SLOT = "incarnate"  # the physical replication slot that keeps the server's WAL until incarnate archived it
STAGING = "incarnate-wal"  # in the data directory: the archived WAL a recovery replays (removed once it ran)
RECOVERY_KEYS = (
    "restore_command",
    "recovery_target",
    "recovery_target_time",
    "recovery_target_inclusive",
    "recovery_target_timeline",
    "recovery_target_action",
)


def _conf_value(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Promoted:
    """Where a recovery left the server: it began timeline `first`'s file there, after replaying up to `switch`."""

    switch: tuple[str, int]  # the last position of the timeline it left (WAL file, byte)
    first: str  # the new timeline's first WAL file
    reached: int | None  # the time of the last transaction it replayed, seconds since the epoch


class PostgreSQL(Database):
    engine = "postgresql"
    physical_program = "pg_basebackup"
    exec_user = "postgres"
    replays_at_start = True
    auto_dumps = "its data directory is not a volume's root"
    # the commit times of the last range pg_waldump read (a round asks twice for the piece it ships)
    _event_times: dict[tuple[str, int, int], tuple[int | None, int | None]] = {}  # noqa: RUF012 - replaced whole

    def physical_by_default(self) -> bool:
        """Where its files can be restored (the data directory is a volume's root): its WAL replays onto nothing
        else, so `auto` archives it out of the box."""
        try:
            return bool(self.data_volume)
        except NoDataVolume:
            return False

    @property
    def program(self) -> str:  # noqa: D102 - as the process list shows the backup's command
        return self.physical_program if self.physical else "pg_dump"

    def _psql(self, *args: str) -> list[str]:
        return [
            "psql",
            "--username=postgres",
            f"--dbname={self.target}",
            "--no-psqlrc",
            "--set=ON_ERROR_STOP=1",
            "--quiet",
            *args,
        ]

    def _query(self, query: str, what: str) -> str:
        return self.host.run(
            self._exec(*self._psql("--tuples-only", "--no-align", "--field-separator=\t", "--command", query)),
            what=what,
        )

    def not_serving(self) -> str | None:
        # An initialisation server listens on no TCP address (the official image's, this project's pgdemo's).
        listening = self._query("SELECT current_setting('listen_addresses')", f"asking database {self.target}")
        return None if listening.strip() else "it listens on no TCP address yet (the image's initialisation server)"

    def is_empty(self) -> bool:
        """Empty means: no tables in any schema of the database but the system ones."""
        count = self._query(f"SELECT count(*) {USER_TABLES}", f"counting tables of database {self.target}")
        return int(count.strip() or 0) == 0

    def dump_command(self) -> tuple[str, ...]:
        if self.physical:  # the whole server's files as one tar, with the WAL that makes them consistent
            return (
                self.program,
                "--username=postgres",
                "--pgdata=-",
                "--format=tar",
                "--wal-method=fetch",
                "--checkpoint=fast",
                "--no-manifest",
                "--no-password",
                "--label",
                self.target,  # end_orphans finds a base of this database by its name among the arguments
            )
        return (self.program, "--username=postgres", self.target)

    @cached_property
    def engine_version(self) -> str:
        """Its major version: a physical base starts only on the same one."""
        number = self._query("SHOW server_version_num", f"asking database {self.target} its version").strip()
        return str(int(number) // 10000)

    @cached_property
    def data_directory(self) -> str:
        return self._query("SHOW data_directory", f"asking database {self.target} its data directory").strip()

    def other_databases(self) -> list[str]:
        listed = self._query(
            "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres' ORDER BY 1",
            f"listing the databases of service {self.service}",
        ).split()
        return [name for name in listed if name != self.target]

    def _put_base(self, source: BinaryIO) -> None:
        """The base's tar extracted into the emptied data volume; the server starts on it in archive recovery and
        waits, read-only, where the base is consistent (the replay of archived logs then says how far it goes: a
        server that ran on as a primary would have left the archive's history)."""
        volume.extract(self.host, self.data_volume, source)
        paused = {"recovery_target": "immediate", "recovery_target_action": "pause"}
        settings_file = self._recovery_settings(self.data_directory, paused)
        volume.put_files(self.host, self.data_volume, [("recovery.signal", b""), *settings_file])

    def _recovery_settings(self, directory: str, chosen: dict[str, str]) -> list[tuple[str, bytes]]:
        """postgresql.auto.conf as it is, but for any recovery setting, with `chosen` ones (restore_command always:
        archive recovery needs one, which reads what a replay staged)."""
        current = volume.read_file(self.host, self.data_volume, "postgresql.auto.conf")
        kept = [line for line in current.splitlines() if line.split("=", 1)[0].strip() not in RECOVERY_KEYS]
        staged = shlex.quote(f"{directory}/{STAGING}")
        chosen = {"restore_command": f"cp {staged}/%f %p", **chosen}
        lines = [*kept, *(f"{key} = {_conf_value(value)}" for key, value in chosen.items())]
        return [("postgresql.auto.conf", "\n".join(lines).encode() + b"\n")]

    def recover(
        self,
        history: int,
        staged: Iterable[tuple[str, bytes]],
        timeline_histories: dict[int, bytes],
        target_timeline: int | None,
        until: datetime | None,
    ) -> Promoted:
        """Restart the server in archive recovery on the staged WAL files: along `target_timeline` (its history
        file among `timeline_histories`; None: its own), to the last transaction before `until` or the end of what
        is staged and its own pg_wal holds, then promoted to the timeline of `history`, which
        no other server of the stack ever had. Its recovery settings and the staged files are removed again."""
        directory, new_timeline = self.data_directory, wal.timeline_of(history)
        current = self._timeline()
        chosen = {"recovery_target_action": "promote", "recovery_target_timeline": str(target_timeline or current)}
        if until is not None:
            chosen |= {"recovery_target_time": until.isoformat(), "recovery_target_inclusive": "false"}
        # The server takes the next timeline whose history file it cannot find: the ones below the chosen are there.
        skipped = {
            timeline: b"incarnate: a timeline of another history\n"
            for timeline in range((target_timeline or current) + 1, new_timeline)
        }
        files = {**skipped, **timeline_histories}

        def staging() -> Iterator[tuple[str, bytes]]:
            yield "recovery.signal", b""
            yield from self._recovery_settings(directory, chosen)
            for timeline, content in files.items():
                yield f"{STAGING}/{timeline:08X}.history", content
            for name, data in staged:
                yield f"{STAGING}/{name}", data + bytes(wal.SEGMENT - len(data))  # a partial file ends in zeros

        self._replaced = True
        restarts = self._container_state()[1]
        self._restart(lambda: volume.put_files(self.host, self.data_volume, staging()), keep=True)
        self._wait_until_promoted(restarts)
        promoted = self._promoted()
        if promoted.first[:8] != f"{new_timeline:08X}":
            raise IntegrityError(
                f"database {self.target}: the server took timeline {promoted.first[:8]} instead of {new_timeline:08X} "
                f"after its recovery; nothing was kept."
            )
        statements = [*(f"ALTER SYSTEM RESET {key}" for key in RECOVERY_KEYS), "SELECT pg_reload_conf()"]
        self.host.run(  # each a --command of its own: ALTER SYSTEM cannot run in a transaction block
            self._exec(*self._psql(*(part for statement in statements for part in ("--command", statement)))),
            what=f"removing the recovery settings of {self.target}",
        )
        self.host.run(
            self._exec("rm", "-rf", "--", f"{directory}/{STAGING}"), what=f"removing the WAL staged for {self.target}"
        )
        return promoted

    def _timeline(self) -> int:
        found = self._query("SELECT timeline_id FROM pg_control_checkpoint()", f"asking {self.target} its timeline")
        return int(found.strip())

    def _container_state(self) -> tuple[bool, int]:
        found = self.host.run(
            ["docker", "inspect", "--format", "{{.State.Running}} {{.RestartCount}}", self.container],
            what=f"watching service {self.service}",
        ).split()
        return found[0] == "true", int(found[1])

    def _last_fatal(self) -> str:
        """The server's last FATAL line (or its last line), from the container's log."""
        client = self.host.client()
        try:
            with engine_refusals(f"reading the log of service {self.service}"):
                logged = client.api.logs(self.container, tail=40).decode(errors="replace").splitlines()
        finally:
            client.close()
        fatal = [line for line in logged if "FATAL:" in line]
        return (fatal or logged or ["nothing"])[-1].strip()

    def _wait_until_promoted(self, restarts: int) -> None:
        """Until the server runs as a primary again; a server that stopped or was restarted (its recovery failed)
        is named with the last error it logged."""
        deadline, what = time.monotonic() + settings.ready_seconds(), f"recovery of database {self.target}"
        while True:
            running, restarted = self._container_state()
            if not running or restarted > restarts:
                raise IntegrityError(
                    f"the {what} stopped the server, which said: {self._last_fatal()}; the database was emptied again."
                )
            try:
                if self._query("SELECT pg_is_in_recovery()", f"watching the {what}").strip() == "f":
                    return
            except HostError:
                pass  # still starting up
            if time.monotonic() > deadline:
                raise StageError(
                    f"the {what} did not end within {settings.ready_seconds():.0f} s (INCARNATE_READY_SECONDS); the "
                    f"database was emptied again."
                )
            time.sleep(0.5)

    def _promoted(self) -> Promoted:
        found = self._query(
            "SELECT pg_walfile_name(pg_current_wal_lsn()), extract(epoch FROM pg_last_xact_replay_timestamp())",
            f"asking {self.target} where its recovery ended",
        )
        current, _, reached = found.strip().partition("\t")
        timeline = wal.timeline(current)
        history = self._query(
            f"SELECT pg_read_file('pg_wal/{timeline:08X}.history')", f"reading the timeline history of {self.target}"
        )
        parent, switch = wal.parse_history(history)[-1]
        return Promoted(
            wal.position(parent, switch),
            wal.name_of(timeline, switch // wal.SEGMENT),
            int(float(reached)) if reached.strip() else None,
        )

    @cached_property
    def _wal_settings(self) -> tuple[str, int]:
        found = self._query(
            "SELECT current_setting('wal_level'), current_setting('wal_segment_size')",
            f"asking database {self.target} how it writes its WAL",
        ).split("\t")
        size = found[1].strip()
        return found[0].strip(), int(size[:-2]) << 20 if size.endswith("MB") else int(size)

    def archiving(self) -> str | None:
        if not self.physical:
            reason = "its data directory is not a volume's root, so it is dumped" if self.base == "auto" else ""
            return f"PostgreSQL's WAL replays only onto a physical base ({reason or 'backup.base: logical'})"
        level, size = self._wal_settings
        if level == "minimal":
            return "the server's wal_level is minimal (replica, the default, keeps what a recovery needs)"
        if size != wal.SEGMENT:
            return f"the server's WAL files are {size:,} bytes; incarnate archives 16 MiB ones (initdb's default)"
        return None

    def log_files(self) -> list[LogFile] | None:
        """The WAL files of the server's timeline up to where it is flushed; while it recovers, none. The first
        round of a history creates the slot that keeps them until they are archived."""
        if self.archiving() is not None:
            return None
        found = self._query(
            "SELECT pg_is_in_recovery(), (SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'incarnate'), "
            "CASE WHEN NOT pg_is_in_recovery() THEN pg_walfile_name(pg_current_wal_flush_lsn()) END, "
            "CASE WHEN NOT pg_is_in_recovery() THEN pg_current_wal_flush_lsn() END, "
            "(SELECT string_agg(name, ' ' ORDER BY name) FROM pg_ls_waldir())",
            f"listing the WAL of {self.target}",
        ).split("\t")
        if found[0].strip() == "t":
            return []
        # At a file's boundary pg_walfile_name names the file before: only its timeline is taken from it.
        slot, names = int(found[1]), found[4].split()
        current, flushed = wal.position(wal.timeline(found[2]), wal.parse_lsn(found[3]))
        if not slot and wal.history(current) > 0:
            self._query(f"SELECT pg_create_physical_replication_slot('{SLOT}', true)", f"keeping WAL of {self.target}")
        older = [name for name in names if wal.is_wal(name) and name[:8] == current[:8] and name < current]
        return [*(LogFile(name, wal.SEGMENT) for name in older), LogFile(current, flushed)]

    def _wal_path(self, name: str) -> str:
        if not wal.is_wal(name):
            raise IntegrityError(f"database {self.target}: {name!r} is not a WAL file name.")
        return f"{self.data_directory}/pg_wal/{name}"

    def read_log(self, name: str, offset: int, limit: int) -> bytes:
        return self._read_bytes(self._wal_path(name), offset, limit, f"reading WAL file {name} of {self.target}")

    @cached_property
    def _waldump(self) -> str:
        """pg_waldump beside the running server's program (not on PATH in Debian's packages)."""
        pid = self._query(  # a process of the server that lives as long as it does
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'", f"asking {self.target}"
        ).strip()
        program = self.host.run(self._exec("readlink", f"/proc/{int(pid)}/exe"), what=f"locating {self.target}")
        return f"{program.strip().rsplit('/', 1)[0]}/pg_waldump"

    def whole_events(self, name: str, data: bytes, offset: int) -> tuple[int, int | None, int | None]:
        """Any bytes of a WAL file can be shipped (a replay reads them whole again); the times of the first and last
        transaction that ended in them, as pg_waldump reads them from the server's file (once a range: a round asks
        again for the piece it ships)."""
        key = (name, offset, len(data))
        if key not in self._event_times:
            self._event_times = {key: self._commit_times(name, offset, len(data))}
        return len(data), *self._event_times[key]

    def _commit_times(self, name: str, offset: int, length: int) -> tuple[int | None, int | None]:
        start = wal.lsn(name, offset)
        command = [
            self._waldump,
            f"--path={self.data_directory}/pg_wal",
            f"--timeline={wal.timeline(name)}",
            f"--start={wal.lsn_text(start)}",
            f"--end={wal.lsn_text(start + length)}",
            "--rmgr=Transaction",
        ]
        # The first and the last line: a file may end many thousand transactions; a record that runs past the end
        # makes pg_waldump fail after it printed what it read.
        script = 'TZ=UTC "$@" 2>/dev/null | sed -n "1p;\\$p"; exit 0'
        output = self.host.run(self._exec("sh", "-c", script, "sh", *command), what=f"reading WAL file {name}")
        return wal.commit_times(output)

    def cut_before(self, data: bytes, offset: int, second: int) -> tuple[int, int | None]:
        raise IntegrityError("PostgreSQL's WAL is cut by the server itself (recovery_target_time).")

    def purge_logs_before(self, name: str) -> None:
        self._wal_path(name)  # a checked name
        at = wal.lsn_text(wal.lsn(name, 0))
        self._query(f"SELECT pg_replication_slot_advance('{SLOT}', '{at}')", f"releasing archived WAL of {self.target}")

    def rotate_log(self) -> None:
        self._query("SELECT pg_switch_wal()", f"closing the WAL file of {self.target}")

    def begin_history(self, history: int) -> None:
        """A server loaded from a dump begins a timeline of its own: recovered where it stands, then promoted."""
        self.recover(history, [], {}, None, None)

    def load(self, source: BinaryIO) -> None:
        self.host.stream_in(
            self._exec(*self._psql(), interactive=True), copy_from(source), what=f"loading a dump into {self.target}"
        )

    def reset(self) -> None:
        """Drop every schema that is_empty looks at (not only public), then give the database its empty public. After
        a physical base was loaded (maybe in part), the server's files are removed: its image initialises it anew."""
        if self._reset_replaced():
            return
        statements = (
            "DO $$ DECLARE name text; BEGIN FOR name IN SELECT nspname FROM pg_namespace WHERE nspname NOT IN "
            "('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE "
            "'pg\\_temp\\_%' "
            "LOOP EXECUTE format('DROP SCHEMA %I CASCADE', name); END LOOP; END $$; "
            "CREATE SCHEMA public AUTHORIZATION pg_database_owner; GRANT USAGE ON SCHEMA public TO PUBLIC;"
        )
        self.host.run(self._exec(*self._psql("--command", statements)), what=f"emptying database {self.target}")

    def row_counter(self) -> RowCounter | BaseLabel:
        return BaseLabel(self.engine_version) if self.physical else DumpRows()

    def row_counts(self) -> dict[str, int]:
        """Exact row count of every table outside the system schemas."""
        listing = self._query(
            f"SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) {USER_TABLES} ORDER BY 1",
            f"listing tables of {self.target}",
        ).split()
        if not listing:
            return {}
        query = " UNION ALL ".join(f"SELECT '{table}', count(*) FROM {table}" for table in listing)
        output = self._query(query, f"counting rows of {self.target}")
        return {name: int(count) for name, count in (line.split("\t") for line in output.strip().splitlines())}
