"""The run report: each stage's duration and outcome, published as a Prefect table artifact."""

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prefect.artifacts import create_table_artifact


class StageReport:
    """Times the stages of one flow run; publishes on success and on the failure that ends it."""

    def __init__(self, flow: str) -> None:
        self.flow = flow
        self.stack: str | None = None
        self.rows: list[dict[str, str]] = []
        self.started = time.monotonic()

    @contextmanager
    def stage(self, name: str) -> Iterator[dict[str, str]]:
        row = {"stage": name, "seconds": "", "result": "running", "detail": ""}
        self.rows.append(row)
        began = time.monotonic()
        try:
            yield row
        except BaseException as error:
            row.update(seconds=f"{time.monotonic() - began:.1f}", result="failed", detail=str(error))
            self.publish()
            raise
        row.update(seconds=f"{time.monotonic() - began:.1f}", result="ok")

    def durations(self) -> dict[str, float]:
        return {row["stage"]: float(row["seconds"]) for row in self.rows if row["seconds"]}

    def publish(self) -> None:
        total = {"stage": "total", "seconds": f"{time.monotonic() - self.started:.1f}",
                 "result": "failed" if any(row["result"] == "failed" for row in self.rows) else "ok", "detail": ""}
        key = re.sub(r"[^a-z0-9-]+", "-", f"{self.flow}-{self.stack or 'unknown'}".lower())
        create_table_artifact(key=key, table=[*self.rows, total], description=f"{self.flow} of stack {self.stack or '?'}: stages and durations")
