"""Lifecycle hooks and the proof publishing makes of a vanilla backup, on copies of the demo release: each hook point
runs where the product contract says, in order, and a release whose vanilla backup does not restore as a new
customer's install would is not published."""

import re
import uuid
from pathlib import Path

import yaml

from tests.e2e.conftest import left_on_host
from tests.e2e.test_publish import publish, release_list

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo" / "releases" / "1.0.0"
# Each hook appends its point to a file in the demo's files volume: the data says which ran, in which order.
LOG_POINT = ["sh", "-c", 'echo "$INCARNATE_HOOK" >> /data/files/hooks.log']
POINTS = ("first_install", "after_install", "after_restore", "after_update", "before_backup", "after_backup")


def demo_with_hooks(target: Path, hooks: dict, settings: dict | None = None) -> tuple[Path, str]:
    """demo 1.0.0 under a product name of its own, with `hooks` and `settings` in its release.yaml (each setting
    given to the app as a variable of its name); (folder, product)."""
    product = f"hooked{uuid.uuid4().hex[:6]}"
    target.mkdir()
    descriptor = yaml.safe_load((DEMO / "release.yaml").read_text())
    (target / "release.yaml").write_text(
        yaml.safe_dump({**descriptor, "product": product, "hooks": hooks, "settings": settings or {}})
    )
    compose = yaml.safe_load((DEMO / "compose.yaml").read_text())
    compose["services"]["app"]["environment"].update({name.upper(): f"${{{name.upper()}}}" for name in settings or {}})
    (target / "compose.yaml").write_text(yaml.safe_dump(compose))
    return target, product


def test_a_release_whose_vanilla_backup_does_not_restore_is_not_published(tmp_path):
    releases = str(tmp_path / "releases")
    failing = {"service": "app", "command": ["sh", "-c", 'echo "seen $DB_PASSWORD"; exit 3']}
    folder, product = demo_with_hooks(tmp_path / "release", {"after_restore": [failing]})
    published = publish(folder, releases)
    output = published.stdout + published.stderr
    assert published.returncode == 1, output[-3000:]
    assert f"{product} 1.0.0: its vanilla backup" in output and "does not restore as a new customer's install" in output
    assert "the after_restore hook `sh -c echo" in output and "in service app" in output
    assert "seen ****" in output and not re.search(r"seen [A-Za-z0-9_-]{20,}", output)  # the stack secret is masked
    assert product not in release_list(releases)
    for stack in (f"publish-{product}-1-0-0", f"publish-{product}-1-0-0-proof"):
        assert left_on_host(stack) == [], stack


def test_each_hook_point_runs_where_the_product_contract_says_and_a_secret_setting_comes_from_the_vault(
    customer, tmp_path
):
    releases = str(tmp_path / "releases")
    hooks = {point: [{"service": "app", "command": LOG_POINT}] for point in POINTS}
    # as Debian's packages do in an app's content folder: a link out of the volume, into the image
    hooks["first_install"].append({"service": "app", "command": ["ln", "-s", "/usr/share/doc", "/data/files/doc"]})
    folder, product = demo_with_hooks(
        tmp_path / "release",
        hooks,
        {"licence_key": {"description": "the customer's licence", "secret": True, "required": True}},
    )
    published = publish(folder, releases)
    assert published.returncode == 0, published.stdout[-3000:] + published.stderr[-3000:]

    env = {"INCARNATE_RELEASES": releases}
    customer.use(product)
    refused = customer.install(env=env)
    assert refused.returncode == 2, refused.stdout[-3000:] + refused.stderr[-3000:]
    assert "requires the secret setting licence_key (the customer's licence)" in refused.stderr
    assert "incarnate secret REPO licence_key --set" in refused.stderr
    assert left_on_host(customer.stack) == []  # refused in load config, before anything changed
    kept = customer.incarnate("secret", str(customer.repo), "licence_key", "--set", env=env, input="LIC-4711\n")
    assert kept.returncode == 0, kept.stderr[-2000:]
    assert "LIC-4711" not in kept.stdout + kept.stderr

    installed = customer.install(env=env)
    output = installed.stdout + installed.stderr
    assert installed.returncode == 0, output[-3000:]
    # the vanilla backup holds what publishing's hooks wrote up to its snapshot: first_install, before_backup; a new
    # customer's install adds after_install, after_restore, and the closing backup its two (the hooks changed data)
    log = customer.compose("exec", "-T", "app", "cat", "/data/files/hooks.log").split()
    assert log == ["first_install", "before_backup", "after_install", "after_restore", "before_backup", "after_backup"]
    assert "closing backup not needed" not in output
    assert customer.compose("exec", "-T", "app", "printenv", "LICENCE_KEY").strip() == "LIC-4711"
    # the vanilla backup held an outward symlink: published (its proof restored it) and installed as a link
    assert customer.compose("exec", "-T", "app", "readlink", "/data/files/doc").strip() == "/usr/share/doc"


def test_publishing_warns_of_a_shared_default_password_and_of_a_service_slow_to_stop(tmp_path):
    releases = str(tmp_path / "releases")
    folder, product = demo_with_hooks(tmp_path / "release", {})
    compose = yaml.safe_load((folder / "compose.yaml").read_text())
    compose["services"]["app"]["environment"]["API_TOKEN"] = "${API_TOKEN:-letmein}"
    compose["services"]["idle"] = {  # ignores SIGTERM, as a shell as PID 1 without an init does
        "image": compose["services"]["app"]["image"],
        "entrypoint": ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"],
        "healthcheck": {"disable": True},
    }
    (folder / "compose.yaml").write_text(yaml.safe_dump(compose))
    descriptor = yaml.safe_load((folder / "release.yaml").read_text())
    descriptor["images"]["idle"] = descriptor["images"]["app"]
    (folder / "release.yaml").write_text(yaml.safe_dump(descriptor))

    published = publish(folder, releases)
    output = published.stdout + published.stderr
    assert published.returncode == 0, output[-3000:]  # warnings, not refusals
    assert "warning: compose.yaml gives ${API_TOKEN} a default (`${API_TOKEN:-...}`): every customer" in output
    assert re.search(r"warning: service idle took 1\d s to stop on SIGTERM \(more than 5 s\)", output)
    assert "service app took" not in output and "service db took" not in output
    assert product in release_list(releases)
