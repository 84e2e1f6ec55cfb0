"""The layers' import graph, read from the source (every import: at the top, inside functions, under TYPE_CHECKING):
the core (incarnate/) imports neither Prefect nor any layer above it, no module takes part in an import loop, and
every core module imports with Prefect unavailable."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("incarnate", "blocks", "tasks", "flows", "deployments", "cli")  # the core first, then upwards


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for layer in LAYERS for path in (ROOT / layer).rglob("*.py")}


def imported_names(module: str, path: Path) -> set[str]:
    """Every dotted name the module imports, relative imports made absolute; `from a import b` gives a and a.b."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            names |= {base, *(f"{base}.{alias.name}" for alias in node.names)}
    return names


def known(name: str) -> str | None:
    """The project module a dotted name lies in (a.b.C -> a.b), None outside the project."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def dependencies(module: str) -> set[str]:
    """The project modules importing `module` runs: those it imports and, for one inside a package the module is not
    part of, that package (Python runs a package's __init__ before any module in it)."""
    own = {".".join(module.split(".")[:depth]) for depth in range(1, module.count(".") + 2)}
    found = set()
    for name in imported_names(module, MODULES[module]):
        if target := known(name):
            parts = target.split(".")
            found |= {".".join(parts[:depth]) for depth in range(1, len(parts) + 1)} - own
    return {name for name in found if name in MODULES}


def loops() -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in dependencies(module):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while (member := stack.pop()) != module:
                group.append(member)
            if group:
                groups.append(sorted([module, *group]))

    for module in MODULES:
        if module not in index:
            visit(module)
    return groups


def test_the_graph_is_read_from_every_layer():
    assert {module.split(".")[0] for module in MODULES} == set(LAYERS)
    assert "incarnate.stages.restore" in dependencies("tasks.restore")  # a sanity check of the reading itself


def test_the_core_imports_neither_prefect_nor_a_layer_above_it():
    upward = {
        module: sorted(name for name in imported_names(module, path) if name.split(".")[0] in ("prefect", *LAYERS[1:]))
        for module, path in MODULES.items()
        if module.split(".")[0] == "incarnate"
    }
    assert {module: names for module, names in upward.items() if names} == {}


def test_no_module_takes_part_in_an_import_loop():
    assert loops() == []


BLOCK_PREFECT = """
import importlib, pkgutil, sys
class NoPrefect:
    def find_spec(self, name, path=None, target=None):
        if name == "prefect" or name.startswith("prefect."):
            raise ImportError(f"prefect is unavailable here ({name})")
sys.meta_path.insert(0, NoPrefect())
import incarnate
for module in pkgutil.walk_packages(incarnate.__path__, "incarnate."):
    importlib.import_module(module.name)
print(len([name for name in sys.modules if name.startswith("incarnate")]))
"""


def test_every_core_module_imports_with_prefect_unavailable():
    done = subprocess.run([sys.executable, "-c", BLOCK_PREFECT], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout) == len([module for module in MODULES if module.split(".")[0] == "incarnate"])
