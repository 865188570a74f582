"""Every component input and output has a description (google-cloud-pipeline-components' docstring style).

KFP reads `Args:` into the inputs' descriptions and `Returns:` into the outputs' (the single return
value is `Output`); the KFP UI shows them on each step. A parameter missing from the docstring, or a
docstring naming a parameter that no longer exists, fails here.
"""

import importlib
import inspect
from pathlib import Path

import docstring_parser
import pytest

ROOT = Path(__file__).resolve().parents[2]
NAMES = sorted(p.stem for p in (ROOT / "components").glob("*.py") if not p.name.startswith("_"))


def test_every_step_has_a_component():
    assert len(NAMES) == 11


@pytest.mark.parametrize("name", NAMES)
def test_every_input_and_output_is_described(name):
    module = importlib.import_module(f"components.{name}")
    spec = module.component("civicml:test").component_spec
    undocumented = [n for n, i in (spec.inputs or {}).items() if not (i.description or "").strip()]
    undocumented += [n for n, o in (spec.outputs or {}).items() if not (o.description or "").strip()]
    assert not undocumented, f"components/{name}.py: describe {undocumented} under Args:/Returns:"
    assert spec.description and spec.description.splitlines()[0].endswith("."), "one-line summary first"


@pytest.mark.parametrize("name", NAMES)
def test_the_docstring_names_only_real_parameters(name):
    module = importlib.import_module(f"components.{name}")
    fn = getattr(module, name)
    doc = inspect.getdoc(fn)
    params = set(inspect.signature(fn).parameters)
    args = {p.arg_name for p in docstring_parser.parse(doc).params}
    returns = {p.arg_name for p in docstring_parser.parse(doc.replace("Returns:", "Args:")).params} - args
    assert args <= params, f"{name}: Args names {sorted(args - params)}, not parameters"
    assert returns <= params | {"Output"}, f"{name}: Returns names {sorted(returns - params - {'Output'})}"
