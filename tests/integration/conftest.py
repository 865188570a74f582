"""Fixtures for integration tests that run pipelines through kfp.local."""

import pytest


@pytest.fixture
def kfp_local_isolated(tmp_path, monkeypatch):
    """A clean kfp.local state and working directory, and no store or KFP endpoint from the environment.

    kfp.local keeps its configuration in a process-wide singleton, so it is reset before and after.
    """
    from kfp.local import config as local_config

    local_config.LocalExecutionConfig.instance = None
    monkeypatch.chdir(tmp_path)
    for var in ("CIVICML_STORE_URI", "KFP_HOST"):
        monkeypatch.delenv(var, raising=False)
    yield tmp_path
    local_config.LocalExecutionConfig.instance = None
