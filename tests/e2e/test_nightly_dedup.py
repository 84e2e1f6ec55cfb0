"""Seven nightly backups of a changing database: chunks stored once keep the store far below seven full copies."""

import os
import subprocess


def sql(container: str, statement: str) -> None:
    subprocess.run(["docker", "exec", container, "mariadb", "demo", "-e", statement], check=True, capture_output=True)


def stored_bytes(store) -> int:
    chunks = store / "chunks"
    return sum(path.stat().st_size for path in chunks.rglob("*") if path.is_file()) if chunks.exists() else 0


def test_seven_nights_changing_a_few_percent_store_far_less_than_seven_full_copies(customer):
    assert customer.install().returncode == 0
    db = f"{customer.stack}-db-1"
    rows = 200_000
    sql(db, f"INSERT INTO records (title) SELECT CONCAT('record ', seq, ' ', MD5(seq)) FROM seq_1_to_{rows}")
    customer.request("PUT", "/files/report.bin", os.urandom(4 << 20))

    before = stored_bytes(customer.store)
    added = []
    for night in range(1, 8):
        if night > 1:  # a few percent change each night: recent records edited, new ones added
            first = rows - night * 4000
            sql(
                db,
                f"UPDATE records SET title = CONCAT(title, ' edited night {night}') WHERE id BETWEEN {first} AND "
                f"{first + 3000}",
            )
            sql(db, f"INSERT INTO records (title) SELECT CONCAT('night {night} record ', seq) FROM seq_1_to_2000")
        start = stored_bytes(customer.store)
        result = customer.incarnate("backup", str(customer.repo))
        assert result.returncode == 0, result.stderr[-2000:]
        added.append(stored_bytes(customer.store) - start)

    full_copy, total = added[0], stored_bytes(customer.store) - before
    print(
        f"\nseven nights: first (full) {full_copy:,} bytes, all seven {total:,} bytes, "
        f"{total / (7 * full_copy):.2f} of seven full copies"
    )
    assert total < 7 * full_copy * 0.4
