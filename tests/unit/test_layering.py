"""Imports only point down the layers of DESIGN.md; components hold no logic."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Higher number = higher layer. A module may import only from its own layer or below.
LAYERS = {
    "cli": 4,
    "steps": 3,
    "orchestration": 3,
    "reproduce": 3,
    "review": 3,
    "tuning": 2,
    "evaluation": 2,
    "reporting": 2,
    "governance": 2,
    "serving": 2,
    "deploy": 2,
    "monitoring": 2,
    "modeling": 1,
    "data": 1,
    "storage": 0,
    "config": 0,
    "catalog": 0,
    "provenance": 0,
}


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "civicml" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
            out.extend(f"{node.module}.{a.name}" for a in node.names if node.module == "civicml")
        elif isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
    return out


def test_every_civicml_import_points_down():
    violations = []
    for path in sorted((ROOT / "civicml").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("").parts
        own = rel[1] if len(rel) > 1 else None
        if own in (None, "__init__", "__main__"):
            continue
        assert own in LAYERS, f"{path}: module {own!r} has no layer; add it to DESIGN.md and LAYERS"
        for mod in _imports(path):
            target = _layer_of(mod)
            if target is None or target == own:
                continue
            if LAYERS.get(target, 99) > LAYERS[own]:
                violations.append(f"{path.relative_to(ROOT)} imports {mod} ({own} -> {target} points up)")
    assert not violations, "\n".join(violations)


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
