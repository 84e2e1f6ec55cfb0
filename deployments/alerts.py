"""Alerts through Prefect's own automations and notification blocks, created by `incarnate serve`, idempotently.

- `incarnate: run failed or crashed`: any run of an incarnate deployment (tag `incarnate`) that ends Failed or
  Crashed notifies the operator's block, once per run.
- `incarnate: no backup`: one proactive trigger for every stack (a window per stack): after a stack's completed
  backup (the event `incarnate.backup.completed`, which every backup emits, whoever ran it) the next one must follow
  within the window (26 h), or the block is told, naming the stack: the schedule fired and nothing succeeded, or
  nothing served it.
- `incarnate: log archive behind`: one proactive trigger for every stack whose databases archive their logs: after
  a stack's `incarnate.log.archived` event (deployments/archiver.py) the next must follow within
  INCARNATE_ARCHIVE_GAP (15m), or the block is told: archiving stopped, so the recovery point grows.
  A removed stack (`incarnate remove`, the event `incarnate.stack.removed`) closes its windows.
- `incarnate: unresponsive run crashed`: Prefect's documented zombie detection: a run of an incarnate deployment
  whose heartbeats stop (kill -9 of the serving process, a host reboot) is marked Crashed, which alerts as above.

Each automation carries a fingerprint of its definition in its description: `serve` keeps an unchanged one (and
its trigger's running windows), replaces a changed one, and removes the ones no longer wanted. They are four
whatever the number of stacks: a thousand stacks do not make serve's start or the server's event matching slower.
"""

import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import timedelta

from deployments.archiver import LOG_ARCHIVED
from deployments.stacks import TAG
from incarnate.errors import ConfigError
from tasks.backup import BACKUP_COMPLETED, stack_resource

PREFIX = "incarnate: "
STACK_REMOVED = "incarnate.stack.removed"  # closes the stack's windows: a removed stack is not stale
FINAL_EVENTS = {
    "prefect.flow-run.Completed",
    "prefect.flow-run.Failed",
    "prefect.flow-run.Cancelled",
    "prefect.flow-run.Crashed",
}


def parse_duration(text: str, what: str) -> timedelta:
    """`26h`, `90m`, `45s`, `2d`: for settings an operator types."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text or "")
    if not match:
        raise ConfigError(f"{what} {text!r}: expected a duration such as 26h, 90m, 45s or 2d.")
    return timedelta(seconds=float(match[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]])


@dataclass(frozen=True)
class AlertSettings:
    """What `incarnate serve` is told (options, else environment): whom to tell and when."""

    block: str | None  # a saved notification block TYPE/NAME (INCARNATE_ALERTS), None: failures only in the UI
    stale_after: timedelta  # INCARNATE_STALE_AFTER, default 26h
    heartbeat_seconds: int  # PREFECT_FLOWS_HEARTBEAT_FREQUENCY the served runs get (Prefect's minimum is 30)
    heartbeat_grace: timedelta  # INCARNATE_HEARTBEAT_GRACE: silence after which a run is crashed, default 3 beats
    archive_gap: timedelta = timedelta(minutes=15)  # INCARNATE_ARCHIVE_GAP: silence of a stack's log archiving

    @classmethod
    def from_environment(cls, block: str | None = None, stale_after: str | None = None) -> "AlertSettings":
        beat = os.environ.get("INCARNATE_HEARTBEAT_SECONDS", "30")
        if not beat.isdigit() or int(beat) < 30:
            raise ConfigError(
                f"INCARNATE_HEARTBEAT_SECONDS {beat!r}: expected whole seconds, at least 30 (Prefect's minimum)."
            )
        grace = parse_duration(
            os.environ.get("INCARNATE_HEARTBEAT_GRACE", f"{int(beat) * 3}s"), "INCARNATE_HEARTBEAT_GRACE"
        )
        if grace <= timedelta(seconds=int(beat)):
            raise ConfigError(
                f"INCARNATE_HEARTBEAT_GRACE must be longer than one heartbeat ({beat} s), or every run "
                f"would be crashed."
            )
        return cls(
            block or os.environ.get("INCARNATE_ALERTS") or None,
            parse_duration(stale_after or os.environ.get("INCARNATE_STALE_AFTER", "26h"), "stale-after"),
            int(beat),
            grace,
            parse_duration(os.environ.get("INCARNATE_ARCHIVE_GAP", "15m"), "INCARNATE_ARCHIVE_GAP"),
        )


def notification_block_id(slug: str) -> object:
    """The saved notification block's id, for SendNotification; ConfigError when it is no notification block."""
    from prefect.blocks.abstract import NotificationBlock

    from blocks import load_saved

    block = load_saved(slug, "--alerts")
    if not isinstance(block, NotificationBlock):
        raise ConfigError(
            f"--alerts {slug!r} is a {type(block).__name__} block, not a notification block (e.g. "
            f"custom-webhook, slack-webhook, email, microsoft-teams-webhook)."
        )
    return block._block_document_id


def _ours() -> dict:
    return {"prefect.resource.id": f"prefect.tag.{TAG}", "prefect.resource.role": "tag"}


def desired(settings: AlertSettings) -> list:
    """The automations incarnate wants on the server."""
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState, SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture

    made = [
        Automation(
            name=f"{PREFIX}unresponsive run crashed",
            description="Prefect's zombie detection for incarnate's runs: heartbeats stopped, so the run is marked "
            "Crashed.",
            trigger=EventTrigger(
                after={"prefect.flow-run.heartbeat"},
                expect={"prefect.flow-run.heartbeat", *FINAL_EVENTS},
                match={"prefect.resource.id": "prefect.flow-run.*"},
                match_related=_ours(),
                for_each={"prefect.resource.id"},
                posture=Posture.Proactive,
                threshold=1,
                within=settings.heartbeat_grace,
            ),
            actions=[
                ChangeFlowRunState(
                    state=StateType.CRASHED,
                    message=(
                        f"no heartbeat for {settings.heartbeat_grace.total_seconds():.0f} s: the process running it "
                        f"was killed or "
                        f"its host went down; see `incarnate status` for where the stack is."
                    ),
                )
            ],
        )
    ]
    if settings.block is None:
        return made
    block_id = notification_block_id(settings.block)
    made.append(
        Automation(
            name=f"{PREFIX}run failed or crashed",
            description=f"A run of an incarnate deployment ended Failed or Crashed: tell {settings.block}.",
            trigger=EventTrigger(
                expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
                match={"prefect.resource.id": "prefect.flow-run.*"},
                match_related=_ours(),
                posture=Posture.Reactive,
                threshold=1,
                within=timedelta(0),
            ),
            actions=[
                SendNotification(
                    block_document_id=block_id,
                    subject="incarnate: {{ flow.name }} run {{ flow_run.name }} {{ flow_run.state.name }}",
                    body=(
                        "incarnate: run {{ flow_run.name }} of {{ flow.name }}/{{ deployment.name }} ended "
                        "{{ flow_run.state.name }}: {{ flow_run.state.message }}\n{{ flow_run|ui_url }}"
                    ),
                )
            ],
        )
    )
    hours = settings.stale_after.total_seconds() / 3600
    minutes = settings.archive_gap.total_seconds() / 60
    stack = "{{ labels.prefect.resource.name }}"  # the stack whose window ran out
    silences = (
        (
            BACKUP_COMPLETED,
            settings.stale_after,
            "no backup",
            f"A stack has had no completed backup for {hours:g} h",
            f"incarnate: no backup of stack {stack} for {hours:g} h",
            f"incarnate: stack {stack} has had no completed backup for {hours:g} h: its nightly backup failed or did "
            f"not run (is `incarnate serve` running?). Run `incarnate backup` for it, and see the backup deployment's "
            f"runs in the Prefect UI.",
        ),
        (
            LOG_ARCHIVED,
            settings.archive_gap,
            "log archive behind",
            f"A stack's logs were not archived for {minutes:g} min",
            f"incarnate: log archive of stack {stack} behind for {minutes:g} min",
            f"incarnate: the database logs of stack {stack} have not been archived for {minutes:g} min, so a recovery "
            f"would lose the writes since: is `incarnate serve` (or the pool's worker) running, and does its output "
            f"say why a round failed? `incarnate status` shows how far behind it is.",
        ),
    )
    return [
        *made,
        *(
            silence_alert(
                event,
                within,
                block_id,
                name=f"{PREFIX}{name}",
                description=f"{what}: tell {settings.block}.",
                subject=subject,
                body=body,
            )
            for event, within, name, what, subject, body in silences
        ),
    ]


def silence_alert(event: str, within: timedelta, block_id: object, **words: str):
    """Tell the block when `event` of a stack, once seen, is not seen again within `within` (name, description,
    subject and body in `words`); a window per stack, closed by the stack's removal."""
    from prefect.automations import Automation
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture

    return Automation(
        name=words["name"],
        description=words["description"],
        trigger=EventTrigger(
            after={event},
            expect={event, STACK_REMOVED},
            match={"prefect.resource.id": stack_resource("*")},
            for_each={"prefect.resource.id", "prefect.resource.name"},
            posture=Posture.Proactive,
            threshold=1,
            within=within,
        ),
        actions=[SendNotification(block_document_id=block_id, subject=words["subject"], body=words["body"])],
    )


def _canonical(value: object) -> object:
    """Sets (a trigger's events) come out of pydantic in hash order, which differs between processes."""
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        items = [_canonical(item) for item in value]
        return sorted(items) if all(isinstance(item, str) for item in items) else items
    return value


def _fingerprint(automation) -> str:
    definition = _canonical(automation.model_dump(mode="json", exclude={"id", "description"}))
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:16]


def apply(settings: AlertSettings) -> list[str]:
    """Make the server's incarnate automations what `desired` says; one line per change, for the serve log."""
    from prefect.client.orchestration import get_client
    from prefect.events.schemas.automations import AutomationCore

    wanted = {automation.name: automation for automation in desired(settings)}
    done = []
    with get_client(sync_client=True) as client:
        present = [automation for automation in client.read_automations() if automation.name.startswith(PREFIX)]
        for automation in present:
            target = wanted.get(automation.name)
            if target is not None and automation.description.endswith(f"[{_fingerprint(target)}]"):
                wanted.pop(automation.name)
                continue
            client.delete_automation(automation.id)
            if target is None:
                done.append(f"removed automation {automation.name!r} (no longer wanted)")
        for name, automation in wanted.items():
            automation.description = f"{automation.description} [{_fingerprint(automation)}]"
            client.create_automation(AutomationCore(**automation.model_dump(exclude={"id"})))
            done.append(f"created automation {name!r}")
    return done
