"""Data preparation shared by `validate_data` and the monitor's "is this the champion's data?" check.

Both fingerprint exactly the same rows because both go through `prepare_table`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from civicml.config import ColumnSpec, RunConfig
from civicml.storage.registry import Registry

if TYPE_CHECKING:
    import pandas as pd

    from civicml.data.contract import ContractReport


@dataclass(frozen=True)
class PreparedTable:
    """A table ready to split: PII dropped, contract enforced, only the model's columns kept.

    Attributes:
        frame: The prepared rows (features, sensitive attributes, target).
        contract: The data contract the rows were checked against.
        contract_origin: `config` (declared), `stored` (the project's first run) or `inferred` (this data).
        numeric: Numeric feature names, in model order.
        categorical: Categorical feature names, in model order.
        report: What enforcing the contract changed or warned about.
    """

    frame: pd.DataFrame
    contract: list[ColumnSpec]
    contract_origin: str
    numeric: list[str]
    categorical: list[str]
    report: ContractReport

    def without_rows(self) -> PreparedTable:
        """The same table with no rows: its columns, contract and report, for after the split."""
        return dataclasses.replace(self, frame=self.frame.iloc[:0])


def check_project_name(cfg: RunConfig, registry: Registry, contract: list[ColumnSpec], df: pd.DataFrame) -> None:
    """Refuse data that belongs to another project stored under the same `name:`.

    Versions, aliases and contracts are kept per `name`: a copied config with new data but the old
    name would be checked against (and compared with, and promoted over) the other project. When
    the target or most of the contract's columns differ, the cause is the shared name, and the
    message says so instead of listing missing columns.

    Raises:
        DataError: naming the project, both targets/column sets and the fix.
    """
    from civicml.data.errors import DataError

    expected = {c.name for c in contract}
    present = set(df.columns)
    targets = {
        m.get("lineage", {}).get("config", {}).get("data", {}).get("target")
        for m in registry.versions()
        if m.get("name") == cfg.name
    } - {None}
    other_target = targets and cfg.data.target not in targets
    missing = expected - present
    if not other_target and len(missing) * 2 <= len(expected):
        return
    was = f"target {sorted(targets)[0]!r}" if targets else f"columns {sorted(expected)[:8]}"
    raise DataError(
        f"project name {cfg.name!r} is already used in {registry.store.describe()} by a project with {was}; "
        f"this config has target {cfg.data.target!r} and data with columns {sorted(present)[:8]}. If this is a "
        f"different project, give it its own name (set name: {cfg.name}-{cfg.data.target.replace('_', '-')} in the "
        "config, or write a new config with `civicml init`); if it is the same project, its data changed shape: "
        f"declare data.contract or restore the columns {sorted(missing)[:8]}"
    )


def _contract(cfg: RunConfig, registry: Registry, df: pd.DataFrame) -> tuple[list[ColumnSpec], str]:
    """The contract to hold `df` to, and where it came from (`config`, `stored` or `inferred`)."""
    from civicml.data.contract import infer_contract

    if cfg.data.contract is not None:
        return cfg.data.contract, "config"
    stored = registry.load_contract(cfg.name)
    if stored is not None:
        contract = [ColumnSpec.model_validate(c) for c in stored]
        check_project_name(cfg, registry, contract, df)
        return contract, "stored"
    return infer_contract(df, cfg.data), "inferred"


def prepare_table(cfg: RunConfig, registry: Registry, df: pd.DataFrame) -> PreparedTable:
    """Drop PII, resolve and enforce the data contract, keep the model's columns.

    Raises:
        DataError: a sensitive attribute is missing or the data breaks the contract.
    """
    import pandas as pd

    from civicml.data.checks import check_columns, check_values
    from civicml.data.contract import enforce_contract, feature_lists
    from civicml.data.errors import DataError

    df = df.drop(columns=[c for c in cfg.data.pii_columns if c in df.columns])
    check_columns(df, cfg.data.target, set(cfg.data.numeric_features or []) | set(cfg.data.categorical_features or []))
    missing_sensitive = [c for c in cfg.data.sensitive_attributes if c not in df.columns]
    if missing_sensitive:
        raise DataError(
            f"sensitive attribute column(s) {missing_sensitive} (data.sensitive_attributes) are missing from "
            "the data; fairness cannot be measured without them"
        )
    contract, origin = _contract(cfg, registry, df)
    # A range or category set the user declared is a rule; an inferred one follows data.out_of_contract.
    mode = "error" if origin == "config" else cfg.data.out_of_contract
    df, report = enforce_contract(df, contract, out_of_contract=mode)
    numeric, categorical = feature_lists(contract, cfg.data)
    check_values(df, numeric, categorical)
    keep = [*numeric, *categorical, *[c for c in cfg.data.sensitive_attributes if c not in numeric + categorical]]
    frame = df[[*dict.fromkeys([*keep, cfg.data.target])]]
    target = frame[cfg.data.target]
    if isinstance(target.dtype, pd.CategoricalDtype):
        # Text labels stay text: the split stratifies on them and the models encode them by class.
        frame = frame.assign(**{cfg.data.target: target.astype(object).where(target.notna(), None)})
    return PreparedTable(frame, contract, origin, numeric, categorical, report)


def batch_fingerprint(cfg: RunConfig, registry: Registry, df: pd.DataFrame, version: int | None = None) -> str | None:
    """The fingerprint `validate_data` would record for this batch, or None when it breaks the contract.

    `version` is the fingerprint definition (`civicml.data.fingerprint`; the current one by
    default): the champion's, when the result is compared with the champion's fingerprint.

    Mirrors validate_data's preparation (PII dropped, contract enforced, model columns kept) so
    the monitor can tell "same data as the champion" without starting a run; the training
    pipeline's own check remains the authority.
    """
    from civicml.data.errors import DataError
    from civicml.data.fingerprint import FINGERPRINT_VERSION, fingerprint

    try:
        frame = prepare_table(cfg, registry, df).frame
    except (DataError, KeyError):
        return None
    # validate_data fingerprints the rows after a stratified split reorders nothing: same frame, same hash.
    return fingerprint(frame, version or FINGERPRINT_VERSION)
