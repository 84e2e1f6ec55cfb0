"""An off-the-shelf product nobody here wrote, onboarded with hooks and settings alone: MediaWiki from Debian's
package with MariaDB (examples/mediawiki, published by set-up). Its installer is a first_install hook, the customer's
admin password an after_install hook, its schema upgrade an after_update hook; its name, language and contact are
the customer's settings. No shell in its compose.yaml."""

import http.cookiejar
import json
import os
import re
import urllib.parse
import urllib.request
from pathlib import Path

import yaml
from prefect.client.orchestration import get_client

from tests.e2e.conftest import flow_run_id, left_on_host

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mediawiki" / "releases"


class Wiki:
    """MediaWiki's own API, as a user's browser would drive it (a session, tokens)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def api(self, **params: str) -> dict:
        data = urllib.parse.urlencode({**params, "format": "json"}).encode()
        with self.opener.open(f"{self.url}/api.php", data, timeout=30) as response:
            return json.load(response)

    def token(self, kind: str) -> str:
        return self.api(action="query", meta="tokens", type=kind)["query"]["tokens"][f"{kind}token"]

    def log_in(self, password: str) -> str:
        return self.api(
            action="clientlogin",
            username="Admin",
            password=password,
            logintoken=self.token("login"),
            loginreturnurl=self.url,
        )["clientlogin"]["status"]

    def edit(self, title: str, text: str) -> None:
        result = self.api(action="edit", title=title, text=text, token=self.token("csrf"))
        assert result.get("edit", {}).get("result") == "Success", result

    def page(self, title: str) -> str | None:
        pages = self.api(action="query", prop="revisions", rvprop="content", rvslots="main", titles=title)
        page = next(iter(pages["query"]["pages"].values()))
        return None if "missing" in page else page["revisions"][0]["slots"]["main"]["*"]

    def title(self) -> str:
        with self.opener.open(f"{self.url}/index.php?title=Main_Page", timeout=30) as response:
            return re.search(r"<title>(.*?)</title>", response.read().decode()).group(1)


def stack_yaml(customer, release: str, **settings: str) -> str:
    return customer.stack_yaml(release) + yaml.safe_dump({"settings": settings})


def test_the_example_has_no_shell_in_its_compose_file():
    for compose in EXAMPLE.glob("*/compose.yaml"):
        services = yaml.safe_load(compose.read_text())["services"]
        assert not any("command" in service or "entrypoint" in service for service in services.values()), compose


def test_release_list_shows_what_a_stack_yaml_may_set_and_which_hooks_run():
    from incarnate import settings
    from tests.e2e.test_publish import release_list

    listed = release_list(settings.releases(), "mediawiki")
    for line in (
        "admin_email (email, required, e.g. admin@example.invalid): who users write to about the wiki",
        "language (string, default en, one of en, de, fr): the wiki's language",
        "public_url (url, default http://127.0.0.1:<http_port>): where the stack's users reach it",
    ):
        assert f"    setting   {line}\n" in listed, listed
    assert "    hooks     first_install, after_install, after_update\n" in listed


def test_mediawiki_installs_updates_and_recovers_with_hooks_and_settings_alone(customer):
    customer.product = "mediawiki"
    customer.write_stack_yaml(stack_yaml(customer, "1.0.0", site_name="Acme Knowledge", language="xx"))
    refused = customer.install()
    assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr[-2000:]
    assert "setting language is 'xx': expected one of en, de, fr" in refused.stderr
    assert left_on_host(customer.stack) == []

    customer.write_stack_yaml(stack_yaml(customer, "1.0.0", site_name="Acme Knowledge", admin_email="it@acme.example"))
    installed = customer.install()
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    assert "after_install hooks ok" in installed.stdout + installed.stderr
    password = customer.incarnate("secret", str(customer.repo), "admin_password").stdout.strip()
    wiki = Wiki(customer.url)
    assert wiki.title().endswith("Acme Knowledge")
    # the vanilla backup was made with publishing's throwaway password: the hook gave Admin this stack's own
    assert wiki.log_in(password) == "PASS"
    wiki.edit("Runbook", "Restart the frobnicator at 02:00.")

    customer.write_stack_yaml(
        stack_yaml(customer, "1.1.0", site_name="Acme Handbook", language="de", admin_email="it@acme.example")
    )
    updated = customer.incarnate("update", os.path.relpath(customer.repo))
    output = updated.stdout + updated.stderr
    assert updated.returncode == 0, output[-3000:]
    with get_client(sync_client=True) as client:  # the Runs list says whose update, from what to what
        run = client.read_flow_run(flow_run_id(output))
    assert run.name.startswith(f"{customer.stack} 1.0.0→1.1.0 ("), run.name
    assert {f"stack:{customer.stack}", "product:mediawiki", "release:1.1.0"} <= set(run.tags)
    assert run.parameters["repo"] == str(customer.repo)  # given relative, stored absolute
    assert "after_update hooks ok" in output
    assert "after_update hook in wiki: Purging caches...done." in output  # update.php's own words, in the run log
    assert password not in output
    wiki = Wiki(customer.url)
    assert wiki.title().endswith("Acme Handbook")
    assert wiki.page("Runbook") == "Restart the frobnicator at 02:00."
    status = customer.incarnate("status", str(customer.repo)).stdout
    assert "  setting   site_name: Acme Handbook\n" in status and "  setting   language: de\n" in status
    assert password not in status

    customer.remove_stack()  # total loss
    recovered = customer.incarnate("recover", str(customer.repo))
    assert recovered.returncode == 0, recovered.stdout[-3000:] + recovered.stderr[-3000:]
    assert "after_install hooks" not in recovered.stdout + recovered.stderr  # its data is the customer's, not vanilla
    wiki = Wiki(customer.url)
    assert wiki.page("Runbook") == "Restart the frobnicator at 02:00."
    assert wiki.log_in(password) == "PASS"
    assert wiki.title().endswith("Acme Handbook")

    drilled = customer.incarnate("drill", str(customer.repo))
    assert drilled.returncode == 0, drilled.stdout[-3000:] + drilled.stderr[-3000:]
