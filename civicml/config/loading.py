"""Loading a config: the YAML file (strict and bounded), `--set` overrides and paths relative to the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from civicml.config.base import ConfigError
from civicml.config.run import RunConfig, parse_config


def load_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None, resolve_paths: bool = True
) -> RunConfig:
    """Load `civicml.yaml` (or defaults when no path) and apply dotted-key overrides.

    Args:
        path: YAML file; None means the built-in defaults.
        overrides: e.g. {"data.demo.month": 3}.
        resolve_paths: Make relative local paths in the file absolute against its folder
            (`resolve_relative_paths`). `civicml compile` turns it off: the compiled YAML is the same
            in every clone and its paths mean nothing on a cluster anyway.

    Raises:
        ConfigError: on a missing file, bad YAML or an invalid key/value.
    """
    raw: dict[str, Any] = {}
    where = "<defaults>"
    if path is not None:
        p = Path(path)
        where = str(p)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist; copy civicml.yaml from the repository root")
        raw = read_yaml_config(p)
    for dotted, value in (overrides or {}).items():
        node = raw
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"cannot override {dotted}: {part} is not a mapping")
        node[parts[-1]] = value
    if path is not None and resolve_paths:
        resolve_relative_paths(raw, Path(path).resolve().parent, set(overrides or {}))
    return parse_config(raw, where)


# A config is a few hundred nodes; an alias bomb ("billion laughs") expands a 1 KB file to billions.
YAML_NODE_BUDGET = 100_000


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (YAML says they are an error; PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(
                    f"duplicate key {key!r} at line {key_node.start_mark.line + 1} (first at line "
                    f"{seen[key].start_mark.line + 1}): YAML keeps only one of them; remove or merge the other"
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes the document has once every alias is expanded (counted once per distinct node, so it is cheap)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = 1  # a recursive alias counts once instead of looping
    if isinstance(node, yaml.MappingNode):
        total = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        total = 1 + sum(_expanded_size(v, memo) for v in node.value)
    else:
        total = 1
    memo[id(node)] = min(total, YAML_NODE_BUDGET + 1)
    return memo[id(node)]


def read_yaml_config(path: Path) -> dict[str, Any]:
    """Read a config file: UTF-8, one YAML mapping, no duplicate keys, bounded alias expansion.

    Raises:
        ConfigError: naming the file, what is wrong, an example and the fix.
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {err.start} is 0x{err.object[err.start]:02x}); "
            "save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
        ) from None
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    loader = _ConfigLoader(text)
    try:
        node = loader.get_single_node()
        if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
            raise ConfigError(
                f"config file {path} is empty; an empty file is not the demo. Start from the repository's "
                "civicml.yaml (e.g. `data: {source: claims.csv, target: needs_review}`) or run without --config "
                "for the built-in demo"
            )
        if _expanded_size(node, {}) > YAML_NODE_BUDGET:
            raise ConfigError(
                f"config file {path} expands to more than {YAML_NODE_BUDGET} YAML nodes through its aliases "
                "(&anchor / *alias); a config needs a few hundred. Write the values out instead of nesting aliases"
            )
        raw = loader.construct_document(node)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    finally:
        loader.dispose()
    if not isinstance(raw, dict):
        raise ConfigError(
            f"config file {path} must be a mapping of keys (e.g. `name: my-project`), got {type(raw).__name__}"
        )
    return raw


# Config keys holding a local path or a URI; a relative local path is relative to the config file.
PATH_KEYS = ("data.source", "storage.uri", "monitoring.window_source")


def _is_relative_local_path(value: Any) -> bool:
    if not isinstance(value, str) or not value.strip() or value == "serving-log":
        return False
    if "://" in value or value.startswith(("demo:", "~")):
        return False
    return not Path(value).is_absolute()


def resolve_relative_paths(raw: dict[str, Any], base: Path, skip: set[str]) -> None:
    """Make relative local paths in the file absolute, against the config file's folder (in place).

    Paths given as overrides (`--set`, flags) are left alone: they are relative to where the command
    runs, like any other command-line path. `storage.uri` left unset defaults to `.civicml` beside
    the config file.
    """
    for dotted in PATH_KEYS:
        if dotted in skip:
            continue
        section, key = dotted.split(".")
        node = raw.get(section)
        if dotted == "storage.uri" and not (isinstance(node, dict) and "uri" in node):
            if node is None or isinstance(node, dict):
                raw.setdefault("storage", {})["uri"] = str(base / ".civicml")
            continue
        if isinstance(node, dict) and _is_relative_local_path(node.get(key)):
            node[key] = str(base / node[key])
