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
from incarnate.repo import CustomerConfig, load_customer_config


def registry_path() -> Path:
    return Path(os.environ.get("INCARNATE_CUSTOMERS", str(settings.home() / "customers.yaml")))


def registered() -> list[str]:
    path = registry_path()
    if not path.is_file():
        return []
    data = yaml.safe_load(path.read_text()) or {}
    repos = data.get("customers", []) if isinstance(data, dict) else None
    if not isinstance(repos, list) or not all(isinstance(repo, str) for repo in repos):
        raise ConfigError(f"{path}: expected `customers:` with a list of customer repo addresses.")
    return repos


def register(repo: str) -> CustomerConfig:
    """Validate a customer repo and add it; a stack name must be unique among customers."""
    customer = load_customer_config(repo)
    repos = registered()
    others = {load_customer_config(other).config.stack: other for other in repos if other != repo}
    if customer.config.stack in others:
        raise ConfigError(f"stack {customer.config.stack} of {repo} is already registered by {others[customer.config.stack]}.")
    if repo not in repos:
        path = registry_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({"customers": [*repos, repo]}))
    return customer
