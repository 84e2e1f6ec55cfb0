"""Customer settings: what a release lets each customer choose (site URL, title, admin e-mail, ...), declared in its
release.yaml, given in stack.yaml's `settings:`, checked against each other, and handed to compose.yaml as variables
(`site_title` -> `${SITE_TITLE}`) and so to the services and hooks that read them.

A secret setting (a licence key, a mail relay's password) is never written in the customer repo: it is kept in the
stack's secrets (`incarnate secret REPO NAME --set`), like the secrets incarnate generates."""

import re
from typing import Literal

from pydantic import Field, model_validator

from incarnate.config import Strict
from incarnate.errors import ConfigError

SETTING_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# Every stack has it: where its users reach it. Stacks publish on the host's loopback, so without one the app is
# told the address an operator reaches on the host itself.
PUBLIC_URL = "public_url"
URL = re.compile(r"^https?://[^\s/?#]+(/[^\s]*)?$")
EMAIL = re.compile(r"^[^\s@]+@[^\s@]+\.[^\s@]+$")
Value = str | int | bool

CHECKS = {
    "string": lambda value: isinstance(value, str),
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "boolean": lambda value: isinstance(value, bool),
    "url": lambda value: isinstance(value, str) and URL.fullmatch(value) is not None,
    "email": lambda value: isinstance(value, str) and EMAIL.fullmatch(value) is not None,
}
EXPECTED = {
    "string": "a string",
    "integer": "a whole number",
    "boolean": "true or false",
    "url": "an http:// or https:// URL",
    "email": "an e-mail address",
}


class SettingSpec(Strict):
    """One setting a release lets its customers choose."""

    type: Literal[tuple(CHECKS)] = Field(default="string", description="string, integer, boolean, url or email.")
    description: str = Field(min_length=3, description="What it means, shown when a stack.yaml gets it wrong.")
    default: Value | None = Field(default=None, description="Used when stack.yaml does not set it.")
    required: bool = Field(default=False, description="Every stack.yaml must set it (no default).")
    choices: list[Value] = Field(default=[], description="The only values allowed, when set.")
    example: Value | None = Field(
        default=None, description="The value publishing runs the release with, for a required setting."
    )
    secret: bool = Field(
        default=False,
        description="Kept in the stack's secrets (`incarnate secret REPO NAME --set`), never in stack.yaml.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> "SettingSpec":
        if self.required and self.default is not None:
            raise ValueError("a required setting has no default")
        if self.secret and (self.default is not None or self.example is not None):
            raise ValueError("a secret setting has no default or example (every customer would share it)")
        if self.required and not self.secret and self.example is None:
            raise ValueError("a required setting needs an example: the value publishing runs the release with")
        named = [("default", self.default), ("example", self.example), *(("choice", c) for c in self.choices)]
        for what, value in named:
            if value is not None and (problem := self.problem(value)):
                raise ValueError(f"its {what} {value!r}: {problem}")
        return self

    def problem(self, value: object) -> str | None:
        """Why `value` is not allowed for this setting; None when it is."""
        if not CHECKS[self.type](value):
            return f"expected {EXPECTED[self.type]}"
        if self.choices and value not in self.choices:
            return f"expected one of {', '.join(map(str, self.choices))}"
        return None


STANDARD = {PUBLIC_URL: SettingSpec(type="url", description="where the stack's users reach it")}


def describe(name: str, spec: SettingSpec) -> str:
    """One setting as an operator writing stack.yaml needs it: `language (string, default en, one of en, de): ...`."""
    default = "http://127.0.0.1:<http_port>" if name == PUBLIC_URL and spec.default is None else spec.default
    facts = [
        spec.type,
        *(["secret: incarnate secret REPO NAME --set"] if spec.secret else []),
        *(["required"] if spec.required else []),
        *([f"default {render(default)}"] if default is not None else []),
        *([f"e.g. {render(spec.example)}"] if spec.example is not None else []),
        *([f"one of {', '.join(map(render, spec.choices))}"] if spec.choices else []),
    ]
    return f"{name} ({', '.join(facts)}): {spec.description}"


def describe_all(declared: dict[str, SettingSpec]) -> list[str]:
    """Every setting a stack of the release may set, public_url first."""
    return [describe(name, spec) for name, spec in {**STANDARD, **declared}.items()]


def variable(name: str) -> str:
    """The variable compose.yaml reads a setting from: `site_title` -> `${SITE_TITLE}`."""
    return name.upper()


def render(value: Value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def declared_names(declared: dict[str, SettingSpec]) -> list[str]:
    """Every setting a release's stack may set: its own, and public_url."""
    return [PUBLIC_URL, *(name for name in declared if name != PUBLIC_URL)]


def check_names(declared: dict[str, SettingSpec]) -> None:
    bad = [name for name in declared if not SETTING_NAME.fullmatch(name)]
    if bad:
        raise ValueError(
            f"expected setting names of lowercase letters, digits and underscores, got {', '.join(map(repr, bad))}"
        )
    if PUBLIC_URL in declared and declared[PUBLIC_URL].type != "url":
        raise ValueError(f"{PUBLIC_URL} is every stack's standard setting: declared, its type is url")


def resolve(declared: dict[str, SettingSpec], given: dict[str, Value], source: str, http_port: int) -> dict[str, str]:
    """The stack's settings as compose variables, secret ones left out (they come from the vault); ConfigError
    naming the first bad one and what is allowed."""
    specs = {**STANDARD, **declared}
    for name, value in given.items():
        spec = specs.get(name)
        if spec is None:
            raise ConfigError(
                f"{source}: setting {name} is not one the release defines (its settings: "
                f"{', '.join(declared_names(declared))})."
            )
        if spec.secret:
            raise ConfigError(
                f"{source}: setting {name} is secret and never written in the customer repo; remove it and keep it "
                f"in the stack's secrets with `incarnate secret REPO {name} --set` (the value on stdin)."
            )
        if problem := spec.problem(value):
            raise ConfigError(f"{source}: setting {name} is {value!r}: {problem} ({spec.description}).")
    missing = [name for name, spec in specs.items() if spec.required and not spec.secret and name not in given]
    if missing:
        spec = specs[missing[0]]
        choices = f", one of {', '.join(map(str, spec.choices))}" if spec.choices else ""
        raise ConfigError(
            f"{source}: setting {missing[0]} is required by the release and not set ({spec.description}; "
            f"{EXPECTED[spec.type]}{choices})."
        )
    values = {name: given[name] if name in given else spec.default for name, spec in specs.items() if not spec.secret}
    values[PUBLIC_URL] = values[PUBLIC_URL] or f"http://127.0.0.1:{http_port}"
    return {variable(name): "" if value is None else render(value) for name, value in values.items()}


def for_publishing(declared: dict[str, SettingSpec], http_port: int) -> dict[str, str]:
    """The settings a release runs with while it is published: each one's example, else its default."""
    given = {name: spec.example for name, spec in declared.items() if spec.example is not None}
    return resolve(declared, given, "release.yaml's examples", http_port)


def secret_names(declared: dict[str, SettingSpec]) -> list[str]:
    return [name for name, spec in declared.items() if spec.secret]


def missing_secrets(declared: dict[str, SettingSpec], kept: dict[str, str], stack: str) -> None:
    """A required secret setting the vault does not hold stops the deployment before anything changes."""
    missing = [name for name, spec in declared.items() if spec.secret and spec.required and not kept.get(name)]
    if missing:
        raise ConfigError(
            f"stack {stack}: the release requires the secret setting {missing[0]} "
            f"({declared[missing[0]].description}), which its secrets do not hold; set it with `incarnate secret REPO "
            f"{missing[0]} --set` (the value on stdin) and run again. Nothing was changed."
        )
