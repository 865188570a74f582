"""One model hash: what training records and what the registry re-derives agree, nested names included."""

import hashlib
from pathlib import Path

from civicml.modeling.persistence import model_hash, model_hash_from_files
from civicml.storage.hashing import tree_hash
from civicml.storage.registry import tree_hash as registry_tree_hash


def _write(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


# "a-b/x" < "a/b" as strings ('-' is 0x2d, '/' 0x2f) but ("a", "b") < ("a-b", "x") as path parts: the
# two orders the registry and training used before issue 15 put these names differently.
NESTED = {"a-b/x": b"one", "a/b": b"two", "model.json": b"{}"}


def test_the_names_here_make_the_two_old_orders_disagree():
    names = list(NESTED)
    assert sorted(names) != sorted(names, key=lambda n: Path(n).parts)


def test_training_and_registry_hash_a_nested_tree_the_same(tmp_path):
    _write(tmp_path, NESTED)
    digests = {n: hashlib.sha256(b).hexdigest() for n, b in NESTED.items()}
    expected = hashlib.sha256()
    for name in sorted(NESTED):  # the definition, written out: names in string order
        expected.update(name.encode() + digests[name].encode())
    assert model_hash(tmp_path) == expected.hexdigest()
    assert registry_tree_hash(digests) == model_hash(tmp_path) == model_hash_from_files(NESTED)
    assert registry_tree_hash is tree_hash


def test_a_flat_model_directory_hashes_as_stored_versions_did(tmp_path):
    # Stored versions are flat (model.json + model.ubj/.skops): the path-parts order the registry used to
    # verify them gives the same digest, so every committed manifest keeps verifying.
    flat = {"model.json": b'{"family": "xgboost"}', "model.ubj": b"\x00\x01"}
    _write(tmp_path, flat)
    digests = {n: hashlib.sha256(b).hexdigest() for n, b in flat.items()}
    old_registry = hashlib.sha256()
    for name in sorted(digests, key=lambda n: Path(n).parts):
        old_registry.update(name.encode() + digests[name].encode())
    assert model_hash(tmp_path) == old_registry.hexdigest()
