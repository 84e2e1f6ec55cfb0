"""Recovery to the minute: the demo's MariaDB binlog archived into the stack's store as it grows, replayed by a
recovery to its end or to a chosen second."""

import os
import re
import signal
import subprocess
import time
from datetime import UTC, datetime

from incarnate import settings
from incarnate.log_archive import histories, listing
from tests.e2e.conftest import INCARNATE


def titles(customer) -> list[str]:
    return [record["title"] for record in customer.records()]


def add(customer, title: str) -> None:
    customer.request("POST", "/records", f'{{"title": "{title}"}}'.encode())


def archive(customer) -> str:
    shipped = customer.incarnate("archive", str(customer.repo))
    assert shipped.returncode == 0, shipped.stderr + shipped.stdout
    return shipped.stdout


def archived_around_a_chosen_second(customer, database: str) -> tuple[datetime, list[str]]:
    """After a backup: a write archived, a second chosen, a write after it archived; that second and every title."""
    add(customer, "after the backup")
    first = archive(customer)
    assert f"{database}: " in first and "new piece(s)" in first, first
    time.sleep(1.1)  # a binlog's clock has whole seconds: the chosen second lies between the two writes
    chosen = datetime.now(UTC).replace(microsecond=0)
    time.sleep(1.1)
    add(customer, "after the chosen second")
    archive(customer)
    everything = titles(customer)
    assert everything[-3:] == ["before the backup", "after the backup", "after the chosen second"]
    return chosen, everything


def said_within(log, pattern: str, after: int = 0, seconds: float = 60) -> str:
    """What the archiver said after the first `after` characters of its log, once that matches `pattern`."""
    deadline = time.monotonic() + seconds
    while not re.search(pattern, log.read_text()[after:]):
        assert time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.5)
    return log.read_text()[after:]


def test_total_loss_recovers_every_archived_write_then_a_chosen_second(customer):
    assert customer.install().returncode == 0
    add(customer, "before the backup")
    assert customer.incarnate("backup", str(customer.repo)).returncode == 0
    chosen, everything = archived_around_a_chosen_second(customer, "database-demo")

    customer.remove_stack()
    recovered = customer.incarnate("recover", str(customer.repo))
    assert recovered.returncode == 0, recovered.stderr[-3000:] + recovered.stdout[-3000:]
    assert titles(customer) == everything  # the nightly backup's recovery point would have lost two writes
    assert "replay logs ok" in recovered.stdout + recovered.stderr

    status = customer.incarnate("status", str(customer.repo))
    assert "  recovery  database-demo: 330 bytes of its log not archived yet" in status.stdout  # the new history's
    archive(customer)
    listed = customer.incarnate("backups", str(customer.repo))
    assert "  archived log of database-demo: " in listed.stdout and "`recover --at` any second from 20" in listed.stdout
    status = customer.incarnate("status", str(customer.repo))
    assert "  recovery  database-demo: every write archived (newest archived write 20" in status.stdout, status.stdout
    drill = customer.incarnate("drill", str(customer.repo), "--at", chosen.isoformat())
    assert drill.returncode == 0, drill.stderr[-3000:]
    assert "restored and healthy" in drill.stderr and "replayed mariadb-bin." in drill.stderr

    customer.remove_stack()
    at = customer.incarnate("recover", str(customer.repo), "--at", chosen.isoformat())
    assert at.returncode == 0, at.stderr[-3000:] + at.stdout[-3000:]
    assert titles(customer) == everything[:-1]
    point = re.search(r"replay logs ok \([\d.]+ s\): recovery point (\S+);", at.stdout + at.stderr)
    assert point and datetime.fromisoformat(point[1]) < chosen, at.stdout[-3000:]
    assert f" to {point[1]}  backup " in customer.incarnate("history", str(customer.repo)).stdout.splitlines()[-1]

    # The history begun by that recovery is the live one: a later write is archived in it and recovered from it,
    # never from the abandoned branch that held "after the chosen second".
    add(customer, "in the new history")
    archive(customer)
    customer.remove_stack()
    again = customer.incarnate("recover", str(customer.repo))
    assert again.returncode == 0, again.stderr[-3000:]
    assert titles(customer) == [*everything[:-1], "in the new history"]
    store = customer.backups()
    assert len(histories(store, customer.stack)) == 4  # the install's and the three recoveries'

    assert listing(store, customer.stack, "database-demo").pieces


def test_archiving_survives_a_killed_archiver_and_a_store_outage_and_a_gap_is_never_replayed_past(customer, tmp_path):
    assert customer.install().returncode == 0
    refused = customer.incarnate("recover", str(customer.repo), "--at", "2020-01-01T00:00:00Z")
    assert refused.returncode == 2, refused.stderr
    assert "no backup in store" in refused.stderr and "taken at or before 2020-01-01T00:00:00+00:00" in refused.stderr
    assert "Choose a later --at" in refused.stderr

    # An archiver killed at any moment (its pieces' chunks stored, a piece not yet written): the next round ships
    # what it had not recorded, from the server's binlog, which purges only what is archived.
    log = (tmp_path / "archiver.log").open("w")
    follow = subprocess.Popen(
        [INCARNATE, "archive", str(customer.repo), "--follow"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "INCARNATE_ARCHIVE_SECONDS": "1"},
        start_new_session=True,
    )
    try:
        for number in range(40):
            add(customer, f"while archiving {number}")
            time.sleep(0.05)
        # It says how long its first round took (with many stacks, the recovery point until the next round).
        said = said_within(tmp_path / "archiver.log", r"archiving: the first round over 1 stack\(s\) took")
        # Its rounds ask the databases they met before: a database container replaced is met afresh at once.
        env_file = str(settings.stacks_dir() / customer.stack / "incarnate.env")
        customer.compose("--env-file", env_file, "up", "--detach", "--force-recreate", "--no-deps", "--wait", "db")
        said = said_within(tmp_path / "archiver.log", r"database-demo: [1-9][0-9]* new piece", after=len(said))
        add(customer, "after the database's container was replaced")
        said_within(tmp_path / "archiver.log", r"database-demo: [1-9][0-9]* new piece", after=len(said))
    finally:
        os.killpg(follow.pid, signal.SIGKILL)
        follow.wait()
    add(customer, "after the archiver was killed")

    # The store goes away: a round fails saying so, and the writes wait in the server's binlog.
    moved = customer.store.with_name("store-away")
    customer.store.rename(moved)
    outage = customer.incarnate("archive", str(customer.repo))
    assert outage.returncode != 0 and "does not exist or is not mounted" in outage.stderr, outage.stderr[-2000:]
    add(customer, "during the outage")
    moved.rename(customer.store)
    archive(customer)
    everything = titles(customer)

    customer.remove_stack()
    recovered = customer.incarnate("recover", str(customer.repo))
    assert recovered.returncode == 0, recovered.stderr[-3000:]
    assert titles(customer) == everything  # no gap: nothing the killed archiver or the outage held back was lost
    assert "warning" not in recovered.stdout
    into_data = customer.incarnate("recover", str(customer.repo), "--at", datetime.now(UTC).isoformat())
    assert into_data.returncode == 2, into_data.stderr[-2000:]
    assert "database-demo holds data, which a deployment keeps" in into_data.stderr
    assert titles(customer) == everything  # the running stack's data was kept, not claimed recovered

    # A piece deleted from the middle of the archive (a gap): a time past it is refused, nothing loaded is kept;
    # without --at the writes before it are recovered, with a warning that names the gap.
    archive(customer)  # the new history's first piece
    add(customer, "beyond the gap")
    archive(customer)
    time.sleep(1.1)
    chosen = datetime.now(UTC).isoformat(timespec="seconds")
    store = customer.backups()
    pieces = listing(store, customer.stack, "database-demo").pieces
    newest = pieces[max(pieces)]
    assert len(newest) >= 2, newest
    store.delete(newest[0][3])
    customer.remove_stack()
    past_gap = customer.incarnate("recover", str(customer.repo), "--at", chosen)
    assert past_gap.returncode != 0
    assert f"recovery to {chosen.replace('Z', '+00:00')} cannot be reached" in past_gap.stderr, past_gap.stderr[-3000:]
    assert (
        "the archive has a gap (log file" in past_gap.stderr and "the databases were emptied again" in past_gap.stderr
    )
    assert customer.database_tables() == 0
    latest = customer.incarnate("recover", str(customer.repo))
    assert latest.returncode == 0, latest.stderr[-3000:]
    assert (
        "warning: stack" in latest.stdout + latest.stderr and "the archive has a gap" in latest.stdout + latest.stderr
    )
    assert titles(customer) == everything
