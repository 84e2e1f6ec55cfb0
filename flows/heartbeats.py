"""Prefect's flow-run heartbeat thread sleeps in whole seconds, and the synchronous engine joins it when a flow ends:
every flow and subflow ended up to a second late (0.5 s on average, of a backup command's fixed cost). The engine
already has the switch it uses for async flows, not to join; use it for ours too. The thread is a daemon, its stop
event is set before the join would have been, and it ends within a second on its own without emitting again.

Imported by flows/__init__.py, so every process that runs a flow (the CLI, a served run's subprocess) has it."""

import inspect
from collections.abc import Callable
from typing import Any

import prefect.flow_engine

_prefect_send_heartbeats: Callable[..., Any] = prefect.flow_engine._send_heartbeats


def _send_heartbeats_unjoined(engine: Any, join_on_exit: bool = True) -> Any:
    return _prefect_send_heartbeats(engine, join_on_exit=False)


def can_unjoin() -> bool:
    """Whether this Prefect's engine has the switch (tests/unit/test_prefect_heartbeats.py fails on one without)."""
    return "join_on_exit" in inspect.signature(_prefect_send_heartbeats).parameters


if can_unjoin():
    prefect.flow_engine._send_heartbeats = _send_heartbeats_unjoined
