"""A stack whose images come from a private registry: TLS from a private CA (trusted through the engine's certs.d,
never by turning verification off) and a login (htpasswd), named by a saved incarnate-registry block."""

import shutil
import subprocess
import uuid

import pytest

from blocks.registries import RegistryLogin
from incarnate import settings
from incarnate.datasources.volume import TOOLBOX_TAG
from tests.servers import issue_test_certificate, private_registry


# Once per test process: in parallel runs the tests of other modules come between these, and a module fixture would
# push the release's images (and the 893 MB toolbox) again after each.
@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    with private_registry(tmp_path_factory.mktemp("private-registry")) as server:
        login = ["docker", "login", "--username", server.username, "--password-stdin", server.address]
        subprocess.run(login, input=server.password, text=True, check=True, capture_output=True)
        for image in ("demo/app:1.0.0", "demo/db:1.0.0", f"incarnate/toolbox:{TOOLBOX_TAG}"):
            subprocess.run(["docker", "tag", f"{settings.registry()}/{image}", f"{server.address}/{image}"], check=True)
            subprocess.run(["docker", "push", "--quiet", f"{server.address}/{image}"], check=True, capture_output=True)
        subprocess.run(
            ["docker", "logout", server.address], check=True, capture_output=True
        )  # incarnate must log in itself
        yield server


def saved_block(registry, password: str) -> str:
    name = f"test-{uuid.uuid4().hex[:8]}"
    RegistryLogin(address=registry.address, username=registry.username, password=password).save(name)
    return f"incarnate-registry/{name}"


def use_registry(customer, block: str) -> None:
    customer.write_stack_yaml(customer.stack_yaml() + f"registry: {block}\n", f"images from {block}")


def test_a_stack_installs_from_a_private_registry_with_its_login(customer, registry):
    use_registry(customer, saved_block(registry, registry.password))
    installed = customer.install()
    assert installed.returncode == 0, installed.stderr[-3000:]
    images = subprocess.run(
        ["docker", "ps", "--filter", f"label=com.docker.compose.project={customer.stack}", "--format", "{{.Image}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(images) == [f"{registry.address}/demo/app:1.0.0", f"{registry.address}/demo/db:1.0.0"]


def test_a_wrong_password_is_refused_before_anything_changes(customer, registry):
    use_registry(customer, saved_block(registry, "not-the-password"))
    result = customer.install()
    assert result.returncode == 2
    assert (
        f"error: registry {registry.address} refused the login of {registry.username} from stack.yaml registry "
        f"incarnate-registry/"
        in result.stderr
        and "(HTTP 401); check its username and password. Nothing was changed." in result.stderr
    )
    assert customer.containers() == {}


def test_an_untrusted_certificate_is_refused_before_anything_changes(customer, registry, tmp_path):
    """The engine (and so incarnate) is told to trust another CA than the one that signed the registry's certificate."""
    use_registry(customer, saved_block(registry, registry.password))
    other_ca, _, _ = issue_test_certificate(tmp_path, "127.0.0.1")
    shutil.copy(registry.ca, tmp_path / "right-ca.crt")
    shutil.copy(other_ca, registry.ca)
    try:
        result = customer.install()
    finally:
        shutil.copy(tmp_path / "right-ca.crt", registry.ca)
    assert result.returncode == 2
    assert f"error: registry {registry.address}: its TLS certificate is not trusted (" in result.stderr
    assert (
        f"put its CA into /etc/docker/certs.d/{registry.address}/ca.crt on this machine and every host. Nothing was "
        f"changed." in result.stderr
    )
    assert customer.containers() == {}
