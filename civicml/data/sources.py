"""Read a table from a path (CSV/Parquet), an object-store URI or the built-in demo generator."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

import pandas as pd

from civicml.config import DemoOptions
from civicml.data.demo import generate_benefits
from civicml.data.errors import DataError

DEMOS = {"benefits": generate_benefits}


def parse_demo_source(source: str, defaults: DemoOptions) -> tuple[str, DemoOptions]:
    """Split `demo:NAME?rows=..&month=..` into the demo name and its options."""
    body = source.removeprefix("demo:")
    name, _, query = body.partition("?")
    if name not in DEMOS:
        raise DataError(f"unknown demo data set {name!r} in data.source={source!r}; available: {sorted(DEMOS)}")
    opts = defaults.model_dump()
    for key, value in parse_qsl(query):
        if key not in opts:
            raise DataError(f"unknown demo option {key!r} in data.source={source!r}; options: {sorted(opts)}")
        opts[key] = type(opts[key])(value)
    return name, DemoOptions.model_validate(opts)


def _read_bytes_table(data: bytes, name: str) -> pd.DataFrame:
    import io

    if name.endswith((".parquet", ".pq")):
        return pd.read_parquet(io.BytesIO(data))
    return pd.read_csv(io.BytesIO(data))


def load_table(source: str, demo: DemoOptions | None = None) -> pd.DataFrame:
    """Load the table named by `source`.

    Args:
        source: `demo:benefits[?rows=N&month=M&bias=B&seed=S]`, a local `.csv`/`.parquet`
            path, or `s3://bucket/key` (read through the configured object store client).
        demo: Default demo options (from `data.demo` in the config).

    Raises:
        DataError: when the file does not exist, is empty or cannot be parsed.
    """
    if source.startswith("demo:"):
        name, opts = parse_demo_source(source, demo or DemoOptions())
        return DEMOS[name](rows=opts.rows, month=opts.month, bias=opts.bias, seed=opts.seed)
    if source.startswith("s3://"):
        from civicml.storage.store import read_uri

        try:
            data = read_uri(source)
        except FileNotFoundError:
            raise DataError(f"data file {source} does not exist in the object store; check data.source") from None
        if not data:
            raise DataError(f"data file {source} is empty; it needs a header row and at least one data row")
        return _read_bytes_table(data, source)
    path = Path(source)
    if not path.exists():
        raise DataError(
            f"data file {path} does not exist (data.source={source!r}); give a .csv or .parquet path, or demo:benefits"
        )
    if path.is_dir() or path.stat().st_size == 0:
        raise DataError(f"data file {path} is empty; it needs a header row and at least one data row")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        elif path.suffix.lower() in (".csv", ".txt", ".gz"):
            df = pd.read_csv(path)
        else:
            raise DataError(f"cannot read {path}: unsupported extension {path.suffix!r}; use .csv or .parquet")
    except pd.errors.EmptyDataError:
        raise DataError(f"data file {path} is empty; it needs a header row and at least one data row") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"cannot parse {path}: {err}") from None
    if len(df) == 0:
        raise DataError(f"data file {path} has a header but no data rows")
    return df
