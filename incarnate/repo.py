"""The customer repo: a git repository whose stack.yaml, at a ref, says what the stack is."""

import subprocess
import tempfile
from dataclasses import dataclass

from incarnate.config import StackConfig, parse_stack_config
from incarnate.errors import ConfigError


@dataclass(frozen=True)
class CustomerConfig:
    repo: str
    ref: str
    commit: str
    config: StackConfig


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, args, result.stdout, result.stderr)
    return result.stdout


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].removeprefix("fatal: ") if lines else "no output"


def load_customer_config(repo: str, ref: str = "HEAD") -> CustomerConfig:
    """Clone the repo (bare, so branches, tags and commits all resolve) and read stack.yaml at ref."""
    with tempfile.TemporaryDirectory(prefix="incarnate-repo-") as clone:
        try:
            _git("clone", "--quiet", "--bare", repo, clone)
        except subprocess.CalledProcessError as error:
            raise ConfigError(f"customer repo {repo} cannot be cloned: {_last_line(error.stderr)}.") from None
        try:
            commit = _git("-C", clone, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
        except subprocess.CalledProcessError:
            raise ConfigError(f"customer repo {repo}: ref {ref!r} is not a branch, tag or commit there.") from None
        source = f"stack.yaml in {repo} at {ref} ({commit[:10]})"
        try:
            text = _git("-C", clone, "show", f"{commit}:stack.yaml")
        except subprocess.CalledProcessError:
            raise ConfigError(f"{source}: file not found; a customer repo needs a stack.yaml at its top.") from None
    return CustomerConfig(repo=repo, ref=ref, commit=commit, config=parse_stack_config(text, source))
