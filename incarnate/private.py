"""What incarnate writes on a machine is private to its owner, whatever the umask: folders 0700, files 0600.

Backups, a stack's env file and state hold customer data and secrets; another local user must read none of it.
"""

import os
import secrets
from pathlib import Path


def private_dir(path: Path) -> Path:
    """Create `path` and each missing parent as 0700 (folders that exist already are left as they are)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made meanwhile by another writer
        os.chmod(folder, 0o700)  # mkdir's mode is narrowed by the umask only; 0700 is wanted exactly
    return missing[0] if missing else path


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` whole with `data` as a 0600 file: a reader sees the old content or the new, never half."""
    private_dir(path.parent)
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    try:
        with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
            handle.write(data)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
