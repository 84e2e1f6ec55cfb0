"""Which host each served deployment of a stack acts on, and the customer registry that says so."""

from deployments.serve import stack_deployments
from incarnate.config import StackConfig, spread
from incarnate.customers import Registration
from incarnate.repo import CustomerConfig


def test_deployments_default_to_the_stacks_host_except_disaster_recovery():
    customer = CustomerConfig(
        "/repos/acme", "HEAD", "0" * 40, StackConfig(stack="acme", product="demo", release="1.0.0")
    )
    made = {
        deployment.flow_name: deployment
        for deployment in stack_deployments(customer, Registration("ssh://root@10.0.0.5:22"))
    }
    assert made["backup"].parameters == {"repo": "/repos/acme", "docker_host": "ssh://root@10.0.0.5:22"}
    assert made["update"].parameters["docker_host"] == "ssh://root@10.0.0.5:22"
    assert made["disaster-recovery"].parameters == {"repo": "/repos/acme"}  # recovery goes elsewhere: asked each time
    local = {deployment.flow_name: deployment for deployment in stack_deployments(customer)}
    assert local["backup"].parameters == {"repo": "/repos/acme"}
    assert local["backup"].entrypoint.endswith("flows/backup.py:backup_stack")  # served: this checkout's file


def test_deployments_of_a_stack_in_a_work_pool_act_on_the_workers_host_and_name_modules():
    customer = CustomerConfig(
        "/repos/acme", "HEAD", "0" * 40, StackConfig(stack="acme", product="demo", release="1.0.0")
    )
    made = {deployment.flow_name: deployment for deployment in stack_deployments(customer, Registration(pool="host-b"))}
    assert made["backup"].parameters == {"repo": "/repos/acme"}  # the worker's own engine
    # a worker imports the flow from the installed package: no checkout at the same path on its host
    assert made["backup"].entrypoint == "flows.backup.backup_stack"
    assert made["install"].entrypoint == "flows.install.install"
    assert "run by the workers of pool host-b" in made["update"].description


def test_registry_keeps_each_stacks_host(tmp_path, monkeypatch):
    import subprocess

    import pytest

    from incarnate.customers import Registration, register, registrations
    from incarnate.errors import ConfigError

    repo = tmp_path / "acme"
    repo.mkdir()
    (repo / "stack.yaml").write_text("stack: acme\nproduct: demo\nrelease: 1.0.0\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "stack"], check=True)
    registry = tmp_path / "customers.yaml"
    monkeypatch.setenv("INCARNATE_CUSTOMERS", str(registry))

    register(str(repo), "ssh://root@10.0.0.5:22")
    assert registrations() == {str(repo): Registration("ssh://root@10.0.0.5:22")}
    register(str(repo), pool="host-b")
    assert registrations() == {str(repo): Registration(pool="host-b")}
    assert registry.read_text() == f"customers:\n- pool: host-b\n  repo: {repo}\n"
    register(str(repo))  # moved back to this machine
    assert registrations() == {str(repo): Registration()} and registry.read_text() == f"customers:\n- {repo}\n"
    with pytest.raises(ConfigError, match=r"work pool name 'host b; rm -rf /': expected letters, digits"):
        register(str(repo), pool="host b; rm -rf /")
    assert registry.read_text() == f"customers:\n- {repo}\n"
    registry.write_text("customers:\n- {repo: /a, hots: x}\n")
    with pytest.raises(ConfigError, match="neither a repo address nor a mapping with repo, host and pool"):
        registrations()


def test_each_stack_gets_a_nightly_backup_and_a_weekly_drill_and_verify_in_its_time_zone():
    config = StackConfig.model_validate(
        {
            "stack": "acme",
            "product": "demo",
            "release": "1.0.0",
            "timezone": "Asia/Tokyo",
            "backup": {"verify_sample": "2G", "drill_schedule": "0 3 * * 6"},
        }
    )
    made = {
        deployment.flow_name: deployment
        for deployment in stack_deployments(CustomerConfig("/r", "HEAD", "0" * 40, config))
    }
    schedules = {name: [(s.schedule.cron, s.schedule.timezone) for s in made[name].schedules] for name in made}
    assert schedules["backup"] == [(spread("H(0-9) 2 * * *", "acme"), "Asia/Tokyo")]  # a minute of acme's own
    assert schedules["restore-drill"] == [("0 3 * * 6", "Asia/Tokyo")]
    assert schedules["verify"] == [(spread("H 5 * * 0", "acme"), "Asia/Tokyo")]
    assert spread("H(0-9) 2 * * *", "acme") in made["backup"].description
    assert made["verify"].parameters == {"repo": "/r", "sample": "2G"}
    assert all("incarnate" in deployment.tags for deployment in made.values())  # what the alert automations match


def test_alert_settings_refuse_what_would_crash_healthy_runs(monkeypatch):
    from datetime import timedelta

    import pytest

    from deployments.alerts import AlertSettings, desired, parse_duration
    from incarnate.errors import ConfigError

    assert parse_duration("26h", "x") == timedelta(hours=26) and parse_duration("90s", "x") == timedelta(seconds=90)
    with pytest.raises(ConfigError, match="expected a duration such as 26h"):
        parse_duration("tomorrow", "--stale-after")
    monkeypatch.setenv("INCARNATE_HEARTBEAT_SECONDS", "30")
    monkeypatch.setenv("INCARNATE_HEARTBEAT_GRACE", "20s")
    with pytest.raises(ConfigError, match="must be longer than one heartbeat"):
        AlertSettings.from_environment()
    monkeypatch.delenv("INCARNATE_HEARTBEAT_GRACE")
    settings = AlertSettings.from_environment()
    assert settings.heartbeat_grace == timedelta(seconds=90) and settings.stale_after == timedelta(hours=26)
    (crash,) = desired(["acme"], settings)  # no block chosen: only the crash detection, no notifications
    assert (
        crash.trigger.within == timedelta(seconds=90)
        and crash.trigger.match_related.root["prefect.resource.id"] == "prefect.tag.incarnate"
    )


def test_serve_runs_at_most_max_runs_at_once_and_refuses_a_bad_number(monkeypatch):
    import os

    import pytest

    from incarnate import settings
    from incarnate.errors import ConfigError

    monkeypatch.delenv("INCARNATE_MAX_RUNS", raising=False)
    assert settings.max_runs() == max(2, os.cpu_count() or 1)
    monkeypatch.setenv("INCARNATE_MAX_RUNS", "3")
    assert settings.max_runs() == 3 and settings.max_runs("5") == 5  # the option wins over the environment
    for bad in ("0", "many", "-1"):
        with pytest.raises(ConfigError, match=rf"maximum concurrent runs '{bad}' \(--max-runs or INCARNATE_MAX_RUNS\)"):
            settings.max_runs(bad)
