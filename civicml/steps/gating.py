"""Step `gate`: apply the policy to the evaluation; write the decision with every rule and audit it."""

from __future__ import annotations

from typing import Any

from civicml.config import RunConfig
from civicml.documents import Evaluation, GateDecision
from civicml.governance.audit import AuditLog
from civicml.steps._io import cfg_of, registry_of, write_json


def gate(config: RunConfig | str, evaluation_path: str, gate_path: str) -> dict[str, Any]:
    """Apply the policy to the evaluation; write and return the decision with every rule."""
    from civicml.governance.policy import decide

    cfg = cfg_of(config)
    evaluation = Evaluation.read(evaluation_path)
    result = GateDecision.stamp(decide(cfg.policy, evaluation), where="the gate decision")
    write_json(gate_path, result)
    AuditLog(registry_of(cfg).store).append(
        "gate_decided",
        {
            "version": evaluation.version,
            "model_sha256": evaluation.model_sha256,
            "decision": result["decision"],
            "reason": result["reason"],
            "rules": [{k: r[k] for k in ("rule", "threshold", "value", "verdict")} for r in result["rules"]],
        },
    )
    return result
