"""The compose policy, one rule at a time, through the check publishing runs (Compose's own `config` on this machine):
a release's compose file may ask nothing of the host beyond its stack unless release.yaml names the exception."""

from pathlib import Path

import pytest
import yaml

from incarnate import settings
from incarnate.errors import ReleaseError
from incarnate.host import Host
from incarnate.publish import ReleaseFolder, check_compose
from incarnate.releases import parse_descriptor

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo" / "releases" / "1.0.0"
MISSING = "/nonexistent/incarnate-policy-marker.env"  # Compose fails on it if it ever tries to read it

CASES = {  # name: (rule, what app gets in compose.yaml, top-level keys, what the refusal names)
    "privileged": ("privileged", {"privileged": True}, {}, "privileged: true"),
    "cap_add": ("capabilities", {"cap_add": ["CHOWN", "cap_net_admin"]}, {}, "cap_add NET_ADMIN"),
    "cap_add ALL": ("capabilities", {"cap_add": ["ALL"]}, {}, "cap_add ALL"),
    "devices": ("devices", {"devices": ["/dev/fuse:/dev/fuse"]}, {}, "device /dev/fuse"),
    "bind of /etc": ("host_mounts", {"volumes": ["files:/data/files", "/etc:/host:ro"]}, {}, "host path /etc"),
    "bind out of the folder": ("host_mounts", {"volumes": ["files:/data/files", "../x:/x"]}, {}, "host path /tmp/"),
    "bind through a volume": (
        "host_mounts",
        {"volumes": ["files:/data/files", "srv:/srv"]},
        {"volumes": {"db": {}, "files": {}, "srv": {"driver_opts": {"type": "none", "o": "bind", "device": "/srv"}}}},
        "volume srv of host path /srv",
    ),
    "secret file": (
        "host_mounts",
        {"secrets": ["key"]},
        {"secrets": {"key": {"file": "/etc/hostname"}}},
        "secret of host path /etc/hostname",
    ),
    "docker socket": (
        "docker_socket",
        {"volumes": ["files:/data/files", "/var/run/docker.sock:/var/run/docker.sock"]},
        {},
        "host path /var/run/docker.sock",
    ),
    "all of the host": ("docker_socket", {"volumes": ["files:/data/files", "/:/host:ro"]}, {}, "host path /"),
    "host network": ("host_namespaces", {"network_mode": "host", "ports": []}, {}, "network_mode: host"),
    "host pid": ("host_namespaces", {"pid": "host"}, {}, "pid: host"),
    "host ipc": ("host_namespaces", {"ipc": "host"}, {}, "ipc: host"),
    "host uts": ("host_namespaces", {"uts": "host"}, {}, "uts: host"),
    "env_file": ("env_file", {"env_file": [MISSING]}, {}, f"env_file {MISSING}"),
    "env_file out of the folder": ("env_file", {"env_file": "../secrets.env"}, {}, "env_file ../secrets.env"),
    "include": ("host_mounts", {}, {"include": ["/etc/shadow"]}, "include /etc/shadow"),
    "extends": ("host_mounts", {"extends": {"file": "/etc/passwd", "service": "x"}}, {}, "extends file /etc/passwd"),
    "build": ("build", {"build": "."}, {}, "build:"),
    "seccomp": ("security_opt", {"security_opt": ["seccomp:unconfined"]}, {}, "security_opt seccomp:unconfined"),
    "apparmor": ("security_opt", {"security_opt": ["apparmor=unconfined"]}, {}, "security_opt apparmor=unconfined"),
    "selinux": ("security_opt", {"security_opt": ["label:disable"]}, {}, "security_opt label:disable"),
}


def demo_with(tmp_path: Path, app: dict, top: dict, allow: list[dict] | None = None) -> ReleaseFolder:
    compose = yaml.safe_load((DEMO / "compose.yaml").read_text())
    compose["services"]["app"].update(app)
    compose.update(top)
    descriptor = (DEMO / "release.yaml").read_text() + (yaml.safe_dump({"allow": allow}) if allow else "")
    files = {"release.yaml": descriptor.encode(), "compose.yaml": yaml.safe_dump(compose).encode()}
    return ReleaseFolder(tmp_path, parse_descriptor(descriptor, str(tmp_path / "release.yaml")), files)


@pytest.mark.parametrize("case", CASES)
def test_a_compose_file_that_reaches_beyond_its_stack_is_refused_naming_service_rule_and_what(tmp_path, case):
    rule, app, top, named = CASES[case]
    with pytest.raises(ReleaseError) as refused:
        check_compose(demo_with(tmp_path, app, top), Host(), settings.registry())
    message = str(refused.value)
    who = "the file" if case == "include" else "service app"
    assert message.startswith(f"{tmp_path / 'compose.yaml'}: {who} "), message
    assert f"({named}" in message and f"; rule {rule})" in message, message
    assert message.endswith("Nothing was published.") and "\n" not in message


@pytest.mark.parametrize("case", ["privileged", "docker socket", "env_file out of the folder", "host pid"])
def test_an_exception_release_yaml_names_with_a_reason_is_let_through_and_shown(tmp_path, case):
    rule, app, top, _ = CASES[case]
    reason = "the demo needs it for this test"
    allow = [{"service": "app", "rule": rule, "reason": reason}]
    if rule == "env_file":  # one that exists, since Compose reads it once it is allowed
        (tmp_path / "host.env").write_text("A=1\n")
        app = {"env_file": [str(tmp_path / "host.env")]}
    assert check_compose(demo_with(tmp_path, app, top, allow), Host(), settings.registry()) == [f"app {rule}: {reason}"]


def test_the_stack_s_own_folder_and_default_capabilities_need_no_exception_and_a_stale_one_is_refused(tmp_path):
    inside = {"volumes": ["files:/data/files", "./config:/etc/app:ro"], "cap_add": ["CHOWN", "NET_BIND_SERVICE"]}
    assert check_compose(demo_with(tmp_path, inside, {}), Host(), settings.registry()) == []
    stale = [{"service": "app", "rule": "privileged", "reason": "it needed it in 0.9"}]
    with pytest.raises(ReleaseError, match=r"service app needs no exception for rule privileged\. Nothing was"):
        check_compose(demo_with(tmp_path, inside, {}, stale), Host(), settings.registry())


def test_release_yaml_names_only_known_rules_services_and_real_reasons(tmp_path):
    for allow, said in (
        (
            [{"service": "app", "rule": "root", "reason": "because it wants to"}],
            "should be 'privileged', 'capabilities'",
        ),
        ([{"service": "web", "rule": "privileged", "reason": "because it wants to"}], "allow privileged: service web"),
        ([{"service": "app", "rule": "privileged", "reason": "ok"}], "at least 10 characters"),
    ):
        with pytest.raises(ReleaseError, match=said):
            demo_with(tmp_path, {}, {}, allow)
