"""Prefect's production database: scripts/prefect-server.sh with INCARNATE_PREFECT_DB=postgresql installs Debian's
PostgreSQL, starts a Prefect server on it, keeps that choice, and never moves a home that has data to the other kind."""

import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.e2e.conftest import free_port
from tests.servers import PREFECT_DB_PORT, psql

ROOT = Path(__file__).resolve().parents[2]


def prefect_server_script(home: Path, port: int, **options: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("INCARNATE_PREFECT_DB")}
    env.update(INCARNATE_HOME=str(home), INCARNATE_LOGS=str(home.parent / "logs"), PREFECT_PORT=str(port), **options)
    return subprocess.run(
        ["bash", "scripts/prefect-server.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )


def through_server(port: int, home: Path, code: str) -> str:
    env = {
        **os.environ,
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_API_AUTH_STRING": (home / "prefect-api-auth").read_text().strip(),
    }
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def every_process_argument() -> str:
    arguments = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                arguments.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
    return "\n".join(arguments)


@pytest.fixture
def postgresql_home(tmp_path):
    home, port, name = tmp_path / "home", free_port(), f"prefect_t{uuid.uuid4().hex[:8]}"
    try:
        yield home, port, name
    finally:
        subprocess.run(["pkill", "-f", f"prefect server start --host 127.0.0.1 --port {port}"])
        subprocess.run(
            ["runuser", "-u", "postgres", "--", "dropdb", "--port", PREFECT_DB_PORT, "--if-exists", "--force", name],
            cwd="/",
            capture_output=True,
        )
        subprocess.run(
            ["runuser", "-u", "postgres", "--", "dropuser", "--port", PREFECT_DB_PORT, "--if-exists", name],
            cwd="/",
            capture_output=True,
        )


def test_postgresql_serves_prefect_and_the_choice_is_kept(postgresql_home):
    home, port, name = postgresql_home
    first = prefect_server_script(home, port, INCARNATE_PREFECT_DB="postgresql", INCARNATE_PREFECT_DB_NAME=name)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"starting the Prefect server (PostgreSQL database {name} on 127.0.0.1:{PREFECT_DB_PORT}" in first.stdout

    saved = through_server(
        port,
        home,
        "from prefect.blocks.system import Secret\n"
        "Secret(value='kept-in-postgresql').save('probe')\n"
        "print(Secret.load('probe').get())",
    )
    assert saved == "kept-in-postgresql"
    assert psql(name, "SELECT count(*) FROM block_document WHERE name = 'probe'") == "1"
    assert not (home / "prefect" / "prefect.db").exists()

    assert (home / "prefect-db").read_text().split() == ["postgresql", PREFECT_DB_PORT, name]
    for secret in ("prefect-db", "prefect-db-password", "prefect-api-auth"):
        assert stat.S_IMODE((home / secret).stat().st_mode) == 0o600, secret
    password = (home / "prefect-db-password").read_text().strip()
    assert password not in every_process_argument()

    again = prefect_server_script(home, port)  # no option: the recorded choice, the server left alone
    assert again.returncode == 0, again.stderr
    assert "Prefect server answers" in again.stdout

    switched = prefect_server_script(home, port, INCARNATE_PREFECT_DB="sqlite")
    assert switched.returncode == 1
    assert switched.stderr.strip().splitlines() == [
        f"error: the Prefect server of {home} keeps the stacks' Secret blocks (their store keys) and the run history "
        f"in postgresql {PREFECT_DB_PORT} {name} ({home / 'prefect-db'}); refusing to move it to sqlite, which starts "
        "empty: unset INCARNATE_PREFECT_DB*, or set up sqlite under a new INCARNATE_HOME. Nothing was changed."
    ]
    assert (home / "prefect-db").read_text().split() == ["postgresql", PREFECT_DB_PORT, name]
    assert (
        through_server(port, home, "from prefect.blocks.system import Secret\nprint(Secret.load('probe').get())")
        == "kept-in-postgresql"
    )


@pytest.mark.parametrize(
    "options, error",
    [
        ({"INCARNATE_PREFECT_DB": "postgresql"}, "refusing to move it to postgresql 5433 prefect, which starts empty"),
        (
            {"INCARNATE_PREFECT_DB": "mysql"},
            "INCARNATE_PREFECT_DB is 'mysql': expected sqlite (the default) or postgresql.",
        ),
        (
            {"INCARNATE_PREFECT_DB_NAME": "x'; DROP ROLE postgres; --"},
            "INCARNATE_PREFECT_DB_NAME is 'x'; DROP ROLE postgres; --'",
        ),
    ],
)
def test_a_home_on_sqlite_is_never_moved_and_bad_options_are_refused(tmp_path, options, error):
    home = tmp_path / "home"
    (home / "prefect").mkdir(parents=True)
    (home / "prefect" / "prefect.db").write_bytes(b"")  # a home set up before the choice was recorded
    refused = prefect_server_script(home, free_port(), **options)
    assert refused.returncode == 1
    assert len(refused.stderr.strip().splitlines()) == 1 and error in refused.stderr, refused.stderr
    assert sorted(path.name for path in home.iterdir()) == ["prefect"]  # nothing written, no password made
