"""One plain function per pipeline step: the only API the KFP components call.

Each step reads its inputs from paths, calls the library, writes its outputs to paths,
audits what it did and returns a small JSON-able summary (TFX's executor shape). The same
functions back the `civicml` CLI, so every stage runs outside KFP too.

One module per step; the functions are re-exported here so callers write
`civicml.steps.train(...)`. The modules are named for what they do (`training`, `gating`, ...)
rather than after the functions, so a submodule never shadows the function of the same name.

The re-exports are resolved on first use (PEP 562): a step process that hands its work to the
run's warm host (`civicml.steps.host`) imports this package without pandas, scikit-learn or
XGBoost, which the step modules pull in.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from civicml.steps._io import SPLITS, data_info, feature_spec, load_splits, model_hash
    from civicml.steps._prepare import PreparedTable, batch_fingerprint, check_project_name, prepare_table
    from civicml.steps.deployment import COMPARED, compared_champion, deploy
    from civicml.steps.drift import SERVING_LOG, monitor_drift
    from civicml.steps.drift_report import monitor_report
    from civicml.steps.evaluation import evaluate
    from civicml.steps.gating import gate
    from civicml.steps.kfp_outputs import log_kfp_metrics
    from civicml.steps.registration import current_card, register
    from civicml.steps.retrain import monitor_retrain
    from civicml.steps.training import train
    from civicml.steps.trigger import monitor_trigger
    from civicml.steps.tuning import tune
    from civicml.steps.validate import validate_data

# Each public name and the submodule that defines it.
_HOME = {
    "SPLITS": "_io",
    "data_info": "_io",
    "feature_spec": "_io",
    "load_splits": "_io",
    "model_hash": "_io",
    "PreparedTable": "_prepare",
    "batch_fingerprint": "_prepare",
    "check_project_name": "_prepare",
    "prepare_table": "_prepare",
    "COMPARED": "deployment",
    "compared_champion": "deployment",
    "deploy": "deployment",
    "SERVING_LOG": "drift",
    "monitor_drift": "drift",
    "monitor_report": "drift_report",
    "evaluate": "evaluation",
    "log_kfp_metrics": "kfp_outputs",
    "gate": "gating",
    "current_card": "registration",
    "register": "registration",
    "monitor_retrain": "retrain",
    "train": "training",
    "monitor_trigger": "trigger",
    "tune": "tuning",
    "validate_data": "validate",
}

__all__ = [
    "COMPARED",
    "PreparedTable",
    "SERVING_LOG",
    "SPLITS",
    "batch_fingerprint",
    "check_project_name",
    "compared_champion",
    "current_card",
    "data_info",
    "deploy",
    "evaluate",
    "feature_spec",
    "gate",
    "load_splits",
    "log_kfp_metrics",
    "model_hash",
    "monitor_drift",
    "monitor_report",
    "monitor_retrain",
    "monitor_trigger",
    "prepare_table",
    "register",
    "train",
    "tune",
    "validate_data",
]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})
