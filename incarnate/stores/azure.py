"""A store in an Azure Blob container: create-only uploads and, where the account supports it,
a version-level immutability policy on every object (write-once, read-many).

Such a container keeps versions, and deleting a blob's current version is allowed even while the version is locked:
Azure keeps it as a previous version, hidden from a client that reads current versions only. So where the container
keeps versions, this store lists, reads and finds a blob by its newest version when it has no current one, and says
so once per object; a deletion removes every version (none is locked then: prune never deletes a locked object).
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ImmutabilityPolicy

from incarnate.errors import ObjectMissing, StoreError


@dataclass
class AzureSettings:
    account_url: str  # e.g. https://acme.blob.core.windows.net or http://127.0.0.1:10000/devstoreaccount1
    account_name: str
    account_key: str = field(repr=False)
    container: str
    max_concurrency: int = 4  # the SDK's default is 1 connection per upload


COORDINATION = ("locks/", "sweeps/")  # objects that coordinate runs: gone means gone, whatever versions remain


def hidden_versions(blobs: Iterable[Any]) -> dict[str, str]:
    """Blob name -> its newest version id, for the blobs of a listing with versions that have no current version
    (their current version was deleted). Version ids are times, so the greatest is the newest."""
    current = {blob.name for blob in blobs if blob.is_current_version or blob.version_id is None}
    newest: dict[str, str] = {}
    for blob in blobs:
        if blob.name not in current and blob.version_id and blob.version_id > newest.get(blob.name, ""):
            newest[blob.name] = blob.version_id
    return newest


class AzureBlobStore:
    def __init__(self, settings: AzureSettings) -> None:
        self.settings = settings
        self.location = f"{settings.account_url.rstrip('/')}/{settings.container}"
        service = BlobServiceClient(
            settings.account_url,
            credential={"account_name": settings.account_name, "account_key": settings.account_key},
            retry_total=2,
            connection_timeout=10,
            read_timeout=60,
        )
        self.container = service.get_container_client(settings.container)
        self._lock_support: str | None | bool = False  # False: not probed yet
        self._announced: set[str] = set()

    def _fail(self, action: str, key: str, error: Exception) -> StoreError:
        message = getattr(error, "reason", None) or str(error).splitlines()[0]
        return StoreError(
            f"store {self.location}: cannot {action} {key or 'the container'} ({error.__class__.__name__}: {message})."
        )

    def ensure_container(self) -> None:
        try:
            self.container.create_container()
        except ResourceExistsError:
            pass
        except AzureError as error:
            raise self._fail("create", "", error) from None

    def put(self, key: str, data: bytes) -> bool:
        try:
            self.container.upload_blob(key, data, overwrite=False, max_concurrency=self.settings.max_concurrency)
            return True
        except ResourceExistsError:
            return False
        except ResourceNotFoundError:
            self.ensure_container()
            return self.put(key, data)
        except AzureError as error:
            raise self._fail("write", key, error) from None

    def get(self, key: str) -> bytes:
        try:
            return self.container.download_blob(key, max_concurrency=self.settings.max_concurrency).readall()
        except ResourceNotFoundError:
            version = self._hidden_version(key)
            if version is None:
                raise ObjectMissing(f"store {self.location}: {key} is missing.") from None
        except AzureError as error:
            raise self._fail("read", key, error) from None
        try:
            return self.container.download_blob(
                key, version_id=version, max_concurrency=self.settings.max_concurrency
            ).readall()
        except AzureError as error:
            raise self._fail("read a previous version of", key, error) from None

    def exists(self, key: str) -> bool:
        try:
            return self.container.get_blob_client(key).exists() or self._hidden_version(key) is not None
        except AzureError as error:
            raise self._fail("look up", key, error) from None

    def _versions(self) -> bool:
        """Whether the container keeps versions: version-level immutability needs versioning."""
        return self.lock_support() is None

    def _blobs(self, prefix: str | None) -> list[Any]:
        versions = ["versions"] if self._versions() and not (prefix or "").startswith(COORDINATION) else None
        return list(self.container.list_blobs(name_starts_with=prefix, include=versions))

    def _hidden_version(self, key: str) -> str | None:
        """The newest version of a blob whose current version was deleted (said once); None for any other."""
        if not self._versions() or key.startswith(COORDINATION):
            return None
        version = hidden_versions([blob for blob in self._blobs(key) if blob.name == key]).get(key)
        if version is not None and key not in self._announced:
            self._announced.add(key)
            print(
                f"store {self.location}: {key} has no current version (it was deleted); read from its previous "
                f"version {version}, which the container keeps"
            )
        return version

    def list(self, prefix: str) -> list[str]:
        try:
            blobs = self._blobs(f"{prefix}/" if prefix else None)
        except ResourceNotFoundError:
            return []
        except AzureError as error:
            raise self._fail("list", prefix, error) from None
        hidden = sorted(set(hidden_versions(blobs)) - self._announced)
        if hidden:
            self._announced.update(hidden)
            print(
                f"store {self.location}: {len(hidden)} object{'s' if len(hidden) > 1 else ''} under {prefix or '/'} "
                f"had their current version deleted (first {hidden[0]}); listed and read from the previous versions "
                f"the container keeps"
            )
        return sorted({blob.name for blob in blobs if not blob.name.startswith(".")})

    def delete(self, key: str) -> None:
        try:
            self.container.delete_blob(key)
        except ResourceNotFoundError:
            pass
        except AzureError as error:
            raise self._fail("delete", key, error) from None
        if not self._versions() or key.startswith(COORDINATION):
            return  # a lock's old versions may be under a default policy; a lock deleted is released all the same
        try:  # else the previous versions stay: billed, and listed again as hidden objects
            for blob in self._blobs(key):
                if blob.name == key and blob.version_id:
                    self.container.delete_blob(key, version_id=blob.version_id)
        except ResourceNotFoundError:
            pass
        except AzureError as error:
            raise self._fail("delete the previous versions of", key, error) from None

    def lock_support(self) -> str | None:
        """Whether the container applies version-level immutability policies, read once from its properties: a
        probe that wrote and locked an object could never delete it again (Azurite applies none)."""
        if self._lock_support is False:
            try:
                self.ensure_container()
                enabled = self.container.get_container_properties().immutable_storage_with_versioning_enabled
            except AzureError as error:
                raise self._fail("read the immutability settings of", "", error) from None
            self._lock_support = (
                None
                if enabled
                else ("the container has no version-level immutability; enable it on the storage account or container")
            )
        return self._lock_support

    def lock(self, key: str, until: datetime, mode: str = "locked") -> None:
        if self.lock_support() is not None:
            return
        current = self.locked_until(key)
        if current is not None and current >= until:
            return  # locks are only ever extended
        policy = ImmutabilityPolicy(expiry_time=until, policy_mode="Locked" if mode == "locked" else "Unlocked")
        try:
            self.container.get_blob_client(key).set_immutability_policy(policy)
        except AzureError as error:
            raise self._fail("lock", key, error) from None

    def locked_until(self, key: str) -> datetime | None:
        if self.lock_support() is not None:
            return None
        try:
            policy = self.container.get_blob_client(key).get_blob_properties().immutability_policy
        except AzureError as error:
            raise self._fail("read the lock of", key, error) from None
        return policy.expiry_time if policy and policy.expiry_time else None
