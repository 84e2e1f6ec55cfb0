"""Deployments served from the registered customers: the nightly schedule, and CI triggers with --wait."""

from incarnate.backup_format import list_snapshots


def test_nightly_backup_deployment_runs_at_two_in_the_stacks_time_zone_and_makes_a_snapshot(customer, served):
    schedules = [entry.schedule for entry in served.schedules]
    assert [(s.cron, s.timezone) for s in schedules] == [("0 2 * * *", "America/New_York")]
    assert served.parameters == {"repo": str(customer.repo)}
    before = len(list_snapshots(customer.backups(), customer.stack))
    result = customer.incarnate("trigger", f"backup/{customer.stack}", "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "http://127.0.0.1:4200/runs/flow-run/" in result.stdout and result.stdout.rstrip().endswith("Completed")
    assert len(list_snapshots(customer.backups(), customer.stack)) == before + 1


def test_trigger_wait_exits_non_zero_for_a_failing_run_and_refuses_bad_names(customer, served):
    failing = customer.incarnate("trigger", f"update/{customer.stack}", "--param", "ref=no-such-ref", "--wait")
    assert failing.returncode == 1
    assert failing.stdout.rstrip().splitlines()[-1].startswith("  Failed")
    unknown = customer.incarnate("trigger", f"backup/{customer.stack}-nope")
    assert unknown.returncode == 2 and f"deployment backup/{customer.stack}-nope does not exist" in unknown.stderr
    bad_param = customer.incarnate("trigger", f"backup/{customer.stack}", "--param", "rep=x")
    assert bad_param.returncode == 2 and "has no parameter rep; its parameters: docker_host, prune, repo" in bad_param.stderr
