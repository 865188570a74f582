"""What differs between two versions (`civicml models diff`) and between nested documents (`reproduce`)."""

from __future__ import annotations

from typing import Any


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as `{dotted.key: leaf}`; lists stay leaves (compared whole)."""
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): obj}


def dict_diff(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Leaves that differ between two nested dicts: `[{key, a, b}]` (missing sides are None)."""
    fa, fb = _flatten(a), _flatten(b)
    return [
        {"key": key, "a": fa.get(key), "b": fb.get(key)}
        for key in sorted(set(fa) | set(fb))
        if fa.get(key) != fb.get(key)
    ]


def diff_manifests(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """What differs between two versions: identity, metrics, lineage, config and artifacts.

    Returns:
        `{"a", "b", "summary": [...], "metrics": [...], "lineage": [...], "config": [...],
        "artifacts": [...]}`; each list holds `{key, a, b}` rows (metrics add `delta`).
    """
    summary_keys = ("name", "status", "family", "task", "model_sha256", "created_at")
    summary = [{"key": k, "a": a.get(k), "b": b.get(k)} for k in summary_keys if a.get(k) != b.get(k)]
    if a.get("gate", {}).get("decision") != b.get("gate", {}).get("decision"):
        summary.append(
            {"key": "gate.decision", "a": a.get("gate", {}).get("decision"), "b": b.get("gate", {}).get("decision")}
        )
    metrics = []
    for row in dict_diff(a.get("metrics", {}), b.get("metrics", {})):
        va, vb = row["a"], row["b"]
        numeric = isinstance(va, (int, float)) and isinstance(vb, (int, float))
        metrics.append({**row, "delta": (vb - va) if numeric else None})
    la = {k: v for k, v in a.get("lineage", {}).items() if k != "config"}
    lb = {k: v for k, v in b.get("lineage", {}).items() if k != "config"}
    artifacts = []
    names = sorted(set(a.get("artifacts", {})) | set(b.get("artifacts", {})))
    for name in names:
        sa = a.get("artifacts", {}).get(name, {}).get("sha256")
        sb = b.get("artifacts", {}).get(name, {}).get("sha256")
        if sa != sb:
            artifacts.append({"key": name, "a": sa, "b": sb})
    return {
        "a": a["version"],
        "b": b["version"],
        "summary": summary,
        "metrics": metrics,
        "lineage": dict_diff(la, lb),
        "config": dict_diff(a.get("lineage", {}).get("config", {}), b.get("lineage", {}).get("config", {})),
        "artifacts": artifacts,
    }
