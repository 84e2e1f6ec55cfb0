"""Customer settings (release.yaml declares, stack.yaml chooses) and lifecycle hooks as release.yaml states them."""

import pytest

from incarnate.errors import ConfigError, ReleaseError
from incarnate.hooks import masked
from incarnate.product_settings import for_publishing, resolve
from incarnate.stages.start import hook_points
from tests.unit.test_releases import descriptor

SETTINGS = {
    "site_title": {"description": "shown on every page", "default": "Shop"},
    "language": {"description": "the shop's language", "default": "en", "choices": ["en", "de"]},
    "admin_email": {"type": "email", "description": "who gets alerts", "required": True, "example": "a@b.example"},
    "seats": {"type": "integer", "description": "licensed seats", "default": 5},
    "beta": {"type": "boolean", "description": "beta features", "default": False},
    "licence_key": {"description": "the customer's licence", "secret": True, "required": True},
}


def declared():
    return descriptor(settings=SETTINGS).settings


def test_a_stack_gets_its_choices_the_defaults_and_a_public_url_as_compose_variables():
    variables = resolve(declared(), {"admin_email": "ops@acme.example", "seats": 20}, "stack.yaml", 8093)
    assert variables == {
        "PUBLIC_URL": "http://127.0.0.1:8093",
        "SITE_TITLE": "Shop",
        "LANGUAGE": "en",
        "ADMIN_EMAIL": "ops@acme.example",
        "SEATS": "20",
        "BETA": "false",
    }  # the secret licence key comes from the vault, never from here
    chosen = resolve(declared(), {"admin_email": "o@a.example", "public_url": "https://shop.acme.example"}, "s", 1)
    assert chosen["PUBLIC_URL"] == "https://shop.acme.example"


@pytest.mark.parametrize(
    "given, expected",
    [
        ({"admin_email": "a@b.example", "language": "fr"}, "setting language is 'fr': expected one of en, de"),
        ({"admin_email": "not-an-address"}, "setting admin_email is 'not-an-address': expected an e-mail address"),
        ({"admin_email": "a@b.example", "seats": "many"}, "setting seats is 'many': expected a whole number"),
        ({"admin_email": "a@b.example", "beta": "yes"}, "setting beta is 'yes': expected true or false"),
        ({"admin_email": "a@b.example", "colour": "red"}, "setting colour is not one the release defines"),
        ({"admin_email": "a@b.example", "public_url": "shop.acme"}, "expected an http:// or https:// URL"),
        ({}, "setting admin_email is required by the release and not set (who gets alerts; an e-mail address)"),
        ({"admin_email": "a@b.example", "licence_key": "K-1"}, "setting licence_key is secret and never written"),
    ],
)
def test_a_bad_setting_is_refused_naming_it_and_what_is_allowed(given, expected):
    with pytest.raises(ConfigError) as refused:
        resolve(declared(), given, "repo at abc: stack.yaml", 8080)
    assert str(refused.value).startswith("repo at abc: stack.yaml: ")
    assert expected in str(refused.value)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"description": "x y", "required": True, "default": "a"}, "a required setting has no default"),
        ({"description": "x y", "secret": True, "default": "a"}, "a secret setting has no default or example"),
        ({"description": "x y", "required": True}, "a required setting needs an example"),
        ({"description": "x y", "type": "integer", "default": "five"}, "its default 'five': expected a whole number"),
        ({"description": "x y", "choices": ["a"], "default": "b"}, "its default 'b': expected one of a"),
    ],
)
def test_a_bad_setting_declaration_is_refused_when_the_release_is_read(spec, expected):
    with pytest.raises(ReleaseError) as refused:
        descriptor(settings={"name": spec})
    assert expected in str(refused.value)


def test_publishing_runs_a_release_with_its_examples_and_defaults():
    assert for_publishing(declared(), 18080)["ADMIN_EMAIL"] == "a@b.example"


def test_release_yaml_hooks_name_a_point_and_a_service_of_the_release():
    hooks = descriptor(hooks={"after_restore": [{"service": "web", "command": ["bin/reindex"]}]})
    assert [hook.command for hook in hooks.hooks_at("after_restore")] == [["bin/reindex"]]
    assert hooks.hooks_at("before_backup") == []
    with pytest.raises(ReleaseError, match="hooks after_restore: service api: not a service under images"):
        descriptor(hooks={"after_restore": [{"service": "api", "command": ["x"]}]})
    with pytest.raises(ReleaseError, match="hooks"):
        descriptor(hooks={"on_tuesday": [{"service": "web", "command": ["x"]}]})
    with pytest.raises(ReleaseError, match="timeout"):
        descriptor(hooks={"after_restore": [{"service": "web", "command": ["x"], "timeout": 0}]})


def test_a_deployment_runs_after_install_only_on_vanilla_data_and_after_update_only_in_an_update():
    assert hook_points(from_vanilla=True, update=False) == ["after_install", "after_restore"]
    assert hook_points(from_vanilla=False, update=True) == ["after_restore", "after_update"]


def test_a_secret_and_a_setting_of_one_name_are_refused():
    with pytest.raises(ReleaseError, match="DB_PASSWORD: both a secret and a setting"):
        descriptor(secrets=["db_password"], settings={"db_password": {"description": "the password"}})


def test_a_hook_never_shows_a_stack_secret():
    assert masked("login with s3cr3t-value failed", ["s3cr3t-value"]) == "login with **** failed"
