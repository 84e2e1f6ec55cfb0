"""mkdocs hook: reference pages generated from the code, so they cannot drift from it.

A page asks for a generated part with a marker line:
    <!-- schema: incarnate.config:StackConfig -->   every field of a pydantic model (and the models it uses)
    <!-- cli -->                                    every command and option of `incarnate`, from its parser
    <!-- tests -->                                  every test file and the first paragraph of its docstring
"""

import argparse
import importlib
import json
import re

MARKER = re.compile(r"^<!-- (schema: (?P<target>[\w.]+:\w+)|(?P<part>cli|tests)) -->$", re.M)


def on_page_markdown(markdown: str, **_) -> str:
    return MARKER.sub(generated, markdown)


def generated(marker: re.Match) -> str:
    if marker["target"]:
        return schema_reference(marker["target"])
    return cli_reference() if marker["part"] == "cli" else tests_index()


def schema_reference(target: str) -> str:
    """The model's fields as a table, then one table per model it uses, from its JSON schema."""
    module, name = target.split(":")
    schema = getattr(importlib.import_module(module), name).model_json_schema()
    sections = [fields_table(schema)]
    for definition, sub in schema.get("$defs", {}).items():
        if sub.get("type") == "object":
            sections.append(f"### {definition}\n\n{sub.get('description', '').strip()}\n\n{fields_table(sub)}")
    return "\n\n".join(sections)


def fields_table(schema: dict) -> str:
    required = set(schema.get("required", []))
    rows = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for field, spec in schema.get("properties", {}).items():
        cells = (
            f"`{field}`",
            type_of(spec),
            default_of(spec, field in required),
            " ".join(spec.get("description", "").split()),
        )
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows)


def default_of(spec: dict, required: bool) -> str:
    """As it would be written in YAML; a section's defaults are those of its own fields, listed below it."""
    if required:
        return "required"
    if "default" not in spec:
        return ""
    value = spec["default"]
    if isinstance(value, dict) and value:
        return "its fields' defaults"
    return f"`{value}`" if isinstance(value, str) else f"`{json.dumps(value)}`"


def type_of(spec: dict) -> str:
    """A JSON schema type in a few words: `list of VolumeSpec`, `integer >= 0`, `one of locked, unlocked`."""
    if "$ref" in spec:
        model = spec["$ref"].rsplit("/", 1)[-1]
        return f"[{model}](#{model.lower()})"
    for union in ("anyOf", "oneOf"):
        if union in spec:
            return " or ".join(type_of(option) for option in spec[union])
    if "enum" in spec:
        return "one of " + ", ".join(f"`{value}`" for value in spec["enum"])
    if "const" in spec:
        return f"`{spec['const']}`"
    kind = spec.get("type", "any")
    if kind == "array":
        return f"list of {type_of(spec.get('items', {}))}"
    if kind == "object" and "additionalProperties" in spec:
        return f"map of name to {type_of(spec['additionalProperties'])}"
    limits = [
        f"{sign} {spec[key]}"
        for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="))
        if key in spec
    ]
    pattern = f" matching `{spec['pattern']}`" if "pattern" in spec else ""
    return " ".join([kind, *limits]) + pattern


def cli_reference() -> str:
    """Each command's usage and options, as `incarnate COMMAND --help` prints them."""
    from cli.main import parser

    sections = []
    for prefix, command in walk(parser(), "incarnate"):
        sections.append(f"### `{prefix}`\n\n{command.description or ''}\n\n```text\n{command.format_help()}```")
    return "\n\n".join(sections)


def walk(command: argparse.ArgumentParser, prefix: str):
    subcommands = [action for action in command._actions if isinstance(action, argparse._SubParsersAction)]
    if not subcommands:
        yield prefix, command
        return
    for name, sub in subcommands[0].choices.items():
        yield from walk(sub, f"{prefix} {name}")


def tests_index() -> str:
    """Every test file with the first sentence of its docstring: where a behaviour is proved."""
    import ast
    from pathlib import Path

    rows = ["| file | what it proves |", "|---|---|"]
    for path in sorted(Path("tests").glob("*/test_*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        first = " ".join(doc.split("\n\n")[0].split()).replace("|", "\\|")
        rows.append(f"| `{path}` | {first} |")
    return "\n".join(rows)
