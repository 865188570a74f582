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
    """Parse a CSV or Parquet table, checking its header first and turning parser failures into hints.

    Raises:
        DataError: naming the file, what is wrong, an example and the fix.
    """
    import io

    from civicml.data.checks import check_header

    if name.lower().endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        try:
            check_header(list(pq.read_schema(io.BytesIO(data)).names), name)
            return pd.read_parquet(io.BytesIO(data))
        except (OSError, ValueError) as err:
            if isinstance(err, DataError):
                raise
            raise DataError(f"cannot parse {name} as Parquet: {err}") from None
    gz = name.lower().endswith(".gz")
    if data[:2] == b"\x1f\x8b" and not gz:
        raise DataError(
            f"data file {name} is gzip-compressed but not named .gz; rename it (e.g. claims.csv.gz) or gunzip it"
        )
    if gz:
        import gzip

        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise DataError(f"data file {name} is named .gz but is not valid gzip ({err})") from None
    try:
        text_head = data[: data.find(b"\n") if b"\n" in data else len(data)].decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise _not_utf8(name, err) from None
    import csv

    header = next(csv.reader([text_head.rstrip("\r")]), [])
    check_header(header, name)
    try:
        df = pd.read_csv(io.BytesIO(data), encoding="utf-8")
    except UnicodeDecodeError as err:
        raise _not_utf8(name, err) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"data file {name} is empty; it needs a header row and at least one data row") from None
    except (pd.errors.ParserError, ValueError) as err:
        raise DataError(f"cannot parse {name} as CSV: {err}") from None
    if len(df.columns) == 1:
        only = str(df.columns[0])
        for sep, label in ((";", "semicolons"), ("\t", "tabs"), ("|", "pipes")):
            if sep in only:
                raise DataError(
                    f"data file {name} has one column named {only[:60]!r}: its values are separated by {label}, "
                    "not commas; save it as comma-separated CSV (e.g. in a spreadsheet: CSV UTF-8, comma-delimited)"
                )
    return df


def _not_utf8(name: str, err: UnicodeDecodeError) -> DataError:
    return DataError(
        f"data file {name} is not UTF-8 text (byte {err.start} is 0x{err.object[err.start]:02x}; Windows/latin-1 "
        "files write é as 0xe9); save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv`"
    )


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
    if path.suffix.lower() not in (".parquet", ".pq", ".csv", ".txt", ".gz"):
        raise DataError(f"cannot read {path}: unsupported extension {path.suffix!r}; use .csv or .parquet")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read data file {path}: {err.strerror}") from None
    df = _read_bytes_table(data, str(path))
    if len(df) == 0:
        raise DataError(f"data file {path} has a header but no data rows")
    return df
