"""Backup and full restore through each store (local, SMB, Azure), for MariaDB and PostgreSQL stacks; each store is
new, so encrypted, and nothing in it reveals what the app wrote."""

import os
import uuid

import pytest
import zstandard

from blocks.resolve import backup_store
from incarnate.backup_format import list_snapshots, verify_snapshot
from incarnate.repo import load_customer_config
from tests.servers import save_store_block


@pytest.mark.parametrize("kind", ["local", "smb", "azure"])
@pytest.mark.parametrize("product", ["demo", "pgdemo"])
def test_backup_and_full_restore_through_store(customer, product, kind, samba_server, azurite_server):
    customer.use(product, save_store_block(kind, samba_server, azurite_server))
    installed = customer.install()
    assert installed.returncode == 0, installed.stderr[-3000:]
    marker = f"marker-{uuid.uuid4().hex}"
    for title in ("alpha", marker, "gamma"):
        customer.request("POST", "/records", f'{{"title": "{title}"}}'.encode())
    payload = os.urandom(1 << 20) + f"{marker}\n".encode() * 20000
    customer.request("PUT", "/files/blob.bin", payload)
    records = customer.records()

    backup = customer.incarnate("backup", str(customer.repo))
    assert backup.returncode == 0, backup.stderr[-3000:]
    assert "encrypted (AES-256-GCM" in backup.stdout + backup.stderr
    assert "not locked by the server" in backup.stdout + backup.stderr

    store = backup_store(load_customer_config(str(customer.repo)).config)
    newest = list_snapshots(store, customer.stack)[-1]
    assert verify_snapshot(store, newest) == []
    assert store.raw.list("chunks") and not any(
        marker.encode() in opened(store.raw.get(key)) for key in store.raw.list("") if not key.startswith("locks/")
    )

    customer.remove_stack()
    again = customer.install()
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"restored from {newest.id}" in again.stdout + again.stderr
    assert customer.records() == records
    assert customer.request("GET", "/files/blob.bin") == payload


def opened(stored: bytes) -> bytes:
    """An object as someone who can read the store sees it, decompressed where it decompresses."""
    try:
        return zstandard.ZstdDecompressor().decompress(stored, max_output_size=64 << 20)
    except zstandard.ZstdError:
        return stored
