"""schemathesis against the datahub's own OpenAPI document.

The app runs in-process (real uvicorn socket, real Redis, admin key configured and sent
on every request); schemathesis' CLI runs as a subprocess against the served URL with
its examples, coverage and fuzzing phases, a fixed seed and a bounded number of
examples per operation. One run feeds two assertions:

* no operation answers 5xx, whatever it is sent (``not_a_server_error``);
* what it answers is what the OpenAPI document says (status codes, content types,
  response bodies).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.datahub.app import create_app
from tests.apps import serve
from tests.fuzz.common import ADMIN, fuzz_settings
from tests.servers import RedisServer

pytestmark = pytest.mark.timeout(240)

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "25"))
SEED = int(os.environ.get("FUZZ_SEED", "1"))
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
]
SERVER_ERROR = {"ST100", "ST101"}  # schemathesis' codes for a 5xx / server error
CONFORMANCE = {"ST103", "ST104", "ST105", "ST106", "ST107", "ST108"}


def _failures(events_file: Path) -> list[dict[str, Any]]:
    """(code, title, operation, request) for each distinct failed check in the NDJSON log."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for line in events_file.read_text().splitlines():
        event = json.loads(line)
        finished = event.get("ScenarioFinished")
        if not finished:
            continue
        recorder = finished.get("recorder") or {}
        cases = recorder.get("cases") or {}
        for case_id, checks in (recorder.get("checks") or {}).items():
            for check in checks:
                if check.get("status") != "failure":
                    continue
                failure = (check.get("failure_info") or {}).get("failure") or {}
                code = str(failure.get("code", "?"))
                operation = str(failure.get("operation", recorder.get("label", "?")))
                case = (cases.get(case_id) or {}).get("value") or {}
                found.setdefault(
                    (code, operation),
                    {
                        "code": code,
                        "title": failure.get("title"),
                        "operation": operation,
                        "message": str(failure.get("message", ""))[:300],
                        "request": {
                            k: case.get(k) for k in ("method", "path", "query", "body") if k in case
                        },
                    },
                )
    return list(found.values())


@pytest.fixture(scope="module")
async def schemathesis_run(
    redis_srv: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    cli = Path(sys.executable).parent / "schemathesis"
    if not cli.exists():
        pytest.fail("schemathesis is not installed in the virtualenv (pip install -e '.[dev]')")
    app = create_app(fuzz_settings(redis_srv.url, tmp))
    events = tmp / "events.ndjson"
    async with serve(app) as url:
        argv = [
            str(cli),
            "run",
            f"{url}/openapi.json",
            "--header",
            f"X-API-Key: {ADMIN}",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--phases",
            "examples,coverage,fuzzing",
            "--checks",
            ",".join(CHECKS),
            "--continue-on-failure",
            "--no-shrink",
            "--workers",
            "2",
            "--request-timeout",
            "15",
            "--suppress-health-check",
            "all",
            "--report",
            "ndjson",
            "--report-ndjson-path",
            str(events),
        ]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=tmp,  # schemathesis keeps a cache directory in its working directory
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""},
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 200)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
    text = out.decode(errors="replace")
    assert events.exists(), text[-3000:]
    failures = _failures(events)
    generated = next(
        (line.strip() for line in text.splitlines() if "generated," in line),
        "",
    )
    print(f"\nSCHEMATHESIS seed={SEED} max_examples={MAX_EXAMPLES}: {generated}")
    for f in failures:
        print(f"  {f['code']} {f['title']}: {f['operation']} {json.dumps(f['request'])[:200]}")
    yield {"returncode": proc.returncode, "output": text, "failures": failures, "events": events}


def _fmt(items: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{f['code']} {f['title']} -- {f['operation']}: {json.dumps(f['request'])[:300]}\n"
        f"    {f['message'][:200]}"
        for f in items
    )


def test_schemathesis_ran_every_operation(schemathesis_run: dict[str, Any]) -> None:
    out = schemathesis_run["output"]
    assert "Tested:" in out or "API Operations" in out, out[-3000:]
    assert schemathesis_run["returncode"] in (0, 1), out[-3000:]  # 1: failures found


def test_no_operation_answers_5xx(schemathesis_run: dict[str, Any]) -> None:
    errors = [f for f in schemathesis_run["failures"] if f["code"] in SERVER_ERROR]
    assert errors == [], "server errors on hostile input:\n" + _fmt(errors)


def test_responses_conform_to_the_openapi_document(schemathesis_run: dict[str, Any]) -> None:
    mismatches = [
        f
        for f in schemathesis_run["failures"]
        if f["code"] in CONFORMANCE and "Received: 5" not in f["message"]  # 5xx: see above
    ]
    assert mismatches == [], "answers the OpenAPI document does not describe:\n" + _fmt(mismatches)


def test_the_webhook_body_is_in_the_document_and_fuzzed(
    schemathesis_run: dict[str, Any], redis_srv: RedisServer, tmp_path: Path
) -> None:
    """The route reads raw bytes, so the body was missing from OpenAPI and never fuzzed."""
    doc = create_app(fuzz_settings(redis_srv.url, tmp_path)).openapi()
    body = doc["paths"]["/webhook/tradingview"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"]
    alert = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"ticker", "action"} <= set(alert["required"]) and "time" in alert["properties"]
    assert doc["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    bodies = 0
    for line in schemathesis_run["events"].read_text().splitlines():
        finished = json.loads(line).get("ScenarioFinished") or {}
        recorder = finished.get("recorder") or {}
        if "/webhook/tradingview" not in str(recorder.get("label", "")):
            continue
        for case in (recorder.get("cases") or {}).values():
            if (case.get("value") or {}).get("body") is not None:
                bodies += 1
    assert bodies >= 10, f"schemathesis sent {bodies} webhook bodies"
