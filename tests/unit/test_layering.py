"""Imports only point down the layers of DESIGN.md ("The house"), there is no import circle, and
components hold no logic.

Every Python package of the repository is mapped: `civicml.*`, `components`, `pipelines`, `tools`
and `benchmarks`. A module with no layer fails the test, so a new package has to be placed.

How imports count (decided for issue 15 item 4):
- Module-level and function-level imports count alike, for the layer order and for circles. A
  function-level import is lazy, not absent: `steps -> orchestration.kfp_client -> pipelines ->
  components -> steps` was a circle made only of function-level imports, and it is what kept the
  retrain step from running without the pipeline definitions.
- Imports under `if TYPE_CHECKING:` never run; they count for the layer order (a type from a higher
  layer is still an upward dependency) but not for circles (annotations of two modules may name
  each other's types).
- `from pkg import name` points at `pkg.name` when that is a module of the repo, else at `pkg`.
- A module importing from its own package's `__init__` is not an edge to that `__init__`'s
  re-exports: only what the importing statement names is followed.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("civicml", "components", "pipelines", "tools", "benchmarks")

# Higher number = higher layer; an import may point down or within its own layer, never up.
# The order of DESIGN.md "The house"; `tools` and `benchmarks` sit above everything (they drive
# the library and the test servers; nothing in the library imports them).
LAYERS = {
    "tools": 5,
    "benchmarks": 5,
    "civicml.cli": 4,
    "components": 4,
    "pipelines": 4,
    "civicml.steps": 3,
    "civicml.orchestration": 3,
    "civicml.review": 3,
    "civicml.reproduce": 3,
    "civicml.tuning": 2,
    "civicml.evaluation": 2,
    "civicml.reporting": 2,
    "civicml.governance": 2,
    "civicml.serving": 2,
    "civicml.deploy": 2,
    "civicml.monitoring": 2,
    "civicml.modeling": 1,
    "civicml.data": 1,
    "civicml.storage": 0,
    "civicml.documents": 0,
    "civicml.catalog": 0,
    "civicml.config": 0,
    "civicml.provenance": 0,
    "civicml": 0,  # civicml/__init__.py, civicml/__main__.py
}


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module of the repo
    line: int
    type_only: bool


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _all_modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            out[_module_name(path)] = path
    return out


MODULES = _all_modules()
# tools/ is on pytest's pythonpath, so the test servers are imported as `testcluster.*`.
ALIASES = {"testcluster": "tools.testcluster"}


def _resolve(name: str) -> str | None:
    """The repo module `name` refers to (its longest known prefix), or None when outside the repo."""
    head = name.split(".")[0]
    if head in ALIASES:
        name = ALIASES[head] + name[len(head) :]
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _type_only_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                for sub in ast.walk(child):
                    if hasattr(sub, "lineno"):
                        lines.add(sub.lineno)
    return lines


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def imports_of(module: str, path: Path) -> list[Import]:
    """Every import statement of `module` that points at a module of the repo."""
    tree = ast.parse(path.read_text(), filename=str(path))
    type_only = _type_only_lines(tree)
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = _package_of(module, path).split(".")
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join([*pkg, *([base] if base else [])])
            names = [f"{base}.{a.name}" for a in node.names]
        for name in names:
            target = _resolve(name)
            if target is not None and target != module:
                out.append(Import(module, target, node.lineno, node.lineno in type_only))
    return out


def layer_of(module: str) -> str:
    parts = module.split(".")
    while parts:
        if ".".join(parts) in LAYERS:
            return ".".join(parts)
        parts.pop()
    raise KeyError(module)


def layer_violations(modules: dict[str, Path]) -> list[str]:
    out = []
    for module, path in sorted(modules.items()):
        own = layer_of(module)
        for imp in imports_of(module, path):
            target = layer_of(imp.target)
            if LAYERS[target] > LAYERS[own]:
                out.append(
                    f"{path.relative_to(ROOT)}:{imp.line} imports {imp.target} "
                    f"({own} is layer {LAYERS[own]}, {target} is layer {LAYERS[target]}: points up)"
                )
    return out


def import_circles(modules: dict[str, Path]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each as a cycle to print."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for imp in imports_of(module, path):
            if not imp.type_only and imp.target in graph:
                graph[module].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(_one_cycle(graph, set(comp)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _one_cycle(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    """One concrete cycle inside a strongly connected component, for the failure message."""
    start = min(comp)
    path, seen = [start], {start}
    while True:
        nxt = sorted(w for w in graph[path[-1]] if w in comp)
        back = [w for w in nxt if w in seen]
        if back:
            return path[path.index(back[0]) :] + [back[0]]
        path.append(nxt[0])
        seen.add(nxt[0])


def test_every_module_of_every_package_has_a_layer():
    missing = []
    for module in MODULES:
        try:
            layer_of(module)
        except KeyError:
            missing.append(module)
    assert not missing, f"modules with no layer (add them to DESIGN.md and LAYERS): {missing}"
    # The map is not vacuous: every package is seen, components and pipelines included.
    assert {m.split(".")[0] for m in MODULES} == set(PACKAGES)


def test_every_import_points_down():
    violations = layer_violations(MODULES)
    assert not violations, "\n".join(violations)


def test_no_import_circle():
    circles = import_circles(MODULES)
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


# -- the checks themselves can fail: each is run on a small tree that breaks it ------------------------------


@pytest.fixture
def fake_repo(tmp_path, monkeypatch):
    """Point the checks at a scratch tree of modules written by the test."""

    def make(files: dict[str, str]) -> dict[str, Path]:
        for rel, text in files.items():
            p = tmp_path / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        this = sys.modules[__name__]
        monkeypatch.setattr(this, "ROOT", tmp_path)
        modules = {_module_name(p): p for pkg in PACKAGES for p in sorted((tmp_path / pkg).rglob("*.py"))}
        monkeypatch.setattr(this, "MODULES", modules)
        return modules

    return make


def test_a_function_level_circle_through_components_is_caught(fake_repo):
    # The review's circle: steps -> orchestration -> pipelines -> components -> steps, all lazy imports.
    modules = fake_repo(
        {
            "civicml/__init__.py": "",
            "civicml/steps.py": "def retrain():\n    from civicml.orchestration import kfp_client\n",
            "civicml/orchestration/__init__.py": "",
            "civicml/orchestration/kfp_client.py": "def compile():\n    from pipelines import training\n",
            "pipelines/__init__.py": "",
            "pipelines/training.py": "from components import train\n",
            "components/__init__.py": "",
            "components/train.py": "def train():\n    from civicml import steps\n",
        }
    )
    circles = import_circles(modules)
    assert circles == [
        [
            "civicml.orchestration.kfp_client",
            "pipelines.training",
            "components.train",
            "civicml.steps",
            "civicml.orchestration.kfp_client",
        ]
    ]
    assert any("kfp_client.py:2 imports pipelines.training" in v for v in layer_violations(modules))


def test_a_module_level_circle_inside_one_layer_is_caught_and_type_only_imports_are_not(fake_repo):
    # storage/store.py <-> storage/s3.py: same layer, so only the circle check can see it.
    modules = fake_repo(
        {
            "civicml/__init__.py": "",
            "civicml/storage/__init__.py": "",
            "civicml/storage/store.py": "from civicml.storage.s3 import S3Store\n",
            "civicml/storage/s3.py": "from civicml.storage import store\n",
            "civicml/storage/base.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from civicml.storage.local import Local\n"
            ),
            "civicml/storage/local.py": "from civicml.storage.base import Store\n",
        }
    )
    assert layer_violations(modules) == []
    assert import_circles(modules) == [["civicml.storage.s3", "civicml.storage.store", "civicml.storage.s3"]]


def test_an_upward_type_only_import_still_points_up(fake_repo):
    modules = fake_repo(
        {
            "civicml/__init__.py": "",
            "civicml/config.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from civicml.cli import app\n"
            ),
            "civicml/cli/__init__.py": "app = None\n",
        }
    )
    assert import_circles(modules) == []
    assert layer_violations(modules) == [
        "civicml/config.py:3 imports civicml.cli (civicml.config is layer 0, civicml.cli is layer 4: points up)"
    ]


# -- components hold no logic -----------------------------------------------------------------------------


def test_components_are_thin_and_call_steps():
    for path in sorted((ROOT / "components").glob("*.py")):
        if path.name.startswith("_"):
            continue
        tree = ast.parse(path.read_text())
        funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name != "component"]
        assert funcs, path
        for fn in funcs:
            body = [n for n in fn.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
            assert len(body) <= 6, f"{path.name}:{fn.name} has {len(body)} statements; move logic to civicml.steps"
            src = ast.unparse(fn)
            assert "civicml" in src and "steps" in src, f"{path.name}:{fn.name} must call civicml.steps"
            for node in ast.walk(fn):
                assert not isinstance(node, (ast.For, ast.While, ast.Try)), f"{path.name}:{fn.name} has control flow"
