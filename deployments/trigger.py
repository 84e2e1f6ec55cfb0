"""Trigger a deployment from CI: start a run, stream its state, exit 0 only if it completed."""

import json
import time
from collections.abc import Callable
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

from deployments.stacks import resolve
from incarnate.errors import ConfigError

FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def parse_params(pairs: list[str]) -> dict[str, object]:
    """`k=v` pairs; a value that is JSON (numbers, true, lists, objects) is taken as such, else as text."""
    params: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param {pair!r}: expected NAME=VALUE.")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def ui_url(flow_run_id: UUID) -> str:
    base = PREFECT_UI_URL.value() or (PREFECT_API_URL.value() or "").removesuffix("/api")
    return f"{base}/runs/flow-run/{flow_run_id}"


def trigger(name: str, params: dict[str, object], wait: bool, say: Callable[[str], None] = print) -> bool:
    """Start a run of `FLOW/STACK` or `FLOW/DEPLOYMENT`; with `wait`, follow it to the end. True when it completed."""
    with get_client(sync_client=True) as client:
        deployment, params = resolve(client, name, params)
        allowed = set((deployment.parameter_openapi_schema or {}).get("properties", {}))
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise ConfigError(
                f"deployment {name} has no parameter {', '.join(unknown)}; its parameters: "
                f"{', '.join(sorted(allowed))}."
            )
    flow_run = run_deployment(deployment.id, parameters=params, timeout=0)
    say(f"started {name}: flow run {flow_run.name} {ui_url(flow_run.id)}")
    if not wait:
        return True
    last = None
    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(flow_run.id).state
            if state and state.name != last:
                say(f"  {state.name}{': ' + state.message if state.message and state.type.value in FINAL else ''}")
                last = state.name
            if state and state.type.value in FINAL:
                return state.type.value == "COMPLETED"
            time.sleep(1)
