"""The one place a configured name becomes a thing: a host address, a registry, a backup store, the release store,
a vault. Names of saved Prefect blocks (`incarnate-ssh-host/NAME`, `incarnate-registry/NAME`, a store block) are
loaded here; every other form is the core's to build. The core (incarnate/) never loads a block: the flows, tasks
and commands above it call these and hand it the thing."""

from blocks.hosts import load_ssh_host_block
from blocks.registries import load_registry_block
from blocks.secrets import PrefectSecretVault
from blocks.stores import load_store_block
from incarnate import settings
from incarnate.config import BlockStoreTarget, StackConfig
from incarnate.host import SSH_BLOCK_PREFIX, Host, resolve_host
from incarnate.registry import BLOCK_PREFIX, Registry
from incarnate.releases import ReleaseStore
from incarnate.secrets import Vault
from incarnate.stores import Store
from incarnate.stores.resolve import local_backup_store, local_release_store
from incarnate.stores.sealed import SealedStore


def host(address: str | None) -> Host:
    """The host an address names: a saved SSH host block, else what the core makes of it (this machine, an engine
    address, ssh://USER@HOST[:PORT])."""
    address = (address or "").strip()
    if address.startswith(SSH_BLOCK_PREFIX):
        return Host(ssh=load_ssh_host_block(address.removeprefix(SSH_BLOCK_PREFIX)).session())
    return resolve_host(address)


def registry(chosen: str | None) -> Registry:
    """stack.yaml's `registry` when it names one, else this machine's INCARNATE_REGISTRY: an address (an open
    registry), or `incarnate-registry/NAME`, a saved block with address and login."""
    value, source = (chosen, "stack.yaml registry") if chosen else (settings.registry(), "INCARNATE_REGISTRY")
    if value.startswith(BLOCK_PREFIX):
        return load_registry_block(value, source)
    return Registry(value, source=source)


def store_keys() -> Vault:
    """Where encrypted stores' keys are kept: a Prefect Secret block per store."""
    return PrefectSecretVault(prefix="incarnate-store-key-")


def stack_secrets() -> Vault:
    """Where stacks' secrets are kept: a Prefect Secret block per stack."""
    return PrefectSecretVault()


def raw_backup_store(config: StackConfig) -> Store:
    """The store stack.yaml names (a saved block, or a local path; else the default), unsealed."""
    target = config.backup.store
    if isinstance(target, BlockStoreTarget):
        return load_store_block(target.block, "backup.store.block")
    return local_backup_store(target)


def backup_store(config: StackConfig) -> SealedStore:
    """The stack's store as its flows use it: sealed when encrypted (a new store is, unless backup.encrypt is false)."""
    return SealedStore(raw_backup_store(config), store_keys, encrypt_new=config.backup.encrypt)


def release_store() -> ReleaseStore:
    """The release store this machine reads and publishes to (INCARNATE_RELEASES): an absolute path is a folder of
    this machine (or a mounted share); anything else names a saved store block, e.g. incarnate-azure-blob-store/x."""
    where = settings.releases()
    if where.startswith("/"):
        return ReleaseStore(local_release_store(where))
    return ReleaseStore(load_store_block(where, "INCARNATE_RELEASES"))
