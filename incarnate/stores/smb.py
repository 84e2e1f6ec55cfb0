"""A store on an SMB share (on-premises backups), through smbprotocol's smbclient."""

import secrets
from dataclasses import dataclass, field

import smbclient
from smbprotocol.exceptions import SMBException, SMBOSError

from incarnate.errors import ObjectMissing, StoreError
from incarnate.stores import Unlocked


@dataclass
class SmbSettings:
    server: str
    share: str
    path: str
    username: str
    password: str = field(repr=False)
    port: int = 445


class SmbStore(Unlocked):
    reason = "an SMB share has no server-side immutability incarnate can set"

    def __init__(self, settings: SmbSettings) -> None:
        self.settings = settings
        base = settings.path.strip("/\\").replace("/", "\\")
        self.root = f"\\\\{settings.server}\\{settings.share}" + (f"\\{base}" if base else "")
        self.location = f"smb://{settings.server}:{settings.port}/{settings.share}/{settings.path.strip('/')}".rstrip(
            "/"
        )
        # An own connection cache: smbclient's global one would reuse another store's session (and credentials).
        self._auth = {
            "username": settings.username,
            "password": settings.password,
            "port": settings.port,
            "connection_cache": {},
        }
        self._made: set[str] = set()

    def _path(self, key: str) -> str:
        parts = key.split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise StoreError(f"store {self.location}: key {key!r} would leave the store.")
        return self.root + "\\" + "\\".join(parts)

    def _fail(self, action: str, key: str, error: Exception) -> StoreError:
        return StoreError(
            f"store {self.location}: cannot {action} {key or 'its root'} ({error.__class__.__name__}: {error})."
        )

    def put(self, key: str, data: bytes) -> bool:
        """Write a hidden temporary file, then rename it; SMB's rename refuses to replace, so objects stay
        write-once."""
        target = self._path(key)
        folder, name = target.rsplit("\\", 1)
        partial = f"{folder}\\.{name}.{secrets.token_hex(4)}.partial"
        try:
            if folder not in self._made:
                smbclient.makedirs(folder, exist_ok=True, **self._auth)
                self._made.add(folder)
            if smbclient.path.exists(target, **self._auth):
                return False
            with smbclient.open_file(partial, mode="xb", **self._auth) as handle:
                handle.write(data)
            try:
                smbclient.rename(partial, target, **self._auth)
            except SMBOSError:
                if smbclient.path.exists(target, **self._auth):
                    return False  # another writer stored the same key first
                raise
            return True
        except (SMBException, OSError, ValueError) as error:
            raise self._fail("write", key, error) from None
        finally:
            try:
                smbclient.remove(partial, **self._auth)
            except (SMBException, OSError):
                pass

    def get(self, key: str) -> bytes:
        try:
            # Readers share delete and rename: a reader of a lock object must never stop its owner from removing it.
            with smbclient.open_file(self._path(key), mode="rb", share_access="rwd", **self._auth) as handle:
                return handle.read()
        except SMBOSError as error:
            if error.errno == 2:
                raise ObjectMissing(f"store {self.location}: {key} is missing.") from None
            raise self._fail("read", key, error) from None
        except (SMBException, OSError, ValueError) as error:
            raise self._fail("read", key, error) from None

    def exists(self, key: str) -> bool:
        try:
            return smbclient.path.isfile(self._path(key), **self._auth)
        except (SMBException, OSError, ValueError) as error:
            raise self._fail("look up", key, error) from None

    def list(self, prefix: str) -> list[str]:
        found: list[str] = []
        try:
            start = self._path(prefix) if prefix else self.root
            if not smbclient.path.isdir(start, **self._auth):
                return []
            pending = [(start, prefix)]
            while pending:
                folder, key = pending.pop()
                for entry in smbclient.scandir(folder, **self._auth):
                    if entry.name.startswith("."):
                        continue
                    child = f"{key}/{entry.name}" if key else entry.name
                    if entry.is_dir():
                        pending.append((f"{folder}\\{entry.name}", child))
                    else:
                        found.append(child)
        except (SMBException, OSError, ValueError) as error:
            raise self._fail("list", prefix, error) from None
        return sorted(found)

    def delete(self, key: str) -> None:
        try:
            smbclient.remove(self._path(key), **self._auth)
        except SMBOSError as error:
            if error.errno != 2:
                raise self._fail("delete", key, error) from None
        except (SMBException, OSError, ValueError) as error:
            raise self._fail("delete", key, error) from None
