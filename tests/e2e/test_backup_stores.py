"""Backup and full restore through each store (local, SMB, Azure), for MariaDB and PostgreSQL stacks."""

import os

import pytest

from incarnate.stores.resolve import backup_store
from incarnate.repo import load_customer_config
from incarnate.backup_format import list_snapshots, verify_snapshot
from tests.servers import save_store_block


@pytest.mark.parametrize("kind", ["local", "smb", "azure"])
@pytest.mark.parametrize("product", ["demo", "pgdemo"])
def test_backup_and_full_restore_through_store(customer, product, kind, samba_server, azurite_server):
    customer.use(product, save_store_block(kind, samba_server, azurite_server))
    installed = customer.install()
    assert installed.returncode == 0, installed.stderr[-3000:]
    for title in ("alpha", "beta", "gamma"):
        customer.request("POST", "/records", f'{{"title": "{title}"}}'.encode())
    payload = os.urandom(2 << 20)
    customer.request("PUT", "/files/blob.bin", payload)
    records = customer.records()

    backup = customer.incarnate("backup", str(customer.repo))
    assert backup.returncode == 0, backup.stderr[-3000:]
    assert "not locked by the server" in backup.stdout + backup.stderr

    store = backup_store(load_customer_config(str(customer.repo)).config)
    newest = list_snapshots(store, customer.stack)[-1]
    assert verify_snapshot(store, newest) == []

    customer.remove_stack()
    again = customer.install()
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"restored from {newest.id}" in again.stdout + again.stderr
    assert customer.records() == records
    assert customer.request("GET", "/files/blob.bin") == payload
