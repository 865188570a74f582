"""The floor of the server comparison: a bare FastAPI endpoint calling `booster.inplace_predict`.

Same model files, same uvicorn (httptools, uvloop), same request body as civicml's `/predict`
(`{"records": [{feature: value}]}`); nothing else: no validation beyond what Python's `float()`
and a dict lookup do, no request ids, no metrics, no prediction log, no A/B routing. What civicml
does on top of this is the price of those.

Usage:
    python benchmarks/bare_server.py MODEL_DIR --port 8081
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import uvicorn
import xgboost as xgb
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def build_app(model_dir: Path) -> FastAPI:
    """An app with one route, POST /predict, over the civicml model saved in `model_dir`."""
    meta = json.loads((model_dir / "model.json").read_text())
    spec = meta["spec"]
    booster = xgb.Booster()
    booster.load_model(str(model_dir / "model.ubj"))
    booster.set_param({"nthread": 1})
    numeric = spec["numeric"]
    codes = [(c, {v: float(i) for i, v in enumerate(cats)}) for c, cats in spec["categorical"].items()]
    nan = float("nan")
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: Request):
        records = json.loads(await request.body())["records"]
        x = np.array(
            [[float(r[c]) for c in numeric] + [t.get(r[c], nan) for c, t in codes] for r in records], dtype=np.float64
        )
        score = booster.inplace_predict(x, validate_features=False)
        return JSONResponse({"predictions": [{"score": float(s)} for s in score]})

    return app


def main() -> None:
    """Command line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("--port", type=int, default=8081)
    a = ap.parse_args()
    uvicorn.run(build_app(a.model_dir), host="127.0.0.1", port=a.port, log_level="warning")


if __name__ == "__main__":
    main()
