"""The serving log read back: the one reader and the one prediction–feedback join (issue 15).

Everything that reads what the model server logged — the A/B report (`monitoring.ab`), drift and
live performance on served traffic (`monitoring.drift`, `monitoring.performance`, the monitor
step) — goes through these two functions, so they cannot disagree about which records exist or
which label a prediction has.

Reading rule: tolerant and loud. No log yet is an empty log. A line that is not a JSON object is
skipped and named (object key and line number) in the returned `problems`, which every caller
shows beside its result: the server writes each object whole (one atomic put), so a bad line means
an object was truncated or edited afterwards; that must be visible, but must not stop monitoring
or an A/B report from reading every other record.

Join rule: one row per logged prediction (request_id, row) — the last record if one was logged
twice — with its *first* label: feedback ordered by its `ts`, then by log order. A later label for
the same prediction never overwrites it (the server answers it with 409 and logs it with
`relabel: true`); otherwise a caller could flip a prediction's outcome at will. Feedback without a
matching prediction (e.g. outside the window) and records without an outcome are not labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd

from civicml.serving.predlog import LOG_PREFIX
from civicml.storage.base import Store

PREDICTION_COLUMNS = ["request_id", "row", "arm", "version", "ts", "score", "prediction"]
LABEL_COLUMNS = ["outcome", "feedback_ts", "source"]


@dataclass
class LogRecords:
    """Records of one log kind, and the lines that could not be read (`<key> line <n>: why`)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _parse_ts(value: Any) -> datetime | None:
    try:
        ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def _day_is_before(key: str, cutoff: datetime) -> bool:
    """Whether a whole `logs/<kind>/<day>/` object is older than the window (skipped unread)."""
    day = key.split("/")[2] if key.count("/") >= 3 else ""
    try:
        return datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc) < cutoff - timedelta(days=1)
    except ValueError:
        return False


def read_records(store: Store, kind: str, window_days: float = 0.0, now: datetime | None = None) -> LogRecords:
    """Every record of one serving log (`predictions` or `feedback`), in object order (day, server, sequence).

    Args:
        store: The object store the model server writes to.
        kind: `predictions` or `feedback`.
        window_days: Keep records whose `ts` is within the last N days; 0 keeps all.
        now: The reference time (default: now, UTC).
    """
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=window_days) if window_days > 0 else None
    out = LogRecords()
    for key in store.list_keys(f"{LOG_PREFIX}/{kind}/"):
        if not key.endswith(".jsonl") or (cutoff is not None and _day_is_before(key, cutoff)):
            continue
        for n, line in enumerate(store.get_bytes(key).decode(errors="replace").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                out.problems.append(f"{key} line {n}: not valid JSON (truncated or edited); skipped")
                continue
            if not isinstance(rec, dict):
                out.problems.append(f"{key} line {n}: not a JSON object; skipped")
                continue
            ts = _parse_ts(rec.get("ts")) if cutoff is not None else None
            if ts is not None and cutoff is not None and ts < cutoff:
                continue
            out.records.append(rec)
    return out


def _row(record: dict[str, Any]) -> int:
    return int(record.get("row") or 0)


def feedback_frame(feedback: list[dict[str, Any]]) -> pd.DataFrame:
    """Labels as a frame (request_id, row, outcome, ts, source, order), in log order."""
    cols = ["request_id", "row", "outcome", "ts", "source"]
    rows = [
        {
            "request_id": str(r["request_id"]),
            "row": _row(r),
            "outcome": r["outcome"],
            "ts": r.get("ts"),
            # Labels logged before sources were recorded count as "unrecorded".
            "source": r.get("source") or "unrecorded",
        }
        for r in feedback
        if r.get("request_id") is not None and r.get("outcome") is not None
    ]
    fb = pd.DataFrame(rows, columns=cols)
    fb["order"] = np.arange(len(fb))
    return fb


def join_feedback(
    predictions: list[dict[str, Any]], feedback: list[dict[str, Any]], version: str | None = None
) -> pd.DataFrame:
    """Each logged prediction with its first label (NaN when it has none): the module's join rule.

    Args:
        predictions: Prediction-log records.
        feedback: Feedback-log records.
        version: Keep only predictions this model version served; None keeps all.

    Returns:
        Columns request_id, row, arm, version, ts, score, prediction, outcome, feedback_ts, source.
    """
    preds = pd.DataFrame(
        [
            {**{k: r.get(k) for k in PREDICTION_COLUMNS}, "request_id": str(r["request_id"]), "row": _row(r)}
            for r in predictions
            if r.get("request_id") is not None and (version is None or r.get("version") == version)
        ],
        columns=PREDICTION_COLUMNS,
    ).drop_duplicates(["request_id", "row"], keep="last")
    fb = feedback_frame(feedback)
    first = fb.sort_values(["ts", "order"], kind="stable", na_position="last").drop_duplicates(
        ["request_id", "row"], keep="first"
    )
    first = first.rename(columns={"ts": "feedback_ts"})[["request_id", "row", *LABEL_COLUMNS]]
    return preds.merge(first, on=["request_id", "row"], how="left").reset_index(drop=True)
