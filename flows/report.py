"""Run reports as Prefect artifacts: stages with durations, and what a backup stored."""

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prefect.artifacts import create_table_artifact
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext

from incarnate.fleet import report_key
from incarnate.stages.backup import BackupResult

RENAMED = re.compile(r"^.* \((?P<generated>[^()]+)\)$")


def name_run(stack: str, release: str = "", product: str = "") -> None:
    """The flow run as an operator looks for it in the Runs list (beside its flow's name) and in alerts: `STACK
    [RELEASE] (its generated name)`, e.g. `acme 1.0.0→1.1.0 (fabulous-parrot)`, tagged `stack:`, `product:` and
    `release:` to filter by. Only a convenience: a server that refuses it leaves the run as it was."""
    context = FlowRunContext.get()
    run = context.flow_run if context else None
    if run is None:
        return
    renamed = RENAMED.fullmatch(run.name)  # a run retried after it was named keeps its generated name
    generated = renamed["generated"] if renamed else run.name
    name = " ".join(part for part in (stack, release) if part) + f" ({generated})"
    last = release.rsplit("→", 1)[-1]
    tags = {f"stack:{stack}", *([f"product:{product}"] if product else []), *([f"release:{last}"] if last else [])}
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(run.id, name=name, tags=sorted({*run.tags, *tags}))
    except Exception as error:  # noqa: BLE001 - the run itself must not fail for its name
        print(f"the run keeps its name {run.name} ({error})")


class StageReport:
    """Times the stages of one flow run; publishes on success and on the failure that ends it."""

    def __init__(self, flow: str) -> None:
        self.flow = flow
        self._stack: str | None = None
        self.rows: list[dict[str, str]] = []
        self.started = time.monotonic()

    @property
    def stack(self) -> str | None:
        return self._stack

    @stack.setter
    def stack(self, stack: str) -> None:
        """Whose run this is, once the flow knows: the run is named and tagged after the stack from then on."""
        if stack != self._stack:
            self._stack = stack
            name_run(stack)

    def about(self, stack: str, product: str, release: str) -> None:
        """Whose run this is and which release it deploys (`1.0.0`, or `1.0.0→1.1.0` for an update)."""
        self._stack = stack
        name_run(stack, release, product)

    @contextmanager
    def stage(self, name: str) -> Iterator[dict[str, str]]:
        row = {"stage": name, "seconds": "", "result": "running", "detail": ""}
        self.rows.append(row)
        began = time.monotonic()
        try:
            yield row
        except BaseException as error:
            row.update(seconds=f"{time.monotonic() - began:.1f}", result="failed", detail=str(error))
            self.say(row)
            self.publish()
            raise
        row.update(seconds=f"{time.monotonic() - began:.1f}", result="ok")
        self.say(row)

    def say(self, row: dict[str, str]) -> None:
        """One line per finished stage, so a terminal (and the run's log) follows the deployment."""
        detail = f": {row['detail']}" if row["detail"] and row["result"] == "ok" else ""
        print(
            f"{' '.join(filter(None, (self.flow, self.stack)))}: {row['stage']} {row['result']} ({row['seconds']} "
            f"s){detail}"
        )

    def passed(self, stage: str) -> bool:
        """Whether the stage ran and succeeded in this run."""
        return any(row["stage"] == stage and row["result"] == "ok" for row in self.rows)

    def durations(self) -> dict[str, float]:
        return {row["stage"]: float(row["seconds"]) for row in self.rows if row["seconds"]}

    def publish(self) -> None:
        total = {
            "stage": "total",
            "seconds": f"{time.monotonic() - self.started:.1f}",
            "result": "failed" if any(row["result"] == "failed" for row in self.rows) else "ok",
            "detail": "",
        }
        create_table_artifact(
            key=report_key(self.flow, self.stack or "unknown"),
            table=[*self.rows, total],
            description=f"{self.flow} of stack {self.stack or '?'}: stages and durations",
        )


def backup_rows(result: BackupResult) -> list[dict[str, str]]:
    """Per artifact: raw size, new bytes stored, dedup ratio; then the total with time and lock status."""
    rows = []
    for name, figures in result.stats.per_artifact.items():
        new = int(figures["new_bytes"])
        rows.append(
            {
                "artifact": name,
                "size": f"{int(figures['raw_bytes']):,}",
                "chunks": f"{int(figures['chunks'])}",
                "new bytes stored": f"{new:,}",
                "dedup ratio": _ratio(int(figures["raw_bytes"]), new),
                "seconds": "",
                "lock": "",
                "encryption": "",
            }
        )
    stats = result.stats
    rows.append(
        {
            "artifact": "total",
            "size": f"{stats.raw_bytes:,}",
            "chunks": f"{stats.chunks}",
            "new bytes stored": f"{stats.new_bytes:,}",
            "dedup ratio": _ratio(stats.raw_bytes, stats.new_bytes),
            "seconds": f"{result.seconds:.1f}",
            "lock": result.lock,
            "encryption": result.encryption,
        }
    )
    return rows


def _ratio(raw: int, new: int) -> str:
    return f"{raw / new:.1f}x" if new else "all reused"


def publish_backup(stack: str, result: BackupResult) -> None:
    create_table_artifact(
        key=report_key("backup-report", stack),
        table=backup_rows(result),
        description=f"snapshot {result.snapshot.id} of stack {stack}: {result.protection}",
    )
