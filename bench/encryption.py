"""Benchmark: what client-side encryption costs, on the same data, in one run.

    .venv/bin/python bench/encryption.py [--rows 500000] [--nights 7] [--mb 1024] [--rounds 3]

1. Deduplication: seven nights of a changing SQL dump (the dump of bench/backup_vs_restic.py) and a file volume
   that gains a little each night, backed up into a plain store and into an encrypted one; prints the stored
   bytes of each and the dedup ratio (raw bytes read / bytes stored), and encrypted / plain.
2. Throughput: one backup of `--mb` MB (half random, half text) into a fresh plain and a fresh encrypted store,
   best of `--rounds` each, alternating; prints MB/s and the ratio encrypted / plain (aim: at least 0.9).

Both stores are directories on this machine; the encrypted one keeps its key in a vault in memory.
"""

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from backup_vs_restic import dump, size_of  # noqa: E402

from incarnate.backup_format import SnapshotWriter, new_snapshot_prefix  # noqa: E402
from incarnate.stores.local import LocalStore  # noqa: E402
from incarnate.stores.sealed import SealedStore  # noqa: E402
from tests.memory_vault import MemoryVault  # noqa: E402

FIELDS = {
    "stack": "bench",
    "product": "demo",
    "release": "1.0.0",
    "schema_version": 1,
    "config_commit": None,
    "origin": "backup",
}


def stores(root: Path, name: str) -> tuple[LocalStore, SealedStore]:
    (root / f"{name}-plain").mkdir()
    (root / f"{name}-encrypted").mkdir()
    vault = MemoryVault()
    sealed = SealedStore(LocalStore(root / f"{name}-encrypted"), lambda: vault)
    sealed.announce = lambda line: None
    return LocalStore(root / f"{name}-plain"), sealed


def back_up(store, artifacts: dict[str, bytes]) -> tuple[float, int]:
    began = time.perf_counter()
    with SnapshotWriter(store, new_snapshot_prefix("bench")) as writer:
        for name, data in artifacts.items():
            writer.add(name, "volume", name, None, io.BytesIO(data))
        writer.commit(**FIELDS)
    return time.perf_counter() - began, writer.stats.raw_bytes


def mixed(megabytes: int, seed: int = 0) -> bytes:
    half = megabytes << 19
    text = b"".join(f"line {n} of a log file the app keeps, seed {seed}\n".encode() for n in range(half // 40))
    return os.urandom(half) + text[:half]


def dedup(root: Path, rows: int, nights: int) -> None:
    plain, sealed = stores(root, "nights")
    files = os.urandom(4 << 20)
    raw = 0
    for night in range(1, nights + 1):
        files += os.urandom(64 << 10)  # a few new files each day
        artifacts = {"database-demo": dump(rows, night), "volume-files": files}
        _, read = back_up(plain, artifacts)
        back_up(sealed, artifacts)
        raw += read
    plain_bytes, sealed_bytes = size_of(plain.root / "chunks"), size_of(sealed.raw.root / "chunks")
    print(
        f"{nights} nights, {raw:,} raw bytes read: plain store {plain_bytes:,} bytes (dedup {raw / plain_bytes:.2f}x), "
        f"encrypted store {sealed_bytes:,} bytes (dedup {raw / sealed_bytes:.2f}x)"
    )
    print(f"dedup ratio encrypted / plain = {(raw / sealed_bytes) / (raw / plain_bytes):.3f} (aim: within 2 % of 1)")


def throughput(root: Path, megabytes: int, rounds: int) -> None:
    data = mixed(megabytes)
    best = {"plain": float("inf"), "encrypted": float("inf")}
    for round_number in range(rounds):
        plain, sealed = stores(root, f"round{round_number}")
        for name, store in (
            (("plain", plain), ("encrypted", sealed))
            if round_number % 2 == 0
            else (("encrypted", sealed), ("plain", plain))
        ):
            seconds, _ = back_up(store, {"volume-files": data})
            best[name] = min(best[name], seconds)
    rate = {name: len(data) / seconds / 1e6 for name, seconds in best.items()}
    print(
        f"backup of {len(data):,} bytes, best of {rounds}: plain {best['plain']:.2f} s ({rate['plain']:.0f} MB/s), "
        f"encrypted {best['encrypted']:.2f} s ({rate['encrypted']:.0f} MB/s)"
    )
    print(f"throughput encrypted / plain = {rate['encrypted'] / rate['plain']:.2f} (aim: at least 0.90)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--nights", type=int, default=7)
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-encryption-") as scratch:
        dedup(Path(scratch), args.rows, args.nights)
        throughput(Path(scratch), args.mb, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
