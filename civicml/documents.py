"""Typed documents that cross layers: Evaluation, GateDecision, Manifest, DriftReport, TuningResult.

Each is the JSON one step writes and another step (or the registry, the gate, the card) reads.
The models type the fields readers rely on and keep every other field as it is (`extra="allow"`),
so a document round-trips byte for byte apart from its schema id, and a document stored before the
models existed (no `schema` key) still loads as version 1.

The schema id sits under the key `schema`, as the manifest has always had it
(`civicml.manifest/v1`); a reader refuses a document of another kind or a newer version with a
message naming both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

D = TypeVar("D", bound="Document")


class DocumentError(ValueError):
    """A stored document is not the kind or version expected, or lacks a field readers need."""


class Document(BaseModel):
    """Base of every cross-layer document: typed fields, every other field kept, a schema id."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    KIND: ClassVar[str] = "document"
    VERSION: ClassVar[int] = 1
    # Fields a step must write. Readers accept documents without them (stored by older versions,
    # or by hand in tests); typed fields that are present are always checked.
    WRITE_REQUIRED: ClassVar[tuple[str, ...]] = ()

    schema_id: str = Field(default="", alias="schema")

    @classmethod
    def schema_name(cls) -> str:
        """The id written under `schema`, e.g. `civicml.evaluation/v1`."""
        return f"civicml.{cls.KIND}/v{cls.VERSION}"

    @field_validator("schema_id")
    @classmethod
    def _known_schema(cls, value: str) -> str:
        # No `schema` key: written before the documents were typed, which is version 1.
        if not value:
            return cls.schema_name()
        kind, _, version = value.removeprefix("civicml.").partition("/v")
        if kind != cls.KIND or not version.isdigit() or int(version) > cls.VERSION:
            raise ValueError(
                f"expected a {cls.schema_name()} document (or an older version), got schema {value!r}; "
                "was it written by a newer civicml? Upgrade civicml to read it"
            )
        return value

    @classmethod
    def parse(cls: type[D], data: Any, where: str = "") -> D:
        """Validate a decoded JSON object as this document.

        Raises:
            DocumentError: naming the document, where it came from and the first problems.
        """
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(document)'}: {e['msg']}" for e in err.errors()[:5]
            )
            raise DocumentError(f"{where or 'the document'} is not a valid {cls.KIND} document: {problems}") from None

    @classmethod
    def stamp(cls, data: dict[str, Any], where: str = "") -> dict[str, Any]:
        """`data` checked against this document and given its schema id: what a step writes.

        The object itself is returned (plus `schema`), not a re-serialisation, so numbers are
        written exactly as the library computed them.

        Raises:
            DocumentError: `data` lacks a field readers need, or has one of the wrong type.
        """
        cls.parse(data, where=where)
        missing = [f for f in cls.WRITE_REQUIRED if f not in data]
        if missing:
            raise DocumentError(f"{where or 'the document'} lacks {missing}, which every {cls.KIND} document has")
        return {**data, "schema": cls.schema_name()}

    @classmethod
    def read(cls: type[D], path: str | Path) -> D:
        """Read and validate the document at `path`."""
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as err:
            raise DocumentError(f"{path} is not JSON ({err}); was it written by a civicml step?") from None
        return cls.parse(data, where=str(path))

    def as_dict(self) -> dict[str, Any]:
        """The JSON object as read or built (no defaults added), with `schema`."""
        out = self.model_dump(mode="json", by_alias=True, exclude_unset=True)
        out["schema"] = self.schema_id or self.schema_name()
        return out

    def write(self, path: str | Path) -> None:
        """Write as indented, key-sorted JSON (the steps' format), creating the parent directory."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.as_dict(), indent=2, sort_keys=True, default=str))


class Evaluation(Document):
    """`evaluation.json`: the test-split scores of one model (`civicml.evaluation.evaluate.evaluate_model`)."""

    KIND: ClassVar[str] = "evaluation"
    WRITE_REQUIRED: ClassVar[tuple[str, ...]] = ("version", "model_sha256", "task", "n_test", "metrics")

    version: str | None = None
    model_sha256: str | None = None
    task: str | None = None
    n_test: int | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    confidence_intervals: dict[str, Any] = Field(default_factory=dict)
    fairness: dict[str, Any] | None = None
    baseline: dict[str, Any] | None = None
    champion_comparison: dict[str, Any] | None = None


class GateDecision(Document):
    """`gate.json`: the policy's decision with every rule (`civicml.governance.policy.decide`)."""

    KIND: ClassVar[str] = "gate"
    WRITE_REQUIRED: ClassVar[tuple[str, ...]] = ("decision", "reason", "rules")

    decision: Literal["deploy", "reject", "pending_approval"]
    reason: str = ""
    rules: list[dict[str, Any]] = Field(default_factory=list)


class TuningResult(Document):
    """`tuning.json`: the hyperparameter search (`run_optuna` / `run_katib`)."""

    KIND: ClassVar[str] = "tuning"
    WRITE_REQUIRED: ClassVar[tuple[str, ...]] = ("best_params",)

    best_params: dict[str, Any]
    best_value: float | None = None
    trials: list[dict[str, Any]] = Field(default_factory=list)
    backend: str | None = None
    algorithm: str | None = None
    objective_metric: str | None = None


class DriftReport(Document):
    """`drift.json`: a window's drift against a version's profile (`monitor_drift`)."""

    KIND: ClassVar[str] = "drift"
    WRITE_REQUIRED: ClassVar[tuple[str, ...]] = ("version", "source", "window_kind", "summary")

    version: str | None = None
    source: str | None = None
    window_kind: Literal["serving_log", "data_batch"] | None = None
    summary: dict[str, Any] = Field(default_factory=dict)
    messages: list[str] = Field(default_factory=list)
    window_rows: int | None = None
    fingerprint: str | None = None
    champion_fingerprint: str | None = None


class Manifest(Document):
    """`versions/<id>/manifest.json`: a committed version (written by the registry, last)."""

    KIND: ClassVar[str] = "manifest"

    version: str
    status: str | None = None
    artifacts: dict[str, dict[str, Any]] = Field(default_factory=dict)
    model_sha256: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    gate: dict[str, Any] = Field(default_factory=dict)
    lineage: dict[str, Any] = Field(default_factory=dict)
