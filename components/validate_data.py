"""Component: validate, split and profile the input data."""

from kfp.dsl import Dataset, Output

from components._factory import make_component


def validate_data(config_json: str, version: str, data: Output[Dataset]) -> str:
    """Check the data against its contract; write splits, contract, profile; return `ok` or `no_new_data`.

    The status is the single output because kfp.local 2.17 resolves `dsl.If` conditions
    only on a task's single `Output`; the version and fingerprint travel in `data`.
    """
    from civicml import steps

    return steps.validate_data(config_json, data.path, version)["status"]


def component(image: str):
    """The KFP component for this step, on `image`."""
    return make_component(validate_data, image)
