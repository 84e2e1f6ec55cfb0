"""Client-side encryption of a customer store, on a directory store with an in-memory vault (the flows' vault is a
Prefect Secret block; tests/e2e/test_encryption.py runs it against the real server and stores)."""

import io
import json
import os

import pytest
import zstandard

from incarnate.backup_format import (
    Sample,
    SnapshotWriter,
    chunk_key,
    copy_snapshot,
    list_snapshots,
    new_snapshot_prefix,
    restore_artifact,
    scan_snapshots,
    verify_chunks,
    verify_snapshot,
)
from incarnate.encryption import MAGIC, SealingCodec, unwrap
from incarnate.errors import ConfigError, IntegrityError
from incarnate.stores.local import LocalStore
from incarnate.stores.sealed import CONFIG, SealedStore, encryption_of
from tests.memory_vault import MemoryVault

FIELDS = {
    "stack": "acme",
    "product": "demo",
    "release": "1.0.0",
    "schema_version": 1,
    "config_commit": "abc",
    "origin": "backup",
}
MARKER = b"customer-secret-marker-4711"


def sealed(path, vault: MemoryVault, encrypt_new: bool = True) -> SealedStore:
    store = SealedStore(LocalStore(path), lambda: vault, encrypt_new)
    store.announce = lambda line: None
    return store


def payload(size: int = 3 << 20) -> bytes:
    text = (MARKER + b" row of a customer's table\n") * (size // 60)
    return text + os.urandom(size // 2)


def back_up(store, data: bytes, stack: str = "acme"):
    with SnapshotWriter(store, new_snapshot_prefix(stack)) as writer:
        writer.add("database-demo", "database", "demo", "mariadb", io.BytesIO(data))
        writer.add("volume-files", "volume", "files", None, io.BytesIO(MARKER * 1000))
        return writer.commit(**{**FIELDS, "stack": stack}), writer.stats


def read_back(store, snapshot, name: str = "database-demo") -> bytes:
    out = io.BytesIO()
    restore_artifact(store, snapshot, snapshot.manifest.artifact(name), lambda raw: out.write(raw.read()))
    return out.getvalue()


def every_object_opened(root) -> list[bytes]:
    """Each stored object as an attacker with read access sees it, decompressed where it decompresses."""
    seen = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            try:
                data = zstandard.ZstdDecompressor().decompress(data, max_output_size=64 << 20)
            except zstandard.ZstdError:
                pass
            seen.append(data)
    return seen


def test_a_new_store_is_encrypted_and_nothing_in_it_reveals_the_data(tmp_path):
    vault = MemoryVault()
    store = sealed(tmp_path, vault)
    data = payload()
    snapshot, _ = back_up(store, data)
    assert read_back(store, snapshot) == data
    assert encryption_of(store).startswith("encrypted (AES-256-GCM")
    assert not any(MARKER in blob for blob in every_object_opened(tmp_path))
    chunk_id = snapshot.manifest.artifacts[0].chunks[0][0]
    assert (tmp_path / chunk_key(chunk_id)).read_bytes().startswith(MAGIC)
    (tmp_path / "plain").mkdir()
    unencrypted, _ = back_up(LocalStore(tmp_path / "plain"), data)
    assert snapshot.manifest.chunk_ids().isdisjoint(unencrypted.manifest.chunk_ids())  # names reveal no content hash
    assert json.loads((tmp_path / CONFIG).read_text())["cipher"] == "AES-256-GCM"
    kept = next(iter(vault.kept.values()))
    assert set(kept) >= {"master_key", "passphrase"}
    assert kept["passphrase"].encode() not in b"".join(every_object_opened(tmp_path))


def test_deduplication_works_within_an_encrypted_store(tmp_path):
    store = sealed(tmp_path, MemoryVault())
    data = payload()
    first, first_stats = back_up(store, data)
    again, again_stats = back_up(store, data)
    assert first_stats.new_bytes > 0 and again_stats.new_bytes == 0
    assert again.manifest.chunk_ids() == first.manifest.chunk_ids()


def test_a_flipped_byte_in_a_chunk_or_a_manifest_is_named(tmp_path):
    store = sealed(tmp_path, MemoryVault())
    snapshot, _ = back_up(store, payload())
    chunk_id = snapshot.manifest.artifacts[0].chunks[1][0]
    chunk = tmp_path / chunk_key(chunk_id)
    raw = bytearray(chunk.read_bytes())
    raw[40] ^= 1
    chunk.write_bytes(bytes(raw))
    problems = verify_snapshot(store, snapshot)
    assert problems == [
        f"snapshot {snapshot.id}, artifact database-demo, chunk {chunk_id}: corrupt (fails authentication) "
        f"in store {tmp_path}."
    ]
    with pytest.raises(IntegrityError, match=f"chunk {chunk_id}: corrupt"):
        read_back(store, snapshot)
    manifest = tmp_path / snapshot.prefix / "manifest.json"
    raw = bytearray(manifest.read_bytes())
    raw[-3] ^= 1
    manifest.write_bytes(bytes(raw))
    fresh = sealed(tmp_path, MemoryVault())
    fresh._vault = store._vault
    snapshots, unreadable = scan_snapshots(fresh, "acme")
    assert snapshots == [] and "fails authentication" in unreadable[0].reason


def test_recovery_from_the_store_and_its_passphrase_alone(tmp_path):
    vault = MemoryVault()
    store = sealed(tmp_path, vault)
    data = payload(1 << 20)
    snapshot, _ = back_up(store, data)
    store_id, passphrase = store.recovery_material()
    with pytest.raises(ConfigError, match="printed on .* already; pass --again"):
        store.recovery_material()
    assert store.recovery_material(again=True) == (store_id, passphrase)

    lost = MemoryVault()  # the Prefect server is gone
    with pytest.raises(
        ConfigError, match=r"is encrypted and its key \(vault entry .*\) is missing; .*`incarnate key import"
    ):
        list_snapshots(sealed(tmp_path, lost), "acme")
    with pytest.raises(ConfigError, match="the passphrase opens none of the key files .*nothing was written"):
        sealed(tmp_path, lost).import_key("WRONG-PASS")
    assert lost.kept == {}
    sealed(tmp_path, lost).import_key(passphrase)
    recovered = sealed(tmp_path, lost)
    assert read_back(recovered, list_snapshots(recovered, "acme")[-1]) == data


def test_a_key_that_does_not_belong_to_the_store_is_refused(tmp_path):
    vault = MemoryVault()
    back_up(sealed(tmp_path, vault), b"x" * 1000)
    name = next(iter(vault.kept))
    other = MemoryVault()
    (tmp_path / "other").mkdir()
    back_up(sealed(tmp_path / "other", other), b"y" * 1000)
    vault.kept[name]["master_key"] = next(iter(other.kept.values()))["master_key"]
    before = sorted(path for path in tmp_path.rglob("*"))
    with pytest.raises(ConfigError, match="does not open store .*key check differs"):
        back_up(sealed(tmp_path, vault), b"z" * 1000)
    assert sorted(path for path in tmp_path.rglob("*")) == before  # nothing written


def test_stores_written_before_encryption_stay_plain_and_say_so(tmp_path):
    plain = LocalStore(tmp_path)
    old, _ = back_up(plain, b"old data " * 1000)
    store = sealed(tmp_path, MemoryVault())
    assert [snapshot.id for snapshot in list_snapshots(store, "acme")] == [old.id]
    newer, _ = back_up(store, b"new data " * 1000)
    assert encryption_of(store) == "not encrypted" and not (tmp_path / CONFIG).exists()
    assert read_back(store, newer) == b"new data " * 1000
    (tmp_path / "off").mkdir()
    off = sealed(tmp_path / "off", MemoryVault(), encrypt_new=False)
    assert encryption_of(off).startswith("empty (not encrypted")
    back_up(off, b"data")
    assert encryption_of(off) == "not encrypted"


def test_vanilla_chunks_are_rekeyed_when_copied_into_an_encrypted_store(tmp_path):
    (tmp_path / "releases").mkdir()
    releases = LocalStore(tmp_path / "releases")
    data = payload(2 << 20)
    vanilla, _ = back_up(releases, data, stack="vanilla")
    (tmp_path / "customer").mkdir()
    store = sealed(tmp_path / "customer", MemoryVault())
    copied = copy_snapshot(releases, vanilla, store, "acme", origin="vanilla")
    assert copied.manifest.chunk_ids().isdisjoint(vanilla.manifest.chunk_ids())
    assert read_back(store, copied) == data
    _, stats = back_up(store, data)  # the customer's first night: the same data costs nothing
    assert stats.new_bytes == 0
    assert not any(MARKER in blob for blob in every_object_opened(tmp_path / "customer"))


def test_two_runs_that_initialise_one_store_at_once_end_with_one_key(tmp_path):
    vault = MemoryVault()
    first, second = sealed(tmp_path, vault), sealed(tmp_path, vault)
    back_up(first, b"a" * 5000)
    codec = second._initialise()  # lost the race: its config is refused, the winner's key is used
    assert codec.fingerprint == first.codec().fingerprint
    assert len(list((tmp_path / "keys").iterdir())) == 3  # the config, the winner's key file, and the loser's, unused


def test_key_files_unwrap_only_with_their_passphrase_and_an_operators_own_is_added_beside(tmp_path):
    store = sealed(tmp_path, MemoryVault())
    back_up(store, b"a")
    _, passphrase = store.recovery_material()
    key_file = next(path for path in (tmp_path / "keys").iterdir() if path.name != "config.json")
    master = unwrap(json.loads(key_file.read_text()), passphrase)
    assert SealingCodec(master).fingerprint == store.codec().fingerprint
    with pytest.raises(ConfigError, match="at least 12 characters"):
        store.add_passphrase("short")
    before = {path.name: path.read_bytes() for path in (tmp_path / "keys").iterdir()}
    store.add_passphrase("correct horse battery staple")
    after = {path.name: path.read_bytes() for path in (tmp_path / "keys").iterdir()}
    assert len(after) == len(before) + 1 and all(
        after[name] == data for name, data in before.items()
    )  # nothing rewritten
    for words in (passphrase, "correct horse battery staple"):
        lost = MemoryVault()
        sealed(tmp_path, lost).import_key(words)
        assert lost.kept


def test_a_sample_reads_a_share_of_the_chunks(tmp_path):
    store = sealed(tmp_path, MemoryVault())
    snapshot, _ = back_up(store, os.urandom(12 << 20))
    everything = verify_chunks(store, [snapshot])
    tenth = verify_chunks(store, [snapshot], Sample.parse("10%"))
    budget = verify_chunks(store, [snapshot], Sample.parse("3M"))
    assert everything.chunks_read == everything.chunks_total > 6 and everything.problems == []
    assert tenth.chunks_read == max(1, round(everything.chunks_total / 10))
    assert 1 <= budget.chunks_read < everything.chunks_total and budget.bytes_read <= 3 << 20 or budget.chunks_read == 1
    for bad in ("0%", "120%", "lots", "-5M"):
        with pytest.raises(ConfigError, match="expected a percentage such as 10%"):
            Sample.parse(bad)


def test_deleting_the_config_of_an_encrypted_store_never_makes_it_plain(tmp_path):
    """Without keys/config.json the store looked written before encryption, and the next backup went in plain. The
    store's key files, the vault's memory of the store's location, or its sealed manifests say otherwise: refused,
    nothing written, and `incarnate key import` puts the config back from a key file and the passphrase."""
    vault = MemoryVault()
    store = sealed(tmp_path, vault)
    old, _ = back_up(store, payload(1 << 20))
    _, passphrase = store.recovery_material()
    (tmp_path / CONFIG).unlink()
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(
        IntegrityError, match=rf"{CONFIG} is missing, but the store was encrypted .*`incarnate key import"
    ):
        back_up(sealed(tmp_path, vault), MARKER * 1000)
    readable, unreadable = scan_snapshots(sealed(tmp_path, vault), "acme")  # each named, with why
    assert readable == [] and [bad.id for bad in unreadable] == [old.id] and "was encrypted" in unreadable[0].reason
    assert sorted(tmp_path.rglob("*")) == before  # nothing written

    sealed(tmp_path, MemoryVault()).import_key(passphrase)  # even with the vault lost too
    again = sealed(tmp_path, vault)
    newer, _ = back_up(again, MARKER * 1000)
    assert encryption_of(again).startswith("encrypted")
    assert not any(MARKER in path.read_bytes() for path in tmp_path.rglob("*") if path.is_file())
    assert [snapshot.id for snapshot in list_snapshots(again, "acme")] == [old.id, newer.id]


@pytest.mark.parametrize("vault_kept", [True, False], ids=["vault-remembers", "vault-lost"])
def test_an_encrypted_store_without_config_or_key_files_is_still_never_plain(tmp_path, vault_kept):
    """What says it was encrypted when the store lost its keys/ folder: the vault's memory of this location, and
    without the vault, the sealed manifests themselves."""
    vault = MemoryVault()
    back_up(sealed(tmp_path, vault), payload(1 << 20))
    for path in (tmp_path / "keys").iterdir():
        path.unlink()
    with pytest.raises(IntegrityError, match="was encrypted"):
        back_up(sealed(tmp_path, vault if vault_kept else MemoryVault()), MARKER * 1000)
    assert not any(MARKER in path.read_bytes() for path in tmp_path.rglob("*") if path.is_file())
