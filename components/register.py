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
    model_card: Output[HTML],
    model_card_md: Output[Markdown],
) -> str:
    """Upload every artifact under staging, write the manifest, publish the model card."""
    from civicml import steps

    manifest = steps.register(
        config_json,
        data.path,
        best_params.path,
        model.path,
        evaluation.path,
        decision_record.path,
        card_html_path=model_card.path,
        card_md_path=model_card_md.path,
    )
    return manifest["version"]


def component(image: str):
    """The KFP component for this step, on `image`."""
    return make_component(register, image)
