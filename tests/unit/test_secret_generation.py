"""Which stack secrets are generated, reused or refused, without a Prefect server (a vault in memory)."""

import pytest

from incarnate.errors import ConfigError
from incarnate.secrets import for_scratch, stack_secrets
from tests.memory_vault import MemoryVault


def plain(values) -> dict[str, str]:
    return {name: value.get_secret_value() for name, value in values.items()}


def test_the_first_deployment_generates_and_every_later_one_reuses():
    vault = MemoryVault()
    first = plain(stack_secrets(vault, "acme", ["db_password", "api_key"], has_data=None))
    assert set(first) == {"DB_PASSWORD", "API_KEY"} and len(set(first.values())) == 2
    assert all(len(value) >= 40 for value in first.values())
    again = plain(stack_secrets(vault, "acme", ["db_password", "api_key"], has_data="snapshot 1"))
    assert again == first and vault.saves == 1


def test_a_secret_a_newer_release_adds_is_generated_and_the_others_kept():
    vault = MemoryVault()
    before = plain(stack_secrets(vault, "acme", ["db_password"], has_data=None))
    after = plain(stack_secrets(vault, "acme", ["db_password", "smtp_password"], has_data="snapshot 2"))
    assert after["DB_PASSWORD"] == before["DB_PASSWORD"] and after["SMTP_PASSWORD"]


def test_data_without_its_secrets_is_refused_and_nothing_is_generated():
    vault = MemoryVault()
    with pytest.raises(ConfigError) as refused:
        stack_secrets(vault, "acme", ["db_password"], has_data="snapshot 20261126T010000000000Z-abc123")
    assert str(refused.value).startswith(
        "stack acme has data (snapshot 20261126T010000000000Z-abc123) but vault entry "
        "acme does not exist, so its secrets (db_password) are missing; restore"
    )
    assert vault.saves == 0


def test_secret_values_never_show_in_a_repr_and_scratch_values_are_fresh():
    values = stack_secrets(MemoryVault(), "acme", ["db_password"], has_data=None)
    assert values["DB_PASSWORD"].get_secret_value() not in repr(values)
    assert plain(for_scratch(["db_password"])) != plain(for_scratch(["db_password"]))
    assert stack_secrets(MemoryVault(), "acme", [], has_data="snapshot 1") == {}


def sealed_store(path):
    from incarnate.stores.local import LocalStore
    from incarnate.stores.sealed import SealedStore

    keys = MemoryVault()
    path.mkdir(exist_ok=True)
    return SealedStore(LocalStore(path), lambda: keys), LocalStore(path)


def test_the_store_keeps_a_sealed_copy_that_a_new_vault_takes_back(tmp_path):
    from incarnate.stores.secret_copies import StoreSecrets

    store, raw = sealed_store(tmp_path)
    copy = StoreSecrets(store)
    first = plain(stack_secrets(MemoryVault(), "acme", ["db_password"], has_data=None, copy=copy))
    (key,) = raw.list("secrets/acme/")
    assert first["DB_PASSWORD"].encode() not in raw.get(key)  # sealed, never in the clear
    new_vault = MemoryVault()  # a brand-new Prefect server
    again = plain(stack_secrets(new_vault, "acme", ["db_password"], has_data="snapshot 1", copy=copy))
    assert again == first and new_vault.load("acme") == {"db_password": first["DB_PASSWORD"]}
    assert len(raw.list("secrets/acme/")) == 1  # unchanged: no new copy


def test_the_copy_follows_the_vault_and_a_plain_store_never_holds_one(tmp_path):
    from incarnate.stores.local import LocalStore
    from incarnate.stores.secret_copies import StoreSecrets

    store, raw = sealed_store(tmp_path / "sealed")
    vault, copy = MemoryVault(), StoreSecrets(store)
    stack_secrets(vault, "acme", ["db_password"], has_data=None, copy=copy)
    added = plain(stack_secrets(vault, "acme", ["db_password", "smtp_password"], has_data="snapshot 1", copy=copy))
    assert len(raw.list("secrets/acme/")) == 2 and copy.load("acme") == {k.lower(): v for k, v in added.items()}
    (tmp_path / "plain").mkdir()
    plain_store = LocalStore(tmp_path / "plain")
    stack_secrets(MemoryVault(), "acme", ["db_password"], has_data=None, copy=StoreSecrets(plain_store))
    assert plain_store.list("secrets") == []


def test_data_whose_vault_and_store_copy_are_both_gone_is_refused_naming_both(tmp_path):
    from incarnate.stores.secret_copies import StoreSecrets

    store, _ = sealed_store(tmp_path)
    store.put("backups/acme/x/manifest.json", b"{}")  # the store is encrypted from its first write on
    with pytest.raises(ConfigError, match="does not exist and the sealed copy in store .* holds none"):
        stack_secrets(MemoryVault(), "acme", ["db_password"], has_data="snapshot 1", copy=StoreSecrets(store))
