"""Component: evaluate on the test split (metrics, fairness, champion comparison)."""

from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components._factory import make_component


def evaluate(
    config_json: str,
    data: Input[Dataset],
    model: Input[Model],
    evaluation: Output[Artifact],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    report: Output[HTML],
    figures: Output[Artifact],
):
    """Score the model on the held-out test split and publish its metrics to the KFP UI.

    Metrics carry 95% bootstrap intervals; the document also holds curves (ROC, PR, calibration)
    or residuals, fairness per sensitive attribute, feature importance and the comparison with
    the current champion. Audited as `evaluation_done`.

    Args:
        config_json: The run config as JSON (`RunConfig`); every step of a run gets the same one.
        data: The splits, contract and profile written by `validate-data`.
        model: The saved model written by `train` (no pickle).

    Returns:
        evaluation: The evaluation document (JSON) the gate and the model card read.
        metrics: Headline metrics, shown in the run's Metrics tab.
        classification: ROC curve and confusion matrix (binary classification only).
        report: The evaluation as an HTML page with charts, alt text and data tables.
        figures: The model card's figures (PNG, alt text, data tables), drawn once here and reused by
            `register`.
    """
    from civicml.steps.host import run_step
    from civicml.steps.kfp_outputs import log_kfp_metrics

    result = run_step("evaluate", config_json, data.path, model.path, evaluation.path, report.path, figures.path)
    log_kfp_metrics(result, metrics, classification)


def component(image: str):
    """The KFP component for this step, on `image`."""
    return make_component(evaluate, image)
