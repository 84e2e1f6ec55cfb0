"""The deployments serve makes of the registered stacks (one per flow), which host they act on, and the registry."""

import pytest

from deployments.serve import deployment_name, flow_deployments, grouped
from deployments.stacks import STACKS
from incarnate.config import StackConfig, spread
from incarnate.customers import Registration
from incarnate.errors import ConfigError
from incarnate.repo import CustomerConfig


def customer(stack: str, **more) -> CustomerConfig:
    return CustomerConfig(
        f"/repos/{stack}", "HEAD", "0" * 40, StackConfig.model_validate({"stack": stack, "product": "demo", **more})
    )


def test_one_deployment_per_flow_serves_every_stack_and_defaults_to_their_host_except_disaster_recovery():
    acme, beta = customer("acme", release="1.0.0"), customer("beta", release="1.0.0")
    made = {
        deployment.flow_name: deployment
        for deployment in flow_deployments("box", Registration("ssh://root@10.0.0.5:22"), [acme, beta])
    }
    assert {deployment.name for deployment in made.values()} == {"box-on-root-10.0.0.5-22"}
    assert made["backup"].parameters == {"docker_host": "ssh://root@10.0.0.5:22"}
    assert made["update"].parameters["docker_host"] == "ssh://root@10.0.0.5:22"
    assert made["disaster-recovery"].parameters == {}  # recovery goes elsewhere: asked each time
    # A run by hand chooses among the registered repos; the server refuses any other (the schema's enum).
    repo = made["install"]._parameter_openapi_schema.properties["repo"]
    assert repo["enum"] == ["/repos/acme", "/repos/beta"] and repo[STACKS] == {
        "acme": "/repos/acme",
        "beta": "/repos/beta",
    }
    assert repo["type"] == "string" and "customer repo" in repo["description"]
    local = {deployment.flow_name: deployment for deployment in flow_deployments("box", Registration(), [acme])}
    assert local["backup"].name == "box" and local["backup"].parameters == {}
    assert local["backup"].entrypoint.endswith("flows/backup.py:backup_stack")  # served: this checkout's file
    assert local["restore-drill"].parameters == {"at": "random"}


def test_every_parameter_a_deployment_or_a_schedule_gives_is_one_its_flow_takes():
    """A parameter the flow does not take crashes the run before it starts (Prefect's SignatureMismatchError): a
    verify of a stack registered on a host did, button and weekly schedule alike."""
    for where in (Registration(), Registration("ssh://root@10.0.0.5:22"), Registration(pool="host-b")):
        for deployment in flow_deployments("box", where, [customer("acme", release="1.0.0")]):
            takes = set(deployment._parameter_openapi_schema.properties)
            given = [deployment.parameters, *(schedule.parameters for schedule in deployment.schedules or [])]
            for parameters in given:
                assert set(parameters) <= takes, (deployment.flow_name, where, set(parameters) - takes)


def test_deployments_of_stacks_in_a_work_pool_act_on_the_workers_host_and_name_modules():
    made = {
        deployment.flow_name: deployment
        for deployment in flow_deployments("box", Registration(pool="host-b"), [customer("acme", release="1.0.0")])
    }
    assert made["backup"].name == "box-in-host-b" and made["backup"].parameters == {}  # the worker's own engine
    # a worker imports the flow from the installed package: no checkout at the same path on its host
    assert made["backup"].entrypoint == "flows.backup.backup_stack"
    assert made["install"].entrypoint == "flows.install.install"
    assert "run by the workers of pool host-b" in made["update"].description


def test_stacks_are_grouped_by_where_they_run_and_two_hosts_sharing_a_name_are_refused():
    on = [(customer("a", release="1.0.0"), Registration()), (customer("b", release="1.0.0"), Registration("ssh://h1"))]
    assert {where: [c.config.stack for c in members] for where, members in grouped(on, "box").items()} == {
        Registration(): ["a"],
        Registration("ssh://h1"): ["b"],
    }
    assert deployment_name("box", Registration("ssh://root@h:22", "p")) == "box-in-p-on-root-h-22"
    clash = [*on, (customer("c", release="1.0.0"), Registration("ssh://h1/"))]
    with pytest.raises(ConfigError, match="hosts ssh://h1 and ssh://h1/ would share the deployments box-on-h1"):
        grouped(clash, "box")


def test_serve_name_comes_from_the_option_the_environment_or_the_host_and_is_checked(monkeypatch):
    from incarnate import settings

    monkeypatch.setenv("INCARNATE_SERVE_NAME", "ops-1")
    assert settings.serve_name() == "ops-1" and settings.serve_name("eu.2") == "eu.2"
    monkeypatch.delenv("INCARNATE_SERVE_NAME")
    assert settings.serve_name()  # the host name, made a deployment name
    with pytest.raises(ConfigError, match=r"serve name 'a/b' \(--name or INCARNATE_SERVE_NAME\): expected letters"):
        settings.serve_name("a/b")


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
    tokyo = customer(
        "acme",
        release="1.0.0",
        timezone="Asia/Tokyo",
        backup={"verify_sample": "2G", "drill_schedule": "0 3 * * 6"},
    )
    made = {deployment.flow_name: deployment for deployment in flow_deployments("box", Registration(), [tokyo])}

    def schedules(flow: str) -> list:
        return [(s.slug, s.schedule.cron, s.schedule.timezone, s.parameters) for s in made[flow].schedules]

    assert schedules("backup") == [("acme", spread("H(0-9) 2 * * *", "acme"), "Asia/Tokyo", {"repo": "/repos/acme"})]
    assert schedules("restore-drill") == [("acme", "0 3 * * 6", "Asia/Tokyo", {"repo": "/repos/acme"})]
    assert schedules("verify") == [
        ("acme", spread("H 5 * * 0", "acme"), "Asia/Tokyo", {"repo": "/repos/acme", "sample": "2G"})
    ]
    assert not made["install"].schedules  # buttons: run when asked
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
    (crash,) = desired(settings)  # no block chosen: only the crash detection, no notifications
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
