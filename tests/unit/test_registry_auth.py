"""The registry check's token dance (a registry that answers 401 with a Bearer challenge, and a token realm that
wants the login), against a loopback HTTP server playing both; basic auth and TLS run against Debian's real
docker-registry in tests/e2e/test_private_registry.py."""

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr

from incarnate.errors import ReleaseError
from incarnate.registry import Registry, _split_params

LOGIN = base64.b64encode(b"vendor:right").decode()


class TokenRegistry(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:  # the token realm
        self.seen.append(self.path)
        if self.headers.get("Authorization") != f"Basic {LOGIN}":
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"token": "issued-token"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self) -> None:  # the registry
        if self.headers.get("Authorization") == "Bearer issued-token":
            self.send_response(200 if "/app/" in self.path else 404)
            self.send_header("Docker-Content-Digest", "sha256:abc")
        else:
            self.send_response(401)
            realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
            self.send_header(
                "WWW-Authenticate",
                f'Bearer realm="{realm}",service="test-registry",scope="repository:demo/app:pull,push"',
            )
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def token_registry():
    server = ThreadingHTTPServer(("127.0.0.1", 0), TokenRegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_bearer_challenge_is_answered_with_a_token_fetched_with_the_login(token_registry):
    registry = Registry(token_registry, "vendor", SecretStr("right"), "block incarnate-registry/test")
    assert registry.digest("demo/app:1.0.0") == "sha256:abc"
    assert registry.digest("demo/other:1.0.0") is None
    assert (
        "service=test-registry" in TokenRegistry.seen[-1]
        and "scope=repository%3Ademo%2Fapp%3Apull%2Cpush" in TokenRegistry.seen[0]
    )


def test_a_wrong_login_and_a_missing_one_are_refused_in_one_sentence(token_registry):
    with pytest.raises(
        ReleaseError, match=r"refused the login of vendor from block incarnate-registry/test \(HTTP 401\)"
    ):
        Registry(token_registry, "vendor", SecretStr("wrong"), "block incarnate-registry/test").digest("demo/app:1.0.0")
    with pytest.raises(ReleaseError, match="asks for a login and INCARNATE_REGISTRY names none"):
        Registry(token_registry).digest("demo/app:1.0.0")


def test_challenge_parameters_split_at_commas_outside_quotes():
    assert _split_params('realm="https://a/token",service="reg",scope="repository:x:pull,push"') == [
        'realm="https://a/token"',
        'service="reg"',
        'scope="repository:x:pull,push"',
    ]


def test_the_password_never_shows_in_a_repr():
    assert "right" not in repr(Registry("r:5000", "vendor", SecretStr("right")))
