"""cli/prefect_server.py: how a command finds the Prefect server, in the cases that need no server."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INCARNATE = str(Path(sys.executable).with_name("incarnate"))


def test_a_malformed_prefect_api_url_is_bad_input_before_anything_is_tried(tmp_path):
    done = subprocess.run(
        [INCARNATE, "backup", str(tmp_path / "repo")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], "INCARNATE_HOME": str(tmp_path), "PREFECT_API_URL": "127.0.0.1:4200/api"},
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.splitlines() == [
        "error: PREFECT_API_URL='127.0.0.1:4200/api': expected the address of a Prefect "
        "server's API, such as http://127.0.0.1:4200/api."
    ]


def test_connect_refuses_to_run_once_prefect_has_read_its_settings(tmp_path):
    """Prefect reads its settings when first imported: connecting afterwards would not count, and a temporary server
    could start. A caller that gets the order wrong is told at once, not at 02:00."""
    code = "import prefect\nfrom cli import prefect_server\nprefect_server.connect()"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], "INCARNATE_HOME": str(tmp_path)},
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "RuntimeError: cli.prefect_server.connect() must run before prefect is first imported"
    )
