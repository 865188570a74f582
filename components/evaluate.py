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
):
    """Score the model on held-out rows and publish metrics to the KFP UI."""
    from civicml import steps

    result = steps.evaluate(config_json, data.path, model.path, evaluation.path, report.path)
    steps.log_kfp_metrics(result, metrics, classification)


def component(image: str):
    """The KFP component for this step, on `image`."""
    return make_component(evaluate, image)
