"""The customers this machine serves: the customer repos an operator registered.

Kept in $INCARNATE_HOME/customers.yaml (INCARNATE_CUSTOMERS overrides the path); the
deployments (per stack: install, update, recovery, rollback, drill, nightly backup) are
generated from it, never written by hand per customer. Each entry is a repo, or a mapping of
its repo, the container host its stack runs on and the work pool whose workers run its flows.
"""

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from incarnate import settings
from incarnate.errors import ConfigError
from incarnate.private import write_private
from incarnate.repo import CustomerConfig, load_customer_config


def registry_path() -> Path:
    return Path(os.environ.get("INCARNATE_CUSTOMERS", str(settings.home() / "customers.yaml")))


POOL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True)
class Registration:
    """Where a registered stack runs (host: None is this machine) and who runs its flows: `incarnate serve`, or the
    workers of a Prefect work pool (pool: one per container host, a worker on that host)."""

    host: str | None = None
    pool: str | None = None


def check_pool(pool: str | None) -> str | None:
    if pool is not None and not POOL_NAME.fullmatch(pool):
        raise ConfigError(
            f"work pool name {pool!r}: expected letters, digits, '.', '_' or '-' (at most 100), "
            "starting with a letter or digit."
        )
    return pool or None


def registrations() -> dict[str, Registration]:
    """Registered customer repos and where each stack runs."""
    path = registry_path()
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    entries = data.get("customers", []) if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: expected `customers:` with a list of customer repos (or repo/host/pool mappings).")
    found: dict[str, Registration] = {}
    for entry in entries:
        if isinstance(entry, str):
            found[entry] = Registration()
        elif isinstance(entry, dict) and isinstance(entry.get("repo"), str) and set(entry) <= {"repo", "host", "pool"}:
            found[entry["repo"]] = Registration(entry.get("host") or None, check_pool(entry.get("pool")))
        else:
            raise ConfigError(
                f"{path}: customer entry {entry!r} is neither a repo address nor a mapping with repo, host and pool."
            )
    return found


def check_registrable(repo: str) -> CustomerConfig:
    """The repo's stack.yaml is valid and no other registered customer uses its stack name."""
    customer = load_customer_config(repo)
    others = {load_customer_config(other).config.stack: other for other in registrations() if other != repo}
    if customer.config.stack in others:
        raise ConfigError(
            f"stack {customer.config.stack} of {repo} is already registered by {others[customer.config.stack]}."
        )
    return customer


def register(repo: str, host: str | None = None, pool: str | None = None) -> CustomerConfig:
    """Validate a customer repo and add it (or change where it runs); a stack name must be unique among customers."""
    wanted = Registration(host or None, check_pool(pool))
    customer = check_registrable(repo)
    known = registrations()
    if known.get(repo) != wanted:
        known[repo] = wanted
        _write(known)
    return customer


def unregister(repo: str) -> bool:
    """Drop a customer repo from the registrations (serve no longer deploys it); whether it was registered."""
    known = registrations()
    if known.pop(repo, None) is None:
        return False
    _write(known)
    return True


def _write(known: dict[str, Registration]) -> None:
    entries = [
        {"repo": name, **{key: value for key, value in asdict(where).items() if value}}
        if where != Registration()
        else name
        for name, where in known.items()
    ]
    write_private(registry_path(), yaml.safe_dump({"customers": entries}).encode())
