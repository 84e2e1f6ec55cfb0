"""The SMB and Azure stores against a real smbd and a real Azurite: the store contract, faults, honesty about locks."""

import uuid
from datetime import UTC, datetime

import pytest

from incarnate.errors import ObjectMissing, StoreError
from incarnate.stores.azure import AzureBlobStore, AzureSettings
from incarnate.stores.smb import SmbSettings, SmbStore
from tests.servers import AZURITE_ACCOUNT, AZURITE_KEY


def smb_store(server, path=None, password=None) -> SmbStore:
    return SmbStore(
        SmbSettings(
            "127.0.0.1",
            server.share,
            path or uuid.uuid4().hex[:8],
            server.username,
            password or server.password,
            server.port,
        )
    )


def azure_store(server, container=None) -> AzureBlobStore:
    return AzureBlobStore(
        AzureSettings(server.account_url, AZURITE_ACCOUNT, AZURITE_KEY, container or f"c{uuid.uuid4().hex[:10]}")
    )


@pytest.fixture(params=["smb", "azure"])
def store(request, samba_server, azurite_server):
    return smb_store(samba_server) if request.param == "smb" else azure_store(azurite_server)


def test_store_contract_write_once_get_list_delete(store):
    assert store.list("chunks") == []
    assert store.put("chunks/ab/abc", b"one") is True
    assert store.put("chunks/ab/abc", b"two") is False
    assert store.get("chunks/ab/abc") == b"one"
    assert store.put("backups/acme/1/manifest.json", b"{}") is True
    assert store.exists("chunks/ab/abc") and not store.exists("chunks/ab/nope")
    assert store.list("chunks") == ["chunks/ab/abc"]
    assert store.list("backups/acme") == ["backups/acme/1/manifest.json"]
    with pytest.raises(ObjectMissing, match="chunks/ab/nope is missing"):
        store.get("chunks/ab/nope")
    store.delete("chunks/ab/abc")
    store.delete("chunks/ab/abc")
    assert store.list("chunks") == []


def test_stores_say_they_do_not_lock_and_never_claim_it(store):
    reason = store.lock_support()
    assert reason is not None
    store.put("x", b"1")
    store.lock("x", datetime(2099, 1, 1, tzinfo=UTC))
    assert store.locked_until("x") is None


def test_azurite_is_detected_as_not_applying_immutability(azurite_server):
    assert "has no version-level immutability" in azure_store(azurite_server).lock_support()


def test_wrong_smb_password_is_a_clear_store_error(samba_server):
    with pytest.raises(StoreError, match=r"store smb://127.0.0.1:\d+/backups/\w+: cannot write x"):
        smb_store(samba_server, password="wrong").put("x", b"1")


def test_secrets_never_appear_in_store_errors(samba_server, azurite_server):
    with pytest.raises(StoreError) as raised:
        smb_store(samba_server, password="wrong-but-secret").put("x", b"1")
    assert "wrong-but-secret" not in str(raised.value)
    wrong_key = "c2VjcmV0LWJ1dC13cm9uZy1rZXktZm9yLXRoZS10ZXN0"  # base64, so the SDK signs with it
    wrong = AzureBlobStore(AzureSettings(azurite_server.account_url, AZURITE_ACCOUNT, wrong_key, "c-wrong-key"))
    with pytest.raises(StoreError) as raised:
        wrong.put("x", b"1")
    assert wrong_key not in str(raised.value) and "cannot" in str(raised.value)


def test_the_immutability_probe_writes_and_deletes_nothing(azurite_server):
    """The probe reads the container's settings: it never writes an object it would then have to unlock to delete."""
    store = azure_store(azurite_server)
    store.ensure_container()
    reason = store.lock_support()
    assert "version-level immutability" in reason
    assert [blob.name for blob in store.container.list_blobs()] == []


def test_store_settings_never_show_their_secrets():
    assert "hunter2" not in repr(SmbSettings("nas", "backups", "", "backup", "hunter2"))
    assert "c2VjcmV0" not in repr(AzureSettings("https://acme.blob.core.windows.net", "acme", "c2VjcmV0", "backups"))


def test_backups_while_another_stack_prunes_lose_no_chunk_on_a_network_store(store):
    """The same race as tests/unit/test_prune_concurrency.py, on a real SMB share and a real Azurite: the store's
    own locks must hold where listing and writing go over the network."""
    from tests.unit.test_prune_concurrency import backups_while_pruning

    failures, problems = backups_while_pruning(store, rounds=6, size=3 << 20)
    assert failures == [] and problems == []
