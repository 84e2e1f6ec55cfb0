"""Verify: re-read a stack's backups from its store and prove every chunk read by its id (and, in an encrypted
store, its authentication tag). Weekly, with a sample, next to the nightly backup; on demand for all of it."""

from prefect import flow
from prefect.artifacts import create_table_artifact

from blocks import resolve
from flows.report import StageReport
from incarnate import log_archive, stages
from incarnate.backup_format import VOLUMES, Sample, find_snapshot, scan_snapshots
from incarnate.errors import IntegrityError, StoreError
from incarnate.fleet import report_key
from incarnate.repo import load_customer_config
from tasks.chores import verify


@flow(name="verify", log_prints=True)
def verify_stack(repo: str, snapshot: str | None = None, every: bool = False, sample: str | None = None) -> dict:
    """Re-read the stack's newest snapshot (or a chosen one, or all of them) and check every chunk; with `sample`,
    a random share of the chunks of every snapshot, as `restic check --read-data-subset` does.

    Args:
        repo: the customer repo (git URL or path); its stack.yaml names the stack and its store.
        snapshot: id of the snapshot to verify; empty for the newest.
        every: verify every snapshot of the stack.
        sample: a percentage (10%) or a byte budget (500M, 2G) of the chunks of every snapshot; empty reads all.
    """
    report = StageReport("verify")
    with report.stage(stages.load_config.NAME) as row:
        config = load_customer_config(repo).config
        store = resolve.backup_store(config)
        share = Sample.parse(sample) if sample else None
        everything = every or (share is not None and snapshot is None)
        if snapshot:  # that one only: find_snapshot says why it cannot be read
            chosen, unreadable = [find_snapshot(store, config.stack, snapshot)], []
        else:  # every manifest of the stack that cannot be read is a problem, whichever snapshots are re-read
            readable, unreadable = scan_snapshots(store, config.stack)
            chosen = readable if everything else readable[-1:]
        pieces, bad_pieces = log_archive.pieces_of(store, config.stack) if not snapshot else ([], [])
        volumes, bad_volumes = scan_snapshots(store, config.stack, VOLUMES) if not snapshot else ([], [])
        unreadable += bad_volumes
        if not chosen and not unreadable:
            raise StoreError(f"stack {config.stack} has no snapshot in {store.location} to verify.")
        row["detail"] = (
            f"{len(chosen)} snapshot{'s' if len(chosen) > 1 else ''}, {len(volumes)} snapshots of volumes and "
            f"{len(pieces)} archived log pieces, {sample or 'every chunk'}; {store.describe()}"
        )
        pieces += [
            (f"snapshot of volumes {found.id}, artifact {artifact.name}", artifact)
            for found in volumes
            for artifact in found.manifest.artifacts
        ]
    report.stack = config.stack
    with report.stage("verify") as row:
        result = verify(store, chosen, share, pieces)
        problems = [f"snapshot {bad.id}: its manifest cannot be read ({bad.reason})" for bad in unreadable]
        problems += bad_pieces
        problems += result.problems
        row["detail"] = f"{result.chunks_read} of {result.chunks_total} chunks, {result.bytes_read:,} bytes: " + (
            "all good" if not problems else f"{len(problems)} bad"
        )
    report.publish()
    create_table_artifact(
        key=report_key("verify-report", config.stack),
        table=[
            {"snapshot": found.id, "release": found.manifest.release, "created": found.manifest.created_at}
            for found in chosen
        ]
        + [{"snapshot": "problem", "release": "", "created": problem} for problem in problems],
        description=row["detail"],
    )
    for problem in problems:
        print(problem)
    if unreadable:
        raise IntegrityError(
            f"stack {config.stack}: {len(unreadable)} snapshot manifest{'s' if len(unreadable) > 1 else ''} in "
            f"{store.location} cannot be read ({', '.join(bad.id for bad in unreadable)}); first: {problems[0]}"
        )
    if result.problems or bad_pieces:
        raise IntegrityError(
            f"stack {config.stack}: {len(result.problems)} of {result.chunks_read} chunks read in "
            f"{store.location} are missing or corrupt, {len(bad_pieces)} archived log pieces cannot be read; first: "
            f"{(bad_pieces + result.problems)[0]}"
        )
    print(
        f"stack {config.stack}: {len(chosen)} snapshot{'s' if len(chosen) > 1 else ''} verified in {store.location}, "
        f"{row['detail']}"
    )
    return {
        "stack": config.stack,
        "snapshots": [found.id for found in chosen],
        "chunks_read": result.chunks_read,
        "chunks_total": result.chunks_total,
        "bytes_read": result.bytes_read,
        "problems": problems,
    }
