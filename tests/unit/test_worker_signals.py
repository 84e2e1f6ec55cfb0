"""How `incarnate worker` takes its stop signals (deployments/worker.on_signals), with real signals to this process:
the first stops taking runs and lets those in progress finish; the second ends everything at once."""

import os
import signal

import anyio

from deployments.worker import on_signals


def test_first_signal_stops_taking_runs_second_ends_everything():
    seen: list[str] = []

    async def scenario() -> None:
        stopping = anyio.Event()
        async with anyio.create_task_group() as everything:
            everything.start_soon(on_signals, stopping, everything.cancel_scope)
            await anyio.sleep(0.1)  # the receiver is installed
            os.kill(os.getpid(), signal.SIGTERM)
            with anyio.fail_after(5):
                await stopping.wait()
            seen.append("stopping")
            os.kill(os.getpid(), signal.SIGINT)
            await anyio.sleep(5)  # a run in progress, ended by the second signal
            seen.append("never")
        seen.append("ended" if everything.cancel_scope.cancel_called else "not cancelled")

    anyio.run(scenario)
    assert seen == ["stopping", "ended"]
