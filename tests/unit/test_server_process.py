"""What `run_server` sets up for the process: the log config and the frozen start-up heap."""

from __future__ import annotations

import gc
import logging
import logging.config

from civicml.serving.app import freeze_heap, server_log_config


def test_log_config_keeps_uvicorns_loggers_and_adds_civicmls(capsys):
    config = server_log_config()
    # upstream: encode/uvicorn uvicorn/config.py:109-112 (its three loggers) @ 0.54.0
    assert {"uvicorn", "uvicorn.error", "uvicorn.access"} <= set(config["loggers"])
    assert config["loggers"]["civicml"]["handlers"] == ["default"]
    from uvicorn.config import LOGGING_CONFIG

    assert "civicml" not in LOGGING_CONFIG["loggers"], "uvicorn's module-level default must not be changed"
    # dictConfig changes process-wide loggers: put every one it touches back afterwards.
    touched = [logging.getLogger(name) for name in config["loggers"]]
    saved = [(lg, lg.handlers[:], lg.propagate, lg.level) for lg in touched]
    try:
        logging.config.dictConfig(config)
        logging.getLogger("civicml.serving.reload").info("switched: now serving champion v2")
        assert "switched: now serving champion v2" in capsys.readouterr().err
        logging.getLogger("civicml.serving.reload").debug("not shown")
        assert "not shown" not in capsys.readouterr().err
    finally:
        for lg, handlers, propagate, level in saved:
            lg.handlers[:] = handlers
            lg.propagate = propagate
            lg.setLevel(level)


def test_freeze_heap_moves_live_objects_out_of_collection():
    before = gc.get_freeze_count()
    try:
        kept = [{"i": i} for i in range(1000)]  # containers the collector tracks
        frozen = freeze_heap()
        assert frozen >= before + len(kept)
        # Frozen objects are not walked by a collection; gc.collect() still runs and returns.
        assert gc.get_freeze_count() == frozen
        gc.collect()
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
        if before:
            gc.freeze()
