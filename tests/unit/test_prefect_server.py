"""cli/prefect_server.py: how a command finds the Prefect server, in the cases that need no server."""

import http.server
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cli import prefect_server
from cli.prefect_server import listener_uids
from tests.servers import issue_test_certificate

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


@contextmanager
def https_health(folder: Path) -> Iterator[str]:
    """A real HTTPS server on the loopback answering /api/health, its certificate from a private CA: what a TLS proxy
    in front of the Prefect server looks like to a command."""
    ca, cert, key = issue_test_certificate(folder, "127.0.0.1")

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the standard library's name
            self.send_response(200 if self.path == "/api/health" else 404)
            self.end_headers()
            self.wfile.write(b"true")

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/api", ca
    finally:
        server.shutdown()


def test_a_server_behind_tls_with_a_private_ca_is_found_with_prefect_s_own_tls_settings(tmp_path, monkeypatch):
    """The command checks the server as Prefect's client will talk to it: with PREFECT_API_SSL_CERT_FILE (or
    PREFECT_API_TLS_INSECURE_SKIP_VERIFY); without them an untrusted certificate is named as the reason."""
    with https_health(tmp_path) as (url, ca):
        with pytest.raises(
            prefect_server.ServerUnreachable, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"
        ):
            prefect_server.wait_for_server(url, 0)
        monkeypatch.setenv("PREFECT_API_SSL_CERT_FILE", str(ca))
        prefect_server.wait_for_server(url, 0)
        monkeypatch.delenv("PREFECT_API_SSL_CERT_FILE")
        monkeypatch.setenv("PREFECT_API_TLS_INSECURE_SKIP_VERIFY", "true")
        prefect_server.wait_for_server(url, 0)


TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1068 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7277605 1 0 100 0 0 10 0
   1: 00000000:1068 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 7272301 1 0 100 0 0 10 0
   2: 0100007F:1068 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000    33        0 7272302 1 0 100 0 0 10 0
   3: 0100007F:1388 00000000:0000 0A 00000000:00000000 00:00000000 00000000    65534     0 7272303 1 0 100 0 0 10 0
"""


def test_the_owners_of_every_listener_on_a_port_are_read_from_the_kernel_s_table():
    # port 4200 (0x1068): root on 127.0.0.1 and uid 1000 on every address; an established connection is not a listener
    assert listener_uids(4200, [TCP]) == {0, 1000}
    assert listener_uids(5000, [TCP, TCP.replace("0100007F:1388", "00000000000000000000000001000000:1388")]) == {65534}
    assert listener_uids(4201, [TCP]) == set()
