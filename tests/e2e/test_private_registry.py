"""A stack whose images come from a private registry: TLS from a private CA (trusted through the engine's certs.d,
never by turning verification off) and a login (htpasswd), named by a saved incarnate-registry block."""

import re
import shutil
import subprocess
import uuid

import pytest

from blocks.registries import RegistryLogin
from incarnate import settings
from incarnate.backup_format import list_snapshots
from incarnate.datasources.helper import ensure_helper
from incarnate.host import Host
from incarnate.registry import Registry
from tests.servers import issue_test_certificate, private_registry


# Once per test process: in parallel runs the tests of other modules come between these, and a module fixture would
# push the release's images again after each.
@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    with private_registry(tmp_path_factory.mktemp("private-registry")) as server:
        push(server, {image: image for image in ("demo/app:1.0.0", "demo/db:1.0.0")})  # the release's, nothing else
        yield server


def push(server, images: dict[str, str]) -> None:
    """Each of this machine's registry's images (value) pushed to the private registry as the key; logged out
    again, since incarnate must log in itself."""
    login = ["docker", "login", "--username", server.username, "--password-stdin", server.address]
    subprocess.run(login, input=server.password, text=True, check=True, capture_output=True)
    for target, source in images.items():
        subprocess.run(["docker", "tag", f"{settings.registry()}/{source}", f"{server.address}/{target}"], check=True)
        subprocess.run(["docker", "push", "--quiet", f"{server.address}/{target}"], check=True, capture_output=True)
    subprocess.run(["docker", "logout", server.address], check=True, capture_output=True)


def published(image: str) -> str:
    """The digest demo's image had when the session published the demo releases from this machine's registry."""
    return Registry(settings.registry()).digest(image)


def running_images(customer) -> list[str]:
    """The image each container of the stack was created from, as it was asked for (`docker ps` drops digests)."""
    inspect = ["docker", "inspect", "--format", "{{.Config.Image}}", *customer.containers().values()]
    return sorted(subprocess.run(inspect, capture_output=True, text=True, check=True).stdout.split())


def saved_block(registry, password: str) -> str:
    name = f"test-{uuid.uuid4().hex[:8]}"
    RegistryLogin(address=registry.address, username=registry.username, password=password).save(name)
    return f"incarnate-registry/{name}"


def use_registry(customer, block: str) -> None:
    customer.write_stack_yaml(customer.stack_yaml() + f"registry: {block}\n", f"images from {block}")


def test_a_stack_installs_and_backs_up_from_a_private_registry_holding_only_its_release_s_images(customer, registry):
    """The registry has the release's images and nothing else (no helper image of incarnate's): volumes are restored
    and backed up with the helper image incarnate makes on the engine itself."""
    use_registry(customer, saved_block(registry, registry.password))
    # made again by the install (unless a parallel test's helper container holds it)
    subprocess.run(["docker", "image", "rm", ensure_helper(Host())], check=False, capture_output=True)
    installed = customer.install()
    assert installed.returncode == 0, installed.stderr[-3000:]
    backed_up = customer.incarnate("backup", str(customer.repo))
    assert backed_up.returncode == 0, backed_up.stderr[-3000:]
    newest = list_snapshots(customer.backups(), customer.stack)[-1]
    assert newest.manifest.origin == "backup"
    assert "volume-files" in {artifact.name for artifact in newest.manifest.artifacts}
    assert running_images(customer) == [
        f"{registry.address}/demo/app@{published('demo/app:1.0.0')}",
        f"{registry.address}/demo/db@{published('demo/db:1.0.0')}",
    ]


def test_a_tag_moved_after_publication_changes_nothing_a_customer_runs(customer, registry):
    """Anyone who can push points demo/app:1.0.0 at another image (here the database's) after 1.0.0 was published:
    the customer still runs, and `status` shows, the image that was published, by its digest."""
    push(registry, {"demo/app:1.0.0": "demo/db:1.0.0"})
    use_registry(customer, saved_block(registry, registry.password))
    installed = customer.install()
    assert installed.returncode == 0, installed.stderr[-3000:]
    app = f"{registry.address}/demo/app@{published('demo/app:1.0.0')}"
    assert app in running_images(customer)
    status = customer.incarnate("status", str(customer.repo))
    assert status.returncode == 0, status.stderr
    assert re.search(rf"^  app +running healthy[^\n]* +{re.escape(app)}$", status.stdout, re.MULTILINE), status.stdout


def test_an_image_whose_published_digest_is_gone_is_refused_naming_it(customer, tmp_path):
    """The registry has the tag, but no longer the image that was published under it: nothing starts."""
    with private_registry(tmp_path) as server:
        push(server, {"demo/db:1.0.0": "demo/db:1.0.0", "demo/app:1.0.0": "demo/db:1.0.0"})
        use_registry(customer, saved_block(server, server.password))
        result = customer.install()
    assert result.returncode == 2, result.stderr[-3000:]
    assert (
        f"error: registry {server.address} no longer holds demo/app:1.0.0 ({published('demo/app:1.0.0')}) as "
        f"published for demo 1.0.0" in result.stderr
    )
    assert "Nothing was changed." in result.stderr
    assert customer.containers() == {}


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
