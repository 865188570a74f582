"""Component: validate, split and profile the input data."""

from kfp.dsl import Dataset, Output

from components._factory import make_component


def validate_data(config_json: str, version: str, data: Output[Dataset]) -> str:
    """Check the data against its contract, drop PII, split, fingerprint and profile it.

    The status is the single output because kfp.local 2.17 resolves `dsl.If` conditions
    only on a task's single `Output`; the version and fingerprint travel in `data`. Data
    that breaks the contract stops the run here, audited as `validation_failed`.

    Args:
        config_json: The run config as JSON (`RunConfig`); every step of a run gets the same one.
        version: The version id for this run; generated when empty.

    Returns:
        data: train/valid/test Parquet, the contract, the profile and `data_info.json`.
        Output: `ok`, or `no_new_data` when the data is what the champion was trained on.
    """
    from civicml.steps.host import run_step

    return run_step("validate_data", config_json, data.path, version)["status"]


def component(image: str):
    """The KFP component for this step, on `image`."""
    return make_component(validate_data, image)
