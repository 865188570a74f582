"""The config loader against hostile or broken files: alias bombs, duplicate keys, empty files and
non-UTF-8 text each fail in one clear message naming the file (issue 12 item 9)."""

from __future__ import annotations

import time

import pytest

from civicml.config import ConfigError, load_config

BOMB = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_alias_bomb_is_refused_quickly(tmp_path):
    p = tmp_path / "bomb.yaml"
    p.write_text(BOMB)
    assert len(BOMB) < 1024
    t0 = time.process_time()
    with pytest.raises(ConfigError, match=r"bomb.yaml expands to more than 100000 YAML nodes"):
        load_config(p)
    assert time.process_time() - t0 < 5  # generous: it takes milliseconds; the unbounded loader took minutes


def test_small_anchors_still_work(tmp_path):
    p = tmp_path / "ok.yaml"
    p.write_text("data: &d {sensitive_attributes: [sex]}\nname: demo\n")
    assert load_config(p).data.sensitive_attributes == ["sex"]


def test_duplicate_keys_are_refused_with_both_lines(tmp_path):
    p = tmp_path / "dup.yaml"
    p.write_text("name: a\ndeploy:\n  replicas: 2\n  replicas: 3\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'replicas' at line 4 \(first at line 3\)"):
        load_config(p)


def test_empty_config_is_not_the_demo(tmp_path):
    for text in ("", "# only a comment\n", "---\n"):
        p = tmp_path / "empty.yaml"
        p.write_text(text)
        with pytest.raises(ConfigError, match=r"empty.yaml is empty"):
            load_config(p)


def test_non_utf8_config_names_the_file(tmp_path):
    p = tmp_path / "latin1.yaml"
    p.write_bytes("name: café\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1.yaml is not UTF-8 text \(byte 9 is 0xe9\)"):
        load_config(p)


def test_cli_prints_one_line_and_exits_non_zero(tmp_path):
    import subprocess
    import sys

    p = tmp_path / "dup.yaml"
    p.write_text("name: a\nname: b\n")
    out = subprocess.run(
        [sys.executable, "-m", "civicml.cli", "compile", "--config", str(p), "--output-dir", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "duplicate key 'name'" in out.stderr + out.stdout and "Traceback" not in out.stderr
