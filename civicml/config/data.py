"""`data:` and `split:`: where the rows come from, what each column means and how they are split."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from civicml.config.base import Strict as _Strict


class DemoOptions(_Strict):
    """Knobs of the synthetic `demo:benefits` table."""

    rows: int = Field(5000, ge=100, le=10_000_000)
    month: int = Field(1, ge=1, le=36, description="1 = reference month; later months drift")
    bias: float = Field(0.0, ge=0.0, le=1.0, description="strength of injected bias against one group")
    seed: int = 7


class ColumnSpec(_Strict):
    """One column of a declared data contract."""

    name: str
    kind: Literal["numeric", "categorical"]
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None


class DataConfig(_Strict):
    """Where the data comes from and what each column means."""

    source: str = Field("demo:benefits", description="path (.csv/.parquet), s3://bucket/key, or demo:benefits")
    demo: DemoOptions = DemoOptions()
    target: str = "needs_review"
    numeric_features: list[str] | None = None
    categorical_features: list[str] | None = None
    sensitive_attributes: list[str] = Field(default_factory=list)
    allow_sensitive_as_features: bool = False
    pii_columns: list[str] = Field(default_factory=list)
    contract: list[ColumnSpec] | None = Field(
        None, description="declared data contract; when absent it is inferred on the first run and stored"
    )
    out_of_contract: Literal["warn", "error"] = Field(
        "warn",
        description="values outside the contract's ranges or categories: 'warn' (shown on screen, in the KFP "
        "log and on the model card) or 'error' (the run stops in validate-data)",
    )

    @model_validator(mode="after")
    def _target_not_feature(self) -> DataConfig:
        for key in ("numeric_features", "categorical_features"):
            cols = getattr(self, key) or []
            if self.target in cols:
                raise ValueError(f"target {self.target!r} is also listed in data.{key}; remove it from the features")
            pii = set(cols) & set(self.pii_columns)
            if pii:
                raise ValueError(f"PII column(s) {sorted(pii)} listed in data.{key}; PII is never a feature")
        return self


class SplitConfig(_Strict):
    """Deterministic stratified train/valid/test split."""

    valid_fraction: float = Field(0.15, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0.0, lt=0.5)
    seed: int = 42
