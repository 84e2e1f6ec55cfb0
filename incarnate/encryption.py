"""Client-side encryption of a backup store: what the objects look like, never where keys are kept.

One random 256-bit master key per store. From it (HKDF-SHA-256) come an AES-256-GCM key that seals every chunk and
manifest, and an HMAC-SHA-256 key that names chunks: the store sees neither content nor content hashes, and the same
chunk still gets the same name, so deduplication within the store keeps working.

    sealed object = MAGIC | 12-byte random nonce | AES-256-GCM(plaintext, associated data = the object's key)

Binding the object's key into the tag means a chunk copied or renamed onto another name fails authentication. The
master key is kept by a vault (a Prefect Secret block) and, for recovery without it, in the store as a key file
wrapped by a passphrase (scrypt). Nothing here ever rewrites an object: a new passphrase is a new key file.
"""

import base64
import hashlib
import hmac
import os
import secrets
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from incarnate.errors import ConfigError

MAGIC = b"INC\x01"  # format 1: AES-256-GCM, 12-byte nonce
NONCE = 12
CIPHER = "AES-256-GCM"
CHUNK_IDS = "HMAC-SHA-256"
SCRYPT = {"n": 1 << 16, "r": 8, "p": 1}  # 64 MiB and ~0.2 s per try: cheap once, dear for a guesser


class SealBroken(Exception):
    """A sealed object does not authenticate: flipped, truncated, renamed, or sealed with another key."""


class Codec(Protocol):
    """How a store names chunks and turns objects into stored bytes."""

    encrypted: bool
    fingerprint: str  # equal for two codecs that name chunks alike

    def chunk_id(self, data: bytes) -> str: ...

    def seal(self, key: str, data: bytes) -> bytes: ...

    def open(self, key: str, stored: bytes) -> bytes:
        """The plaintext of a stored object; SealBroken when it does not authenticate."""


class PlainCodec:
    """Stores written before encryption, and release stores (a vendor's vanilla data is not a customer's)."""

    encrypted = False
    fingerprint = "sha256"

    def chunk_id(self, data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    def seal(self, key: str, data: bytes) -> bytes:
        return data

    def open(self, key: str, stored: bytes) -> bytes:
        return stored


PLAIN = PlainCodec()


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"incarnate store " + purpose).derive(master)


class SealingCodec:
    encrypted = True

    def __init__(self, master: bytes) -> None:
        if len(master) != 32:
            raise ValueError("a store master key is 32 bytes")
        self._aead = AESGCM(_derive(master, b"sealing"))
        self._id_key = _derive(master, b"chunk ids")
        self.fingerprint = self.key_check()

    def chunk_id(self, data: bytes) -> str:
        return hmac.new(self._id_key, data, hashlib.sha256).hexdigest()

    def key_check(self) -> str:
        """Published in the store's config: proves a key belongs to the store without revealing it."""
        return hmac.new(self._id_key, b"incarnate key check", hashlib.sha256).hexdigest()

    def seal(self, key: str, data: bytes) -> bytes:
        nonce = os.urandom(NONCE)
        return MAGIC + nonce + self._aead.encrypt(nonce, data, key.encode())

    def open(self, key: str, stored: bytes) -> bytes:
        if not stored.startswith(MAGIC) or len(stored) < len(MAGIC) + NONCE + 16:
            raise SealBroken("not a sealed object")
        nonce = stored[len(MAGIC) : len(MAGIC) + NONCE]
        try:
            return self._aead.decrypt(nonce, stored[len(MAGIC) + NONCE :], key.encode())
        except InvalidTag:
            raise SealBroken("fails authentication") from None


def new_master_key() -> bytes:
    return secrets.token_bytes(32)


def new_passphrase() -> str:
    """160 random bits as eight groups of four letters and digits: read aloud, typed, printed on paper."""
    text = base64.b32encode(secrets.token_bytes(20)).decode()
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _kek(passphrase: str, salt: bytes, params: dict[str, int]) -> AESGCM:
    return AESGCM(Scrypt(salt=salt, length=32, **params).derive(passphrase.encode()))


KEY_FILE_CONTEXT = b"incarnate key file"


def wrap(master: bytes, passphrase: str) -> dict[str, object]:
    """A key file: the master key sealed by a key derived from the passphrase, with what it takes to derive it."""
    salt, nonce = os.urandom(16), os.urandom(NONCE)
    sealed = _kek(passphrase, salt, SCRYPT).encrypt(nonce, master, KEY_FILE_CONTEXT)
    return {
        "kdf": "scrypt",
        **SCRYPT,
        "salt": _b64(salt),
        "cipher": CIPHER,
        "nonce": _b64(nonce),
        "sealed_key": _b64(sealed),
    }


class WrongPassphrase(Exception):
    """The passphrase opens none of the store's key files."""


def unwrap(key_file: dict, passphrase: str) -> bytes:
    """The master key in a key file; WrongPassphrase when the passphrase does not open it."""
    try:
        params = {name: int(key_file[name]) for name in ("n", "r", "p")}
        salt, nonce, sealed = (base64.b64decode(key_file[name]) for name in ("salt", "nonce", "sealed_key"))
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            "a key file of the store is not valid (fields kdf, n, r, p, salt, nonce, sealed_key); "
            "it was not written by incarnate."
        ) from None
    try:
        return _kek(passphrase, salt, params).decrypt(nonce, sealed, KEY_FILE_CONTEXT)
    except InvalidTag:
        raise WrongPassphrase() from None


def encode_key(master: bytes) -> str:
    return _b64(master)


def decode_key(text: str) -> bytes:
    return base64.b64decode(text)
