"""A run of the `incarnate` command is whole in Prefect's history: the command leaves without the interpreter's
teardown (cli.main.run), so this proves that Prefect's log and event workers still send everything first."""

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId

from tests.e2e.conftest import flow_run_id


def test_a_command_s_run_ends_completed_with_its_last_log_line_in_the_history(customer):
    assert customer.install().returncode == 0
    backup = customer.incarnate("backup", str(customer.repo))
    assert backup.returncode == 0, backup.stderr[-3000:]
    run_id = flow_run_id(backup.stdout + backup.stderr)
    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
        messages = [
            log.message
            for log in client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])), limit=200)
        ]
    assert run.state.type.value == "COMPLETED"
    # In the Runs list an operator finds it by its stack: named after it, and tagged with it.
    assert run.name.startswith(f"{customer.stack} (") and f"stack:{customer.stack}" in run.tags, run
    assert any(message.startswith(f"stack {customer.stack}: snapshot ") for message in messages), messages[-5:]
    assert messages[-1] == "Finished in state Completed()"
