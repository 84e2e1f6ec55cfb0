"""Stack secrets: the names a release declares (release.yaml `secrets`), generated once per stack, kept in a vault
(a Prefect Secret block, masked in the UI, reachable from any machine that runs the flows), and handed to the
containers only through the stack's 0600 env file: never a command line, a log line, an artifact, the customer
repo, the incarnation record or a manifest."""

import secrets
from collections.abc import Iterable
from typing import Protocol

from pydantic import SecretStr

from incarnate.errors import ConfigError, IncarnateError
from incarnate.product_settings import SettingSpec, missing_secrets, secret_names
from incarnate.product_settings import variable as setting_variable


class Vault(Protocol):
    def where(self, stack: str) -> str:
        """Where the stack's secrets are kept, for an operator (never a value)."""

    def load(self, stack: str) -> dict[str, str] | None:
        """The stack's secrets, None when the vault has none for it."""

    def save(self, stack: str, values: dict[str, str]) -> None: ...


def variable(name: str) -> str:
    """The variable compose.yaml reads a secret from: `db_password` -> `${DB_PASSWORD}`."""
    return name.upper()


def generate() -> str:
    return secrets.token_urlsafe(32)  # 256 bits; letters, digits, - and _: safe inside any quoting


def for_scratch(names: Iterable[str]) -> dict[str, SecretStr]:
    """Fresh values nobody keeps, for a stack that lives only while a release is published."""
    return {variable(name): SecretStr(generate()) for name in names}


def stack_secrets(
    vault: Vault, stack: str, names: list[str], has_data: str | None, copy: Vault | None = None
) -> dict[str, SecretStr]:
    """The stack's secrets as compose variables. The first deployment generates and keeps them; a secret a newer
    release adds is generated then. `copy` (the stack's encrypted store) keeps them too, and gives them back to a
    vault that lost them (a new Prefect server). A stack with data (`has_data` says which) whose vault and copy hold
    nothing is refused: its data was written with secrets that must come back, not be replaced."""
    if not names:
        return {}
    kept = vault.load(stack)
    if kept is None and copy is not None and (kept := copy.load(stack)) is not None:
        vault.save(stack, kept)
        print(f"stack {stack}: secrets recovered from {copy.where(stack)} into {vault.where(stack)}")
    if kept is None and has_data:
        raise ConfigError(
            f"stack {stack} has data ({has_data}) but {vault.where(stack)} does not exist"
            f"{f' and {copy.where(stack)} holds none' if copy else ''}, so its secrets "
            f"({', '.join(names)}) are missing; restore that block (Prefect UI: Blocks, Secret, a JSON value "
            f'{{"{names[0]}": "..."}} with every secret) from your records and run again. Nothing was changed.'
        )
    kept = dict(kept or {})
    added = {name: generate() for name in names if name not in kept}
    if added:
        vault.save(stack, {**kept, **added})
        print(
            f"stack {stack}: generated secret{'s' if len(added) > 1 else ''} {', '.join(added)} into "
            f"{vault.where(stack)}"
        )
    if copy is not None:
        keep_copy(copy, stack, {**kept, **added})
    return {variable(name): SecretStr({**kept, **added}[name]) for name in names}


def secret_settings(vault: Vault, stack: str, declared: dict[str, SettingSpec]) -> dict[str, SecretStr]:
    """The release's secret settings as compose variables, from the stack's secrets, where an operator put them
    (`incarnate secret REPO NAME --set`); never generated. A required one the vault lacks is refused."""
    names = secret_names(declared)
    if not names:
        return {}
    kept = vault.load(stack) or {}
    missing_secrets(declared, kept, stack)
    return {setting_variable(name): SecretStr(kept.get(name, "")) for name in names}


def keep_copy(copy: Vault, stack: str, values: dict[str, str]) -> None:
    """The copy holds what the vault holds: a new one when it differs (or cannot be read: the newest wins)."""
    try:
        current = copy.load(stack)
    except IncarnateError:
        current = None
    if current != values:
        copy.save(stack, values)
