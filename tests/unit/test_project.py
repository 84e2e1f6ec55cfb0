"""The repository's own checks, run with every test run: ruff finds nothing and would reformat nothing, and the docs
build in strict mode (a broken link, a missing page or a reference page that no longer generates fails it)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(*command: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **env})


def test_ruff_finds_nothing_to_report():
    done = run(str(BIN / "ruff"), "check", "--no-cache", ".")
    assert done.returncode == 0, done.stdout[-5000:]


def test_ruff_would_reformat_nothing():
    done = run(str(BIN / "ruff"), "format", "--check", "--no-cache", ".")
    assert done.returncode == 0, done.stdout[-5000:]


def test_the_docs_build_in_strict_mode(tmp_path):
    done = run(str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site"), NO_MKDOCS_2_WARNING="1")
    assert done.returncode == 0, done.stderr[-5000:]
    assert (tmp_path / "site" / "reference" / "stack-yaml" / "index.html").is_file()
