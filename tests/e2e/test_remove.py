"""Removing a stack: only with its name typed again, after a last backup that holds every write, leaving nothing of
it on the host; its backups and secrets stay, so install brings it back as it was."""

import json

from incarnate import settings
from tests.e2e.conftest import left_on_host


def test_a_stack_is_removed_after_a_last_backup_and_install_brings_it_back_as_it_was(customer):
    assert customer.install().returncode == 0
    customer.request("POST", "/records", json.dumps({"title": "written after the last nightly backup"}).encode())
    written = customer.records()

    unconfirmed = customer.incarnate("remove", str(customer.repo))
    assert unconfirmed.returncode == 2
    assert unconfirmed.stderr.strip().splitlines()[-1] == (
        f"error: removing stack {customer.stack} deletes its containers and volumes on its host; give --confirm "
        f"{customer.stack} (the stack's name) to go ahead. Nothing was changed."
    )
    assert customer.records() == written

    removed = customer.incarnate("remove", str(customer.repo), "--confirm", customer.stack)
    assert removed.returncode == 0, removed.stderr[-3000:]
    assert f"stack {customer.stack} removed from host local (" in removed.stdout + removed.stderr
    assert left_on_host(customer.stack) == []

    back = customer.install()
    assert back.returncode == 0, back.stderr[-3000:]
    assert customer.records() == written  # the last backup held the write made after the install


def test_what_a_failed_first_install_left_is_removed_only_when_its_data_may_go(customer):
    """No deployment recorded anything (the folder's state is gone): there is nothing to back up, so the operator
    says that what is left may go."""
    assert customer.install().returncode == 0
    (settings.stacks_dir() / customer.stack / "state.json").unlink()
    refused = customer.incarnate("remove", str(customer.repo), "--confirm", customer.stack)
    assert refused.returncode == 1
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: removal of stack {customer.stack} failed before it changed the stack (no last ")
    assert "give --discard-data if what is left of it on host local may go); it stays as before and was not" in last
    assert left_on_host(customer.stack) != []

    removed = customer.incarnate("remove", str(customer.repo), "--confirm", customer.stack, "--discard-data")
    assert removed.returncode == 0, removed.stderr[-3000:]
    assert left_on_host(customer.stack) == []
