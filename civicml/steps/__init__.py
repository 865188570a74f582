"""One plain function per pipeline step: the only API the KFP components call.

Each step reads its inputs from paths, calls the library, writes its outputs to paths,
audits what it did and returns a small JSON-able summary (TFX's executor shape). The same
functions back the `civicml` CLI, so every stage runs outside KFP too.

One module per step; the functions are re-exported here so callers write
`civicml.steps.train(...)`. The modules are named for what they do (`training`, `gating`, ...)
rather than after the functions, so a submodule never shadows the function of the same name.
"""

from civicml.steps._io import SPLITS, data_info, feature_spec, load_splits, model_hash
from civicml.steps._prepare import PreparedTable, batch_fingerprint, check_project_name, prepare_table
from civicml.steps.deployment import COMPARED, compared_champion, deploy
from civicml.steps.drift import SERVING_LOG, monitor_drift
from civicml.steps.drift_report import monitor_report
from civicml.steps.evaluation import evaluate, log_kfp_metrics
from civicml.steps.gating import gate
from civicml.steps.registration import current_card, register
from civicml.steps.retrain import monitor_retrain
from civicml.steps.training import train
from civicml.steps.trigger import monitor_trigger
from civicml.steps.tuning import tune
from civicml.steps.validate import validate_data

__all__ = [
    "COMPARED",
    "SERVING_LOG",
    "SPLITS",
    "PreparedTable",
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
