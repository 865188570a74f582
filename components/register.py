"""Component: commit the model version to the registry (manifest written last)."""

from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Model, Output

from components._factory import make_component


def register(
    config_json: str,
    data: Input[Dataset],
    best_params: Input[Artifact],
    model: Input[Model],
    evaluation: Input[Artifact],
    decision_record: Input[Artifact],
    figures: Input[Artifact],
    model_card: Output[HTML],
    model_card_md: Output[Markdown],
    started_by: str = "",
) -> str:
    """Stage every artifact of the run, publish the model card, and commit the version.

    The manifest (hashes of every artifact, metrics, gate decision and lineage) is written
    last, so a version either exists whole or not at all.

    Args:
        config_json: The run config as JSON (`RunConfig`); every step of a run gets the same one.
        data: The splits, contract and profile written by `validate-data`.
        best_params: The tuning result written by `tune`.
        model: The saved model written by `train`.
        evaluation: The evaluation document written by `evaluate`.
        decision_record: The gate decision written by `gate`.
        figures: The model card's figures drawn by `evaluate` (stored with the version, not redrawn).
        started_by: Who started the run (`civicml submit`/`schedule` pass the submitting person);
            recorded in the lineage for separation of duties. Empty: the step's own user.

    Returns:
        model_card: The model card as an HTML page.
        model_card_md: The model card as Markdown.
        Output: The committed version id.
    """
    from civicml.steps.host import run_step

    manifest = run_step(
        "register",
        config_json,
        data.path,
        best_params.path,
        model.path,
        evaluation.path,
        decision_record.path,
        card_html_path=model_card.path,
        card_md_path=model_card_md.path,
        figures_dir=figures.path,
        started_by=started_by,
    )
    return manifest["version"]


def component(image: str):
    """The KFP component for this step, on `image`."""
    return make_component(register, image)
