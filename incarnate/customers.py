"""The customers this machine serves: the customer repos an operator registered.

Kept in $INCARNATE_HOME/customers.yaml (INCARNATE_CUSTOMERS overrides the path); the
deployments (per stack: install, update, recovery, rollback, drill, nightly backup) are
generated from it, never written by hand per customer.
"""

import os
from pathlib import Path

import yaml

from incarnate import settings
from incarnate.errors import ConfigError
from incarnate.private import write_private
from incarnate.repo import CustomerConfig, load_customer_config


def registry_path() -> Path:
    return Path(os.environ.get("INCARNATE_CUSTOMERS", str(settings.home() / "customers.yaml")))


def hosts() -> dict[str, str | None]:
    """Registered customer repos and the host each stack runs on (None: this machine)."""
    path = registry_path()
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    entries = data.get("customers", []) if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: expected `customers:` with a list of customer repos (or repo/host mappings).")
    found: dict[str, str | None] = {}
    for entry in entries:
        if isinstance(entry, str):
            found[entry] = None
        elif isinstance(entry, dict) and isinstance(entry.get("repo"), str) and set(entry) <= {"repo", "host"}:
            found[entry["repo"]] = entry.get("host") or None
        else:
            raise ConfigError(f"{path}: customer entry {entry!r} is neither a repo address nor a mapping with repo and host.")
    return found


def check_registrable(repo: str) -> CustomerConfig:
    """The repo's stack.yaml is valid and no other registered customer uses its stack name."""
    customer = load_customer_config(repo)
    others = {load_customer_config(other).config.stack: other for other in hosts() if other != repo}
    if customer.config.stack in others:
        raise ConfigError(f"stack {customer.config.stack} of {repo} is already registered by {others[customer.config.stack]}.")
    return customer


def register(repo: str, host: str | None = None) -> CustomerConfig:
    """Validate a customer repo and add it (or change its host); a stack name must be unique among customers."""
    customer = check_registrable(repo)
    known = hosts()
    if repo not in known or known[repo] != (host or None):
        known[repo] = host or None
        path = registry_path()
        entries = [{"repo": name, "host": where} if where else name for name, where in known.items()]
        write_private(path, yaml.safe_dump({"customers": entries}).encode())
    return customer
