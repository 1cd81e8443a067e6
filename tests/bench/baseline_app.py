"""The baseline: bare FastAPI endpoints on the same uvicorn settings as the datahub."""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI()
_BODY_5000 = orjson.dumps({"s": "ok", **{k: [123.45] * 5000 for k in "tohlcv"}})
_QUOTES = orjson.dumps(
    {
        "quotes": {
            f"S{i}": {"symbol": f"S{i}", "last": 1.0, "bid": 1.0, "ask": 1.0} for i in range(10)
        }
    }
)


@app.get("/bare/history")
async def history() -> Response:
    return Response(_BODY_5000, media_type="application/json")


@app.get("/bare/quotes")
async def quotes() -> Response:
    return Response(_QUOTES, media_type="application/json")


@app.post("/bare/webhook")
async def webhook(request: Request) -> Response:
    body = orjson.loads(await request.body())
    return Response(
        orjson.dumps({"status": "accepted", "ticker": body.get("ticker")}),
        status_code=202,
        media_type="application/json",
    )
