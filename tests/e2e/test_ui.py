"""The operator's way: in a real browser (Debian's Chromium), open the Prefect UI, find the backup
deployment, press Run, choose the stack from its list, and see the run complete with its report artifact."""

import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId, FlowRunFilter, FlowRunFilterStartTime

from incarnate import settings

SCRIPT = Path(__file__).resolve().parent.parent / "browser" / "prefect_ui.mjs"
UI = os.environ.get("PREFECT_API_URL", "http://127.0.0.1:4200/api").removesuffix("/api")


def browser(*args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PLAYWRIGHT_CORE": str(settings.home() / "tools" / "playwright" / "node_modules" / "playwright-core"),
    }
    return subprocess.run(["node", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=600)


def test_operator_presses_run_in_the_ui_and_sees_the_completed_run_and_its_artifact(customer, served, tmp_path):
    pressed_at = datetime.now(UTC)
    pressed = browser("run", UI, served.name, "backup", str(customer.repo), str(tmp_path / "pressed.png"))
    assert pressed.returncode == 0, pressed.stderr + pressed.stdout

    deadline = time.monotonic() + 120
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[served.id])),
                flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=pressed_at)),
            )
            done = [run for run in runs if run.state and run.state.is_final()]
            if done:
                break
            assert time.monotonic() < deadline, "the run pressed in the UI did not finish within 120 s"
            time.sleep(1)
    run = done[0]
    assert run.state.is_completed(), run.state.message
    assert run.parameters["repo"] == str(customer.repo) and f"stack:{customer.stack}" in run.tags  # the stack chosen

    shown = browser("artifact", UI, str(run.id), f"backup-report--{customer.stack}", str(tmp_path / "artifact.png"))
    assert shown.returncode == 0, shown.stderr + shown.stdout
