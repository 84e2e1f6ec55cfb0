"""Recovery to the minute: the demo's MariaDB binlog archived into the stack's store as it grows, replayed by a
recovery to its end or to a chosen second."""

import re
import time
from datetime import UTC, datetime

from incarnate.backup_format import list_snapshots
from incarnate.log_archive import histories, listing


def titles(customer) -> list[str]:
    return [record["title"] for record in customer.records()]


def add(customer, title: str) -> None:
    customer.request("POST", "/records", f'{{"title": "{title}"}}'.encode())


def archive(customer) -> str:
    shipped = customer.incarnate("archive", str(customer.repo))
    assert shipped.returncode == 0, shipped.stderr + shipped.stdout
    return shipped.stdout


def test_total_loss_recovers_every_archived_write_then_a_chosen_second(customer):
    assert customer.install().returncode == 0
    add(customer, "before the backup")
    assert customer.incarnate("backup", str(customer.repo)).returncode == 0
    add(customer, "after the backup")
    first = archive(customer)
    assert "database-demo: " in first and "new piece(s)" in first, first
    time.sleep(1.1)  # the binlog's clock has whole seconds: the chosen second lies between the two writes
    chosen = datetime.now(UTC).replace(microsecond=0)
    time.sleep(1.1)
    add(customer, "after the chosen second")
    archive(customer)
    everything = titles(customer)
    assert everything[-3:] == ["before the backup", "after the backup", "after the chosen second"]

    customer.remove_stack()
    recovered = customer.incarnate("recover", str(customer.repo))
    assert recovered.returncode == 0, recovered.stderr[-3000:] + recovered.stdout[-3000:]
    assert titles(customer) == everything  # the nightly backup's recovery point would have lost two writes
    assert "replay logs ok" in recovered.stdout + recovered.stderr

    customer.remove_stack()
    at = customer.incarnate("recover", str(customer.repo), "--at", chosen.isoformat())
    assert at.returncode == 0, at.stderr[-3000:] + at.stdout[-3000:]
    assert titles(customer) == everything[:-1]
    point = re.search(r"replay logs ok \([\d.]+ s\): recovery point (\S+);", at.stdout + at.stderr)
    assert point and datetime.fromisoformat(point[1]) < chosen, at.stdout[-3000:]

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


def test_a_time_before_the_oldest_backup_is_refused(customer):
    assert customer.install().returncode == 0
    refused = customer.incarnate("recover", str(customer.repo), "--at", "2020-01-01T00:00:00Z")
    assert refused.returncode == 2, refused.stderr
    assert "no backup in store" in refused.stderr and "was taken at or before 2020-01-01T00:00:00+00:00" in (
        refused.stderr
    )
    assert "Choose a later --at" in refused.stderr
    assert len(list_snapshots(customer.backups(), customer.stack)) == 1
