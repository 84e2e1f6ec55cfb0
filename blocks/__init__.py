"""Prefect blocks: what an operator configures (and edits in the UI). Secrets are SecretStr."""

from prefect.blocks.core import Block

from incarnate.errors import ConfigError


def load_saved(slug: str, named: str) -> Block:
    """The saved block `block-type-slug/block-name` a setting names; `named` says which setting, for the error."""
    if "/" not in slug:
        raise ConfigError(f"{named} {slug!r}: expected BLOCK-TYPE/NAME, e.g. incarnate-smb-store/acme.")
    try:
        return Block.load(slug)
    except ValueError as error:
        raise ConfigError(f"{named} {slug!r}: no such saved block ({error}).") from None
