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
