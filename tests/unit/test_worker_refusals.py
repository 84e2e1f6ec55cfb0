"""A worker runs only incarnate's own flows as incarnate registered them: what it refuses, and why."""

from prefect.workers.process import ProcessWorker

from deployments.worker import run_refusal

DEFAULT = ProcessWorker.get_default_base_job_template()
OURS = {
    "pool_template": DEFAULT,
    "run_variables": {},
    "deployment_variables": {},
    "entrypoint": "flows.backup.backup_stack",
    "pull_steps": [],
}


def refusal(**changes) -> str | None:
    return run_refusal(**{**OURS, **changes})


def test_incarnate_s_own_run_starts():
    assert refusal() is None


def test_a_command_env_or_working_dir_from_job_variables_is_refused():
    assert (
        refusal(run_variables={"command": "sh -c id"})
        == "the run sets job variables (command), which incarnate never sets"
    )
    assert "its deployment sets job variables (env)" in refusal(
        deployment_variables={"env": {"LD_PRELOAD": "/tmp/x.so"}}
    )
    assert "(working_dir)" in refusal(run_variables={"working_dir": "/tmp"})


def test_a_changed_pool_template_a_pull_step_or_a_foreign_flow_is_refused():
    changed = {**DEFAULT, "job_configuration": {**DEFAULT["job_configuration"], "command": "sh -c id"}}
    assert "base job template was changed" in refusal(pool_template=changed)
    assert "pull steps" in refusal(pull_steps=[{"prefect.deployments.steps.git_clone": {"repository": "x"}}])
    assert "is not one of incarnate's flows" in refusal(entrypoint="evil.py:flow")


def test_a_run_s_process_is_the_engine_itself_not_prefect_s_workspace_supervisor():
    """Without a command Prefect 3.9's process worker starts a supervisor that then starts the engine: two Prefect
    imports before a run starts (about 5 s for a button, bench/fleet_scale.py --pool). The process worker takes the
    direct path only for a configured command."""
    import sys
    import uuid

    from prefect.client.schemas.objects import FlowRun

    from deployments.worker import IncarnateWorker

    configuration = IncarnateWorker.job_configuration()
    configuration.prepare_for_flow_run(FlowRun(flow_id=uuid.uuid4()))
    assert configuration.command == f"{sys.executable} -m prefect.engine"
    assert configuration._command_configured  # what ProcessWorker.run branches on
