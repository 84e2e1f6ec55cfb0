"""Every value stack.yaml, release.yaml or a host address validates is matched whole: a trailing newline (which
Python's `$` lets through) or any other control character is refused, naming the field. Several of these values
reach root's files on a host (/etc/hosts, /etc/fstab) or a shell there."""

import copy

import pytest
import yaml

from incarnate.config import parse_stack_config
from incarnate.errors import ConfigError, ReleaseError
from incarnate.releases import parse_descriptor
from incarnate.ssh import SshAddress

STACK = {
    "stack": "acme",
    "product": "demo",
    "release": "1.0.0",
    "timezone": "Europe/Berlin",
    "registry": "incarnate-registry/vendor",
    "services": ["search"],
    "size": "M",
    "backup": {
        "store": {"kind": "local", "path": "/srv/backups"},
        "schedule": "0 2 * * *",
        "drill_schedule": "H 4 * * 0",
        "verify_schedule": "H 5 * * 0",
        "verify_sample": "10%",
    },
    "host": {
        "dns_names": ["app.example.com"],
        "directories": ["/srv/data"],
        "backup_share": {"kind": "nfs", "source": "nas.example.com:/exports/backups", "mount": "/mnt/backups"},
    },
}
SMB_SHARE = {"kind": "smb", "server": "nas.example.com", "share": "backups"}

FIELDS = [
    ("stack",),
    ("product",),
    ("release",),
    ("timezone",),
    ("registry",),
    ("services", 0),
    ("size",),
    ("backup", "store", "path"),
    ("backup", "schedule"),
    ("backup", "drill_schedule"),
    ("backup", "verify_schedule"),
    ("backup", "verify_sample"),
    ("host", "dns_names", 0),
    ("host", "directories", 0),
    ("host", "backup_share", "source"),
    ("host", "backup_share", "mount"),
    ("smb", "server"),
    ("smb", "share"),
]


def with_value(path: tuple, suffix: str) -> dict:
    data = copy.deepcopy(STACK)
    if path[0] == "smb":
        data["host"]["backup_share"] = dict(SMB_SHARE)
        path = ("host", "backup_share", *path[1:])
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = target[path[-1]] + suffix
    return data


def test_the_values_as_given_are_valid():
    assert parse_stack_config(yaml.safe_dump(STACK), "stack.yaml").stack == "acme"
    assert parse_stack_config(yaml.safe_dump(with_value(("smb", "share"), "")), "stack.yaml")


@pytest.mark.parametrize("suffix", ["\n", "\n192.0.2.1 bank.example.com", "\t", "\x00"], ids=repr)
@pytest.mark.parametrize("path", FIELDS, ids=lambda path: ".".join(map(str, path)))
def test_a_control_character_in_a_stack_yaml_value_is_refused_naming_the_field(path, suffix):
    with pytest.raises(ConfigError) as refused:
        parse_stack_config(yaml.safe_dump(with_value(path, suffix)), "stack.yaml")
    named = [part for part in path if isinstance(part, str) and part != "smb"][-1]
    assert named in str(refused.value)


RELEASE = {
    "product": "demo",
    "release": "1.0.0",
    "schema_version": 1,
    "images": {"app": "demo/app:1.0.0"},
    "data_services": [],
    "secrets": ["db_password"],
    "health": {"service": "app", "path": "/health"},
    "sizes": {"S": {"app": {"memory": "512m"}}},
}


@pytest.mark.parametrize(
    "change",
    [
        lambda release: release.update(product="demo\n"),
        lambda release: release.update(release="1.0.0\n"),
        lambda release: release["secrets"].__setitem__(0, "db_password\n"),
        lambda release: release["sizes"]["S"]["app"].update(memory="512m\n"),
    ],
    ids=["product", "release", "secrets", "sizes.memory"],
)
def test_a_trailing_newline_in_a_release_yaml_value_is_refused(change):
    data = copy.deepcopy(RELEASE)
    change(data)
    with pytest.raises(ReleaseError):
        parse_descriptor(yaml.safe_dump(data), "release.yaml")


@pytest.mark.parametrize("url", ["ssh://root@10.0.0.5\n", "ssh://root@10.0.0.5:22\nProxyCommand x", "ssh://ro\tot@h"])
def test_a_control_character_in_a_host_address_is_refused(url):
    with pytest.raises(ConfigError):
        SshAddress.parse(url)


@pytest.mark.parametrize("name", ["acme-drill", "publish-demo-1-0-0", "publish-x"])
def test_a_customer_stack_cannot_take_a_scratch_stack_s_name(name):
    """The drill tears down `<stack>-drill` and publishing `publish-<product>-<release>`: a customer's stack of
    that name would be removed with them."""
    with pytest.raises(ConfigError, match="reserved"):
        parse_stack_config(yaml.safe_dump({**STACK, "stack": name}), "stack.yaml")
