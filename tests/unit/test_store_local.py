"""LocalStore behaviour and store selection (URI, environment, S3 settings) without a server."""

from __future__ import annotations

import pytest

from civicml.storage.s3 import ACCESS_KEY_VARS, SECRET_KEY_VARS, S3Settings, parse_s3_uri, secret_env_mapping
from civicml.storage.store import LocalStore, StoreError, open_store, resolve_store_uri

S3_VARS = (
    "CIVICML_S3_ENDPOINT",
    "CIVICML_S3_SECURE",
    "CIVICML_S3_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_SESSION_TOKEN",
    *ACCESS_KEY_VARS,
    *SECRET_KEY_VARS,
)


@pytest.fixture
def clean_env(monkeypatch):
    for var in (*S3_VARS, "CIVICML_STORE_URI"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_roundtrip_list_and_delete(tmp_path):
    store = LocalStore(tmp_path / "s")
    assert store.list_keys() == []
    store.put_bytes("versions/v1/manifest.json", b"{}")
    store.put_bytes("staging/v1/model/model.ubj", b"abc")
    store.put_bytes("staging/v10/x", b"z")
    assert store.get_bytes("staging/v1/model/model.ubj") == b"abc"
    assert store.exists("versions/v1/manifest.json")
    assert not store.exists("versions/v2/manifest.json")
    assert store.list_keys("staging/v1/") == ["staging/v1/model/model.ubj"]  # not staging/v10
    assert store.list_keys() == ["staging/v1/model/model.ubj", "staging/v10/x", "versions/v1/manifest.json"]
    infos = {o.key: o for o in store.list_info("staging/")}
    assert infos["staging/v1/model/model.ubj"].size == 3
    assert infos["staging/v10/x"].modified > 0
    store.put_bytes("staging/v1/model/model.ubj", b"new")  # replace
    assert store.get_bytes("staging/v1/model/model.ubj") == b"new"
    store.delete("staging/v1/model/model.ubj")
    store.delete("staging/v1/model/model.ubj")  # absent: no error
    assert not (tmp_path / "s" / "staging" / "v1").exists()  # emptied directories go too
    assert store.list_keys("staging/") == ["staging/v10/x"]


def test_missing_key_is_file_not_found(tmp_path):
    store = LocalStore(tmp_path)
    with pytest.raises(FileNotFoundError, match="no object 'nope/x'"):
        store.get_bytes("nope/x")


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../outside", "a/../../b"])
def test_keys_cannot_escape_the_root(tmp_path, key):
    store = LocalStore(tmp_path / "root")
    with pytest.raises(ValueError, match="invalid object key"):
        store.put_bytes(key, b"x")
    assert not (tmp_path / "outside").exists()


def test_no_temp_files_left_and_temp_files_never_listed(tmp_path):
    store = LocalStore(tmp_path)
    store.put_bytes("a/b.json", b"1")
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.json"]
    (tmp_path / "a" / ".tmp-crashed").write_bytes(b"half")  # what a killed writer leaves
    assert store.list_keys() == ["a/b.json"]


def test_unwritable_location_is_a_clear_store_error(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    store = LocalStore(tmp_path / "file")
    with pytest.raises(StoreError, match="cannot write 'x/y' to the store directory"):
        store.put_bytes("x/y", b"1")


def test_file_helpers(tmp_path):
    store = LocalStore(tmp_path / "s")
    src = tmp_path / "in.bin"
    src.write_bytes(b"\x00\x01")
    store.put_file("f/in.bin", src)
    out = store.get_file("f/in.bin", tmp_path / "out" / "copy.bin")
    assert out.read_bytes() == b"\x00\x01"
    assert store.local_path("f/in.bin") == (tmp_path / "s" / "f" / "in.bin").resolve()


def test_open_store_selection(clean_env, tmp_path):
    assert isinstance(open_store(str(tmp_path / "a")), LocalStore)
    assert open_store(f"file://{tmp_path}/b").uri == str((tmp_path / "b").resolve())
    assert resolve_store_uri(None) == ".civicml"
    with pytest.raises(StoreError, match="unsupported store URI 'ftp://x'"):
        open_store("ftp://x")
    # The environment wins over the config ...
    clean_env.setenv("CIVICML_STORE_URI", str(tmp_path / "env"))
    assert open_store(str(tmp_path / "cfg")).uri == str((tmp_path / "env").resolve())
    # ... and an explicit --store wins over the environment.
    assert open_store(str(tmp_path / "flag"), explicit=True).uri == str((tmp_path / "flag").resolve())


def test_s3_uri_without_endpoint_says_which_variable(clean_env):
    with pytest.raises(StoreError, match="CIVICML_S3_ENDPOINT is not set"):
        open_store("s3://bucket/prefix")


def test_s3_settings_from_env(clean_env):
    clean_env.setenv("CIVICML_S3_ENDPOINT", "http://minio.example:9000/")
    clean_env.setenv("MINIO_ACCESS_KEY", "ak-123")
    clean_env.setenv("MINIO_SECRET_KEY", "sk-very-secret")
    s = S3Settings.from_env()
    assert (s.endpoint, s.secure, s.region) == ("minio.example:9000", False, "us-east-1")
    assert "sk-very-secret" not in repr(s) and "ak-123" not in repr(s)
    assert s.redact("key ak-123 secret sk-very-secret") == "key *** secret ***"
    clean_env.setenv("CIVICML_S3_SECURE", "true")
    assert S3Settings.from_env().secure is True
    clean_env.setenv("CIVICML_S3_ENDPOINT", "minio.example:9000")
    clean_env.setenv("CIVICML_S3_SECURE", "0")
    assert S3Settings.from_env().secure is False


def test_s3_settings_fall_back_to_aws_variables(clean_env):
    clean_env.setenv("AWS_ENDPOINT_URL", "https://s3.example")
    clean_env.setenv("AWS_ACCESS_KEY_ID", "aws-ak")
    clean_env.setenv("AWS_SECRET_ACCESS_KEY", "aws-sk")
    clean_env.setenv("AWS_REGION", "eu-west-1")
    s = S3Settings.from_env()
    assert (s.endpoint, s.secure, s.region, s.access_key) == ("s3.example", True, "eu-west-1", "aws-ak")


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("CIVICML_S3_ENDPOINT", "ftp://x:1", "unsupported scheme 'ftp'"),
        ("CIVICML_S3_ENDPOINT", "http://x:9000/bucket", "is not host\\[:port\\]"),
        ("CIVICML_S3_SECURE", "maybe", "CIVICML_S3_SECURE='maybe' is not a boolean"),
    ],
)
def test_s3_settings_bad_values(clean_env, var, value, message):
    clean_env.setenv("CIVICML_S3_ENDPOINT", "x:9000")
    clean_env.setenv("MINIO_ACCESS_KEY", "a")
    clean_env.setenv("MINIO_SECRET_KEY", "b")
    clean_env.setenv(var, value)
    with pytest.raises(StoreError, match=message):
        S3Settings.from_env()


def test_missing_credentials_name_the_variables(clean_env):
    clean_env.setenv("CIVICML_S3_ENDPOINT", "x:9000")
    clean_env.setenv("MINIO_ACCESS_KEY", "only-the-access-key")
    with pytest.raises(StoreError) as exc:
        S3Settings.from_env()
    msg = str(exc.value)
    assert "MINIO_SECRET_KEY" in msg and "storage.secret_name" in msg
    assert "only-the-access-key" not in msg


def test_parse_s3_uri():
    assert parse_s3_uri("s3://b") == ("b", "")
    assert parse_s3_uri("s3://b/a/b/") == ("b", "a/b/")
    with pytest.raises(StoreError, match="has no bucket"):
        parse_s3_uri("s3:///x")


def test_secret_env_mapping_feeds_the_variables_the_store_reads():
    mapping = secret_env_mapping()
    assert set(mapping.values()) == {"MINIO_ACCESS_KEY", "MINIO_SECRET_KEY"}
    assert set(mapping.values()) <= set(ACCESS_KEY_VARS) | set(SECRET_KEY_VARS)
    assert all(isinstance(k, str) and k for k in mapping)


def test_create_is_create_if_absent_and_racing_creators_have_one_winner(tmp_path):
    import multiprocessing

    from civicml.storage.store import StoreConflict

    store = LocalStore(tmp_path / "s")
    etag = store.create("a/b.json", b"first")
    with pytest.raises(StoreConflict, match="already exists"):
        store.create("a/b.json", b"second")
    assert store.read("a/b.json") == (b"first", etag)

    ctx = multiprocessing.get_context("fork")
    barrier, wins = ctx.Barrier(8), ctx.Queue()

    def racer(n: int) -> None:
        barrier.wait(30)
        try:
            LocalStore(tmp_path / "s").create("race.json", str(n).encode())
            wins.put(n)
        except StoreConflict:
            wins.put(None)

    procs = [ctx.Process(target=racer, args=(n,)) for n in range(8)]
    for p in procs:
        p.start()
    outcomes = [wins.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(10)
    winners = [n for n in outcomes if n is not None]
    assert len(winners) == 1 and store.get_bytes("race.json") == str(winners[0]).encode()
    assert not [p for p in (tmp_path / "s").iterdir() if p.name.startswith(".tmp-") and not p.name.endswith(".lock")]


def test_replace_if_match_is_compare_and_swap(tmp_path):
    from civicml.storage.store import StoreConflict

    store = LocalStore(tmp_path / "s")
    etag = store.create("k", b"1")
    etag2 = store.replace("k", b"2", if_match=etag)
    with pytest.raises(StoreConflict, match="changed since it was read"):
        store.replace("k", b"3", if_match=etag)  # stale etag: another writer got there first
    assert store.read("k") == (b"2", etag2)
    store.delete("k")
    with pytest.raises(StoreConflict, match="deleted"):
        store.replace("k", b"4", if_match=etag2)
