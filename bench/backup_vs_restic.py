"""Benchmark: incarnate's chunked backups against restic, on the same nightly dumps, in one run.

    .venv/bin/python bench/backup_vs_restic.py [--rows 500000] [--nights 7]

Each night a synthetic SQL dump changes a few percent (recent rows edited, new rows added),
is written to a file, then backed up by incarnate (FastCDC chunks, zstd, local store) and by
restic (Debian package, `backup --stdin`, repository v2 with compression), both reading the
same bytes. Prints wall time and stored bytes per night and the ratios incarnate / restic.
Target: both ratios at or below 1.0.
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from incarnate.backup_format import SnapshotWriter, new_snapshot_prefix  # noqa: E402
from incarnate.stores.local import LocalStore  # noqa: E402


def dump(rows: int, night: int) -> bytes:
    """An extended-INSERT dump like mariadb-dump's; night N edits and appends as a busy day would."""
    lines, batch = [b"CREATE TABLE records (id INT PRIMARY KEY, title VARCHAR(200));\n"], []
    total = rows + 2000 * (night - 1)
    for row in range(1, total + 1):
        title = f"record {row} {hashlib.md5(str(row).encode()).hexdigest()}"
        for past in range(2, night + 1):
            first = rows - past * 4000
            if first <= row <= first + 3000:
                title += f" edited night {past}"
        batch.append(f"({row},'{title}')")
        if len(batch) == 2000:
            lines.append(("INSERT INTO records VALUES " + ",".join(batch) + ";\n").encode())
            batch = []
    if batch:
        lines.append(("INSERT INTO records VALUES " + ",".join(batch) + ";\n").encode())
    return b"".join(lines)


def size_of(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--nights", type=int, default=7)
    args = parser.parse_args()
    if not shutil.which("restic"):
        print("restic is missing: apt-get install restic (scripts/services.sh installs it)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        root = Path(scratch)
        ours, theirs, dumpfile = root / "incarnate", root / "restic", root / "dump.sql"
        ours.mkdir()
        env = {
            **os.environ,
            "RESTIC_PASSWORD": "bench",
            "RESTIC_REPOSITORY": str(theirs),
            "RESTIC_CACHE_DIR": str(root / "cache"),
        }
        subprocess.run(["restic", "init", "--repository-version", "2"], env=env, check=True, capture_output=True)
        store = LocalStore(ours)
        totals = {"ours_s": 0.0, "theirs_s": 0.0}
        print(f"{'night':>5} {'dump MB':>8} {'incarnate s':>12} {'restic s':>9} {'incarnate MB':>13} {'restic MB':>10}")
        for night in range(1, args.nights + 1):
            dumpfile.write_bytes(dump(args.rows, night))
            subprocess.run(
                ["cat", str(dumpfile)], stdout=subprocess.DEVNULL, check=True
            )  # both start from the page cache

            began = time.perf_counter()
            with SnapshotWriter(store, new_snapshot_prefix("bench")) as writer, open(dumpfile, "rb") as source:
                writer.add("database-bench", "database", "bench", "mariadb", source)
                writer.commit(
                    stack="bench",
                    product="bench",
                    release="1.0.0",
                    schema_version=1,
                    config_commit=None,
                    origin="backup",
                )
            ours_s = time.perf_counter() - began

            began = time.perf_counter()
            with open(dumpfile, "rb") as source:
                subprocess.run(
                    ["restic", "backup", "--quiet", "--stdin", "--stdin-filename", "dump.sql"],
                    stdin=source,
                    env=env,
                    check=True,
                    capture_output=True,
                )
            theirs_s = time.perf_counter() - began

            totals["ours_s"] += ours_s
            totals["theirs_s"] += theirs_s
            print(
                f"{night:>5} {dumpfile.stat().st_size / 1e6:>8.1f} {ours_s:>12.2f} {theirs_s:>9.2f} "
                f"{size_of(ours) / 1e6:>13.2f} {size_of(theirs) / 1e6:>10.2f}"
            )
        ours_bytes, theirs_bytes = size_of(ours), size_of(theirs)
        print(f"\nafter {args.nights} nights of {args.rows:,} rows:")
        print(
            f"  wall time    incarnate {totals['ours_s']:.2f} s, restic {totals['theirs_s']:.2f} s, "
            f"ratio {totals['ours_s'] / totals['theirs_s']:.2f}"
        )
        print(
            f"  stored bytes incarnate {ours_bytes:,}, restic {theirs_bytes:,}, ratio {ours_bytes / theirs_bytes:.2f}"
        )
        print(
            f"  incarnate stored {ours_bytes / (dumpfile.stat().st_size * args.nights):.3f} of {args.nights} raw dumps"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
