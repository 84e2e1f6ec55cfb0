"""Publishing releases with the CLI alone, as a vendor's CI does: into a local folder, an SMB share and an Azure
container; re-publishing, changed content, bad input; a product that is not the demo from its folder to a customer."""

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from incarnate import settings
from incarnate.releases import ReleaseStore, file_digests
from incarnate.stores.local import LocalStore
from tests.e2e.conftest import COMPOSE, INCARNATE
from tests.servers import save_store_block

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def publish(folder: Path, releases: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [INCARNATE, "release", "publish", str(folder), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "INCARNATE_RELEASES": releases, **(env or {})},
        timeout=900,
    )


def release_list(releases: str, *args: str) -> str:
    result = subprocess.run(
        [INCARNATE, "release", "list", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "INCARNATE_RELEASES": releases},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def changed_copy(source: Path, target: Path, old: str, new: str, file: str = "compose.yaml") -> Path:
    shutil.copytree(source, target)
    text = (target / file).read_text()
    assert old in text
    (target / file).write_text(text.replace(old, new))
    return target


def wiki_page(customer, name: str, text: str | None = None) -> str:
    """Write a page the way the wiki stores it (an editor's save), or read it rendered over HTTP."""
    if text is not None:
        subprocess.run(
            [
                COMPOSE,
                "-p",
                customer.stack,
                "--project-directory",
                str(settings.stacks_dir() / customer.stack),
                "exec",
                "-T",
                "wiki",
                "sh",
                "-c",
                f"cat > /var/lib/dokuwiki/data/pages/{name}.txt",
            ],
            input=text,
            text=True,
            check=True,
            capture_output=True,
        )
    return customer.request("GET", f"/doku.php?id={name}").decode()


def test_an_off_the_shelf_product_goes_from_its_folder_to_a_customer_with_the_cli_alone(customer, tmp_path):
    """The wiki (DokuWiki from Debian, two volumes, no database; health any 2xx, schema not checked): release
    publish, a new customer's install, a backup, an update to its next release with the customer's page kept."""
    releases = str(tmp_path / "releases")
    env = {"INCARNATE_RELEASES": releases}
    for release in ("1.0.0", "1.1.0"):
        published = publish(EXAMPLES / "wiki" / "releases" / release, releases)
        assert published.returncode == 0, published.stderr[-3000:]
        out = published.stdout + published.stderr
        assert (
            f"publish-release wiki-{release}: migrate ok" in out
            and "release " + release + ", schema not checked" in out
        )
    assert "wiki         1.0.0     schema 0    vanilla" in release_list(releases, "wiki")

    customer.use("wiki")
    installed = customer.install(env=env)
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert "Example wiki 1.0.0" in wiki_page(customer, "start")
    assert "kept by the customer" in wiki_page(customer, "notes", "====== Notes ======\nkept by the customer\n")
    assert customer.incarnate("backup", str(customer.repo), env=env).returncode == 0

    customer.write_stack_yaml(customer.stack_yaml(release="1.1.0"), "update the wiki to 1.1.0")
    updated = customer.incarnate("update", str(customer.repo), env=env)
    assert updated.returncode == 0, updated.stderr[-3000:]
    assert "Example wiki 1.1.0" in wiki_page(customer, "notes") and "kept by the customer" in wiki_page(
        customer, "notes"
    )
    status = customer.incarnate("status", str(customer.repo), env=env).stdout
    assert "wiki 1.1.0" in status and "release 1.1.0, schema not checked" in status

    customer.remove_stack()  # the disaster: its volumes are gone; the recovery must load the backup into new ones
    recovered = customer.install(env=env)
    assert recovered.returncode == 0, recovered.stderr[-3000:]
    assert "restored from" in recovered.stdout + recovered.stderr
    assert "kept by the customer" in wiki_page(customer, "notes")


@pytest.mark.parametrize("kind", ["smb", "azure"])
def test_publishing_into_a_network_store_is_create_only_and_a_second_engine_installs_from_it(
    kind, customer, samba_server, azurite_server, second_engine
):
    block = save_store_block(kind, samba_server, azurite_server)
    folder = EXAMPLES / "pgdemo" / "releases" / "1.0.0"
    first = publish(folder, block)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "published pgdemo 1.0.0 (schema 1) into" in first.stdout + first.stderr

    again = publish(folder, block)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (
        "pgdemo 1.0.0 is already published in" in again.stdout + again.stderr
        and "nothing to do" in again.stdout + again.stderr
    )
    assert "scratch stack" not in again.stdout + again.stderr

    changed = changed_copy(folder, customer.repo.parent / "changed", "restart: unless-stopped", "restart: always")
    refused = publish(changed, block)
    assert refused.returncode == 2
    assert (
        "pgdemo 1.0.0 is published with other content (compose.yaml differs); a published release never "
        "changes: give the new content a new release number. Nothing was published." in refused.stderr
    )

    if kind == "azure":  # disaster recovery onto another host reads the release from the store block alone
        customer.use("pgdemo")
        try:
            installed = customer.install("--host", second_engine, env={"INCARNATE_RELEASES": block})
            assert installed.returncode == 0, installed.stderr[-3000:]
            assert (
                customer.incarnate(
                    "status", str(customer.repo), "--host", second_engine, env={"INCARNATE_RELEASES": block}
                ).stdout.count("release 1.0.0, schema 1")
                == 1
            )
        finally:
            customer.remove_from(second_engine)


def store_keys(path: Path) -> list[str]:
    return [key for key in LocalStore(path).list("") if not key.startswith("locks/")] if path.is_dir() else []


def test_bad_releases_are_refused_with_one_sentence_and_nothing_is_written(tmp_path):
    releases = tmp_path / "releases"
    demo = EXAMPLES / "demo" / "releases" / "1.1.0"

    missing_image = changed_copy(demo, tmp_path / "missing-image", "product: demo", "product: nosuch", "release.yaml")
    (missing_image / "release.yaml").write_text(
        (missing_image / "release.yaml").read_text().replace("demo/app:1.1.0", "nosuch/app:1.1.0")
    )
    (missing_image / "compose.yaml").write_text(
        (missing_image / "compose.yaml").read_text().replace("demo/app:1.1.0", "nosuch/app:1.1.0")
    )
    result = publish(missing_image, str(releases))
    assert result.returncode == 2
    assert (
        f"error: registry {settings.registry()} lacks nosuch/app:1.1.0 for nosuch 1.1.0; push the release's images "
        f"first. Nothing was published." in result.stderr
    )
    forget_limit("stack-publish-nosuch-1-1-0")

    invalid = changed_copy(demo, tmp_path / "invalid", "restart: unless-stopped", "restart: [not, a, policy]")
    result = publish(invalid, str(releases))
    assert (
        result.returncode == 2 and "with `docker compose config` on host local failed" in result.stderr.splitlines()[-1]
    )

    disagreeing = changed_copy(demo, tmp_path / "disagreeing", "  app:\n", "  web:\n")
    result = publish(disagreeing, str(releases))
    assert result.returncode == 2
    assert (
        "service web is in compose.yaml but not under images in release.yaml; service app is under images in "
        "release.yaml but not in compose.yaml" in result.stderr
    )

    product = f"never{uuid.uuid4().hex[:6]}"  # the demo 1.1.0 images, but a schema its migrations never reach
    never = changed_copy(demo, tmp_path / "never", "schema_version: 2", "schema_version: 9", "release.yaml")
    (never / "release.yaml").write_text(
        (never / "release.yaml").read_text().replace("product: demo", f"product: {product}")
    )
    result = publish(never, str(releases), env={"INCARNATE_READY_SECONDS": "20"})
    assert result.returncode == 1
    assert (
        "reports {'status': 'ok', 'release': '1.1.0', 'schema_version': 2} after 20 s; release 1.1.0 expects "
        "schema version 9" in result.stderr.splitlines()[-1]
    )
    assert store_keys(releases) == []
    scratch = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project=publish-{product}-1-1-0"],
        capture_output=True,
        text=True,
    ).stdout
    assert scratch == ""  # the scratch stack is gone
    forget_limit(f"stack-publish-{product}-1-1-0")


def forget_limit(name: str) -> None:
    """The concurrency limit a publication of a made-up product left on the operator's Prefect server."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.delete_global_concurrency_limit_by_name(name)


def test_a_refusal_names_the_variable_and_never_prints_its_value(tmp_path):
    """A compose file that puts the caller's secrets into an image name: the refusal shows the file's own text
    (the variable's name), never a value from the environment (the error reaches the run log and alerts)."""
    marker = f"marker-{os.urandom(6).hex()}"
    leaky = changed_copy(
        EXAMPLES / "demo" / "releases" / "1.1.0",
        tmp_path / "leaky",
        "image: ${INCARNATE_REGISTRY}/demo/app:1.1.0",
        "image: x${PREFECT_API_AUTH_STRING}${SOME_TOKEN}",
    )
    refused = publish(leaky, str(tmp_path / "releases"), env={"SOME_TOKEN": marker})
    assert refused.returncode == 2, refused.stderr[-2000:]
    output = refused.stdout + refused.stderr
    assert "runs image 'x${PREFECT_API_AUTH_STRING}${SOME_TOKEN}'" in output, output[-2000:]
    assert marker not in output and os.environ["PREFECT_API_AUTH_STRING"] not in output


ALLOWED = "capabilities: the demo's profiler attaches to its own workers"


def test_an_exception_to_the_compose_policy_is_published_shown_and_the_policy_is_checked_again_at_deployment(
    customer, tmp_path
):
    releases = str(tmp_path / "releases")
    env = {"INCARNATE_RELEASES": releases}
    traced = changed_copy(
        EXAMPLES / "demo" / "releases" / "1.0.0",
        tmp_path / "traced",
        "    ports:\n",
        "    cap_add: [SYS_PTRACE]\n    ports:\n",
    )
    refused = publish(traced, releases)
    assert refused.returncode == 2
    assert (
        "service app adds capabilities beyond Docker's default (cap_add SYS_PTRACE; rule capabilities)"
        in refused.stderr.splitlines()[-1]
    )
    rule, reason = ALLOWED.split(": ", 1)
    allow = f'allow:\n  - service: app\n    rule: {rule}\n    reason: "{reason}"\n'
    (traced / "release.yaml").write_text((traced / "release.yaml").read_text() + allow)
    published = publish(traced, releases)
    assert published.returncode == 0, published.stderr[-3000:]
    assert f"exceptions to the compose policy: app {ALLOWED}" in published.stdout + published.stderr
    assert f"    allowed app {ALLOWED}" in release_list(releases, "demo")
    installed = customer.install(env=env)
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert f"  allowed   app {ALLOWED}" in customer.incarnate("status", str(customer.repo), env=env).stdout

    # A release in the store from before the policy (or its rule): a deployment refuses it before changing anything.
    store = ReleaseStore(LocalStore(Path(releases)))
    files = store.files("demo", "1.0.0")
    files = {
        "release.yaml": files["release.yaml"].replace(b"release: 1.0.0", b"release: 1.0.1"),
        "compose.yaml": files["compose.yaml"].replace(b"    cap_add:", b"    privileged: true\n    cap_add:"),
    }
    store.add("demo", "1.0.1", files)
    store.record(
        store.publication("demo", "1.0.0").model_copy(update={"release": "1.0.1", "files": file_digests(files)})
    )
    customer.write_stack_yaml(customer.stack_yaml(release="1.0.1"), "pin 1.0.1")
    before = customer.containers()
    updated = customer.incarnate("update", str(customer.repo), env=env)
    assert updated.returncode == 2, updated.stderr[-3000:]
    assert (
        f"error: release store {releases}: demo/1.0.1/compose.yaml: service app runs privileged (privileged: true; "
        f"rule privileged)" in updated.stderr
    )
    assert updated.stderr.rstrip().endswith("Nothing was changed.")
    assert customer.containers() == before


def test_a_withdrawn_release_starts_no_new_stack_and_no_update_but_its_stacks_keep_recovering(customer, tmp_path):
    releases = tmp_path / "releases"
    shutil.copytree(settings.releases(), releases)
    env = {"INCARNATE_RELEASES": str(releases)}
    assert customer.install(env=env).returncode == 0
    reason = "corrupts uploads over 2 GB"
    for release in ("1.1.0", "1.0.0"):
        withdrawn = customer.incarnate("release", "withdraw", "demo", release, "--reason", reason, env=env)
        assert withdrawn.returncode == 0, withdrawn.stderr
        assert withdrawn.stdout.startswith(f"demo {release} withdrawn in {releases} ({reason})")
    again = customer.incarnate("release", "withdraw", "demo", "1.0.0", "--reason", "another reason", env=env)
    assert again.returncode == 0 and "was already withdrawn on " in again.stdout and reason in again.stdout
    assert "    withdrawn 20" in release_list(str(releases), "demo")

    before = customer.containers()
    customer.write_stack_yaml(customer.stack_yaml(release="1.1.0"), "update to 1.1.0")
    updated = customer.incarnate("update", str(customer.repo), env=env)
    assert updated.returncode == 2, updated.stderr[-3000:]
    last = updated.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: update of stack {customer.stack}: release demo 1.1.0 was withdrawn on "), last
    assert last.endswith(f"({reason}); pin another release. Nothing was changed.")
    assert customer.containers() == before

    customer.write_stack_yaml(customer.stack_yaml(), "back to 1.0.0")
    assert customer.install(env=env).returncode == 0  # its own backups, on the withdrawn release it runs

    other = customer.stack_yaml().replace(f"stack: {customer.stack}", f"stack: {customer.stack}x")
    customer.write_stack_yaml(other, "a new customer on 1.0.0")
    new = customer.install(env=env)
    shutil.rmtree(settings.stacks_dir() / f"{customer.stack}x", ignore_errors=True)
    assert new.returncode == 2
    assert f"error: new stack {customer.stack}x (it has no backup yet): release demo 1.0.0 was withdrawn" in new.stderr
