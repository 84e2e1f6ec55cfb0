"""Incarnations: the change log of deployments, kept where the operator looks, in the customer repo.

Each deployment becomes an annotated tag `incarnation/<stack>/<UTC time>` on the commit it
deployed; the tag's message is the record (JSON). `git log --decorate` shows them, `git show
TAG` reads one, and `incarnate history` lists them.
"""

import json
import subprocess
import tempfile
from datetime import UTC, datetime

from pydantic import BaseModel

from incarnate.errors import ConfigError

TAG_PREFIX = "incarnation"


class Incarnation(BaseModel):
    stack: str
    flow: str  # install, update, disaster-recovery, rollback
    commit: str
    ref: str
    release: str
    restored_from: str | None  # the snapshot the deployment restored (or rolled back to)
    kept_data: bool = False  # its targets held data, which was kept: restored_from was not loaded
    recovery_point: str | None = None  # the newest write its restored data holds (backup and replayed logs)
    backup: str | None  # the snapshot taken right after it: what a later rollback restores
    host: str
    triggered_by: str
    result: str  # ok, rolled back, failed
    error: str | None = None
    started_at: str
    seconds: dict[str, float] = {}
    tag: str | None = None


def _git(*args: str, cwd: str | None = None) -> str:
    result = subprocess.run(["git", *args], capture_output=True, text=True, cwd=cwd)
    if result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, args, result.stdout, result.stderr)
    return result.stdout


def record(repo: str, incarnation: Incarnation) -> str:
    """Tag the deployed commit in the customer repo with the record; the tag's name."""
    tag = f"{TAG_PREFIX}/{incarnation.stack}/{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
    body = incarnation.model_copy(update={"tag": tag}).model_dump_json(indent=1)
    with tempfile.TemporaryDirectory(prefix="incarnate-tag-") as clone:
        _git("clone", "--quiet", "--bare", repo, clone)
        _git(
            "-c",
            "user.name=incarnate",
            "-c",
            "user.email=incarnate@localhost",
            "tag",
            "--annotate",
            tag,
            incarnation.commit,
            "--message",
            f"{incarnation.flow} {incarnation.release}: {incarnation.result}\n\n{body}",
            cwd=clone,
        )
        _git("push", "--quiet", "origin", f"refs/tags/{tag}", cwd=clone)
    return tag


def history(repo: str, stack: str) -> list[Incarnation]:
    """The stack's incarnations, oldest first, read from the customer repo's tags."""
    with tempfile.TemporaryDirectory(prefix="incarnate-history-") as clone:
        try:
            _git("clone", "--quiet", "--bare", repo, clone)
        except subprocess.CalledProcessError as error:
            raise ConfigError(
                f"customer repo {repo} cannot be cloned: {error.stderr.strip().splitlines()[-1]}."
            ) from None
        output = _git(
            "for-each-ref", "--sort=refname", "--format=%(contents)%00", f"refs/tags/{TAG_PREFIX}/{stack}/", cwd=clone
        )
    found = []
    for message in output.split("\0"):
        body = message.split("\n\n", 1)[-1].strip()
        if body.startswith("{"):
            found.append(Incarnation.model_validate(json.loads(body)))
    return found


def rollback_targets(repo: str, stack: str, count: int) -> set[str]:
    """The backups the last `count` incarnations list: what a rollback to one of them restores."""
    recent = history(repo, stack)[-count:] if count else []
    return {incarnation.backup for incarnation in recent if incarnation.backup}


def find(repo: str, stack: str, tag: str) -> Incarnation:
    for incarnation in history(repo, stack):
        if incarnation.tag == tag or (incarnation.tag or "").endswith(f"/{tag}"):
            return incarnation
    raise ConfigError(
        f"customer repo {repo}: stack {stack} has no incarnation {tag!r}; `incarnate history` lists them."
    )
