"""The job every distributed worker receives and the shards of the training split it reads.

`validate_data` cuts the (already shuffled) training split into one Parquet file per worker; the
`WorkerJob` names them with their sha256 so that a worker refuses a shard that is not the one written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

SHARD_DIR = "train-shards"


class ShardRef(BaseModel):
    """One shard of the training split: where it is and what it must hash to."""

    key: str = Field(description="file name under the job's shard_root, or a store key")
    sha256: str = Field(description="sha256 of the Parquet file's bytes, checked before it is read")
    rows: int
    fingerprint: str = Field(description="civicml.data.fingerprint of the shard's rows")


class WorkerJob(BaseModel):
    """Everything a worker needs, identical for every rank; each rank picks its shard by DMLC_TASK_ID."""

    spec: dict[str, Any]
    params: dict[str, Any]
    seed: int
    n_threads: int
    shards: list[ShardRef]
    timeout_seconds: int = 3600
    shard_root: str | None = Field(None, description="local directory of the shards; None = the store")
    output: str = Field(description="where rank 0 writes the model: a directory, or a store prefix")


def shard_bounds(n_rows: int, n: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) row ranges of `n` shards, sizes differing by at most one row."""
    if n < 1 or n_rows < n:
        raise ValueError(f"cannot cut {n_rows} rows into {n} shards: need at least one row per shard")
    base, extra = divmod(n_rows, n)
    bounds, start = [], 0
    for i in range(n):
        stop = start + base + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def shard_name(i: int, n: int) -> str:
    """File name of shard `i` of `n`."""
    return f"part-{i:05d}-of-{n:05d}.parquet"


def write_shards(train, out_dir: str | Path, n: int, fingerprint_version: int | None = None) -> list[ShardRef]:
    """Cut the (already shuffled) training split into `n` Parquet files, one per worker.

    The split comes out of a seeded stratified shuffle, so contiguous slices are random
    samples of it; the same rows and N always give the same files (no Parquet timestamps).
    `fingerprint_version` is the data fingerprint definition (the current one by default).
    """
    import hashlib

    from civicml.data.fingerprint import FINGERPRINT_VERSION, fingerprint

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    refs = []
    for i, (start, stop) in enumerate(shard_bounds(len(train), n)):
        part = train.iloc[start:stop].reset_index(drop=True)
        path = out / shard_name(i, n)
        part.to_parquet(path, index=False)
        data = path.read_bytes()
        refs.append(
            ShardRef(
                key=path.name,
                sha256=hashlib.sha256(data).hexdigest(),
                rows=len(part),
                fingerprint=fingerprint(part, fingerprint_version or FINGERPRINT_VERSION),
            )
        )
    return refs
