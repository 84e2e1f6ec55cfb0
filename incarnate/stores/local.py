"""A store in a local directory (or a mounted NFS path)."""

import os
import secrets
from pathlib import Path, PurePosixPath

from incarnate.errors import ObjectMissing, StoreError
from incarnate.private import private_dir
from incarnate.stores import Unlocked


class LocalStore(Unlocked):
    reason = "a local directory has no server-side immutability"

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    def _path(self, key: str) -> Path:
        relative = PurePosixPath(key)
        if relative.is_absolute() or ".." in relative.parts:
            raise StoreError(f"store {self.location}: key {key!r} would leave the store.")
        return self.root.joinpath(*relative.parts)

    def _check_root(self) -> None:
        if not self.root.is_dir():
            raise StoreError(f"store {self.location}: directory does not exist or is not mounted.")

    def put(self, key: str, data: bytes) -> bool:
        """Write a hidden temporary file, then link it into place: readers see all of it or nothing,
        and an existing object is never replaced (link fails where rename would overwrite)."""
        self._check_root()
        target = self._path(key)
        if target.exists():
            return False
        partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
        try:
            private_dir(target.parent)
            with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(partial, target)
            return True
        except FileExistsError:
            return False
        except OSError as error:
            raise StoreError(f"store {self.location}: cannot write {key} ({error.strerror}).") from None
        finally:
            partial.unlink(missing_ok=True)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(f"store {self.location}: {key} is missing.") from None
        except OSError as error:
            raise StoreError(f"store {self.location}: cannot read {key} ({error.strerror}).") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        self._check_root()
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(
            path.relative_to(self.root).as_posix()
            for path in base.rglob("*")
            if path.is_file() and not path.name.startswith(".")
        )

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
