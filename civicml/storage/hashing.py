"""The model hash: one definition for the file tree a model is saved as (issue 15).

A model version's identity (`model_sha256` in its manifest, what approvals are bound to and what
`civicml reproduce` compares) is sha256 over `name + sha256(file)` of every file, names in plain string
order. Training computes it from the files on disk (`civicml.modeling.persistence.model_hash`) and the
registry re-derives it from the manifest's `model/` entries without downloading (`Registry`), so both call
this function. Before, the registry sorted by path components and training by string; they differ only
for nested names such as `a-b/x` and `a/b`, which no stored model has (a model directory is flat:
`model.json` plus `model.ubj` or `model.skops`), so every committed version keeps its hash.
"""

from __future__ import annotations

import hashlib


def tree_hash(files: dict[str, str]) -> str:
    """sha256 over `{relative path: sha256 hex of the file}`, paths in string order.

    Args:
        files: Relative POSIX path of each file (e.g. `model.json`, `sub/extra.bin`) to its sha256 hex.

    Returns:
        The hex digest that identifies the tree.
    """
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode())
        h.update(files[name].encode())
    return h.hexdigest()
