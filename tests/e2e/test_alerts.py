"""Alerts through Prefect automations, as `incarnate serve --alerts` creates them, into a real webhook receiver on
the loopback: one message per failed or crashed run, one for each stack whose backups stopped (not for a removed
one), none for a success."""

import os
import signal
import time
import uuid
from datetime import timedelta

from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.events import emit_event

from deployments import alerts
from deployments.alerts import AlertSettings
from incarnate.stores.locking import exclusive_lock
from tasks.backup import BACKUP_COMPLETED, stack_resource
from tests.e2e.conftest import flow_run_id, serving, state_of
from tests.servers import WebhookReceiver

STALE_AFTER = 35  # seconds; 26 h in production


def remove_automations() -> None:
    with get_client(sync_client=True) as client:
        for automation in client.read_automations():
            if automation.name.startswith(alerts.PREFIX):
                client.delete_automation(automation.id)


def test_failed_crashed_and_stale_reach_the_operators_block_once_each(customer, tmp_path):
    receiver = WebhookReceiver()
    block = f"test-{uuid.uuid4().hex[:8]}"
    CustomWebhookNotificationBlock(
        name="ops", url=receiver.url, json_data={"subject": "{{subject}}", "body": "{{body}}"}
    ).save(block)
    options = ("--alerts", f"custom-webhook/{block}", "--stale-after", f"{STALE_AFTER}s")
    try:
        with serving(customer, tmp_path, *options, env={"INCARNATE_HEARTBEAT_GRACE": "35s"}) as served:
            ok = customer.incarnate("trigger", f"backup/{customer.stack}", "--wait")
            assert ok.returncode == 0, ok.stdout + ok.stderr
            stale_from = time.monotonic()
            # Two more stacks' backups: one stack is removed then (its window closes), the other stays silent.
            gone, silent = f"{customer.stack}-gone", f"{customer.stack}-silent"
            for event, stack in ((BACKUP_COMPLETED, gone), (BACKUP_COMPLETED, silent), (alerts.STACK_REMOVED, gone)):
                emit_event(
                    event=event, resource={"prefect.resource.id": stack_resource(stack), "prefect.resource.name": stack}
                )
            failing = customer.incarnate(
                "trigger", f"restore-drill/{customer.stack}", "--param", "snapshot=no-such-snapshot", "--wait"
            )
            assert failing.returncode == 1
            # A clean-up holding the store keeps the install waiting at its first look at the store, however
            # fast the install would otherwise be, until the serving host goes down under it.
            with exclusive_lock(customer.backups(), "a clean-up the test holds", wait_seconds=5):
                killed = customer.incarnate("trigger", f"install/{customer.stack}")
                killed_run = flow_run_id(killed.stdout)
                deadline = time.monotonic() + 60
                while state_of(killed_run) != "Running":
                    assert time.monotonic() < deadline, f"install run never started: {served.log.read_text()[-2000:]}"
                    time.sleep(0.5)
                time.sleep(2)
                os.killpg(served.process.pid, signal.SIGKILL)  # the serving host goes down mid-run
                served.process.wait()
                assert state_of(killed_run) == "Running", "the install ended before the serving host went down"
            assert "created automation 'incarnate: run failed or crashed'" in served.log.read_text()
            settings = AlertSettings(
                f"custom-webhook/{block}", timedelta(seconds=STALE_AFTER), 30, timedelta(seconds=35)
            )
            assert alerts.apply(settings) == []  # a second serve changes nothing (and keeps the windows)

        failing_run = failing.stdout.split("flow run ")[1].split()[0]

        def ours() -> list[dict]:
            """The messages about this test's stack and runs: the staleness alert watches every stack, and the
            other tests' stacks that were backed up meanwhile go stale too."""
            return [
                message
                for message in receiver.received
                if customer.stack in message["subject"] or failing_run in message["subject"]
            ]

        deadline = time.monotonic() + 240
        while not (len(ours()) >= 4 and state_of(killed_run) == "Crashed"):
            assert time.monotonic() < deadline, f"got only {receiver.received}; install run is {state_of(killed_run)}"
            time.sleep(2)
        time.sleep(10)  # anything more that would come, comes now
    finally:
        receiver.close()
        remove_automations()

    subjects = sorted(message["subject"] for message in ours())
    killed_name = killed.stdout.split("flow run ")[1].split()[0]
    ok_run = ok.stdout.split("flow run ")[1].split()[0]
    assert subjects == sorted(
        [
            f"incarnate: install run {customer.stack} 1.0.0 ({killed_name}) Crashed",  # named after its stack by then
            f"incarnate: restore-drill run {failing_run} Failed",
            f"incarnate: no backup of stack {customer.stack} for {STALE_AFTER / 3600:g} h",
            f"incarnate: no backup of stack {silent} for {STALE_AFTER / 3600:g} h",
        ]
    ), receiver.received
    assert not any(ok_run in message["body"] for message in receiver.received)
    assert "created automation 'incarnate: no backup'" in served.log.read_text()  # one for every stack
    assert time.monotonic() - stale_from >= STALE_AFTER
    crashed = next(message for message in ours() if "Crashed" in message["subject"])
    assert "no heartbeat for 35 s" in crashed["body"]
