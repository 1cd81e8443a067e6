"""hypothesis on every parser of outside input, without servers.

* ``Alert`` (the webhook body model): anything JSON gives an Alert or a ValidationError;
* kairos job documents (``parse_job`` / ``load_job_file``): anything gives a job or a
  JobFileError, never another exception (a trader reads FILE: FIELD: PROBLEM lines);
* Tradier's JSON (``app.tradier.normalize``): any JSON shape at any level gives values
  (possibly empty) -- the module is the one place that absorbs Tradier's quirks, so a
  surprising shape must not escape as a KeyError/AttributeError/ValidationError.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.kairos.jobs import JobFileError, load_job_file, parse_job
from app.models.alerts import Alert
from app.models.market import Resolution
from app.tradier import normalize as tn

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["null", "", "NaN", "1e400", "-1", "0", "AAPL", "2026-03-09", "Infinity"])
)


def json_like(keys: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Any]:
    key = keys if keys is not None else st.text(max_size=8)
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(key, inner, max_size=5),
        max_leaves=20,
    )


# -- the alert model --------------------------------------------------------------------
ALERT_KEYS = [
    "passphrase",
    "ticker",
    "action",
    "quantity",
    "order_type",
    "price",
    "stop_loss",
    "take_profit",
    "strategy",
    "alert_id",
    "time",
]
alert_values = (
    scalars
    | st.sampled_from(["buy", "SELL ", "exit", "flatten", "limit", "stop", "market", "NASDAQ:AAPL"])
    | st.datetimes().map(lambda d: d.isoformat())
    | json_like()
)


@SETTINGS
@given(st.dictionaries(st.sampled_from(ALERT_KEYS) | st.text(max_size=6), alert_values))
@example({"ticker": "AAPL", "action": "buy", "quantity": float("nan")})
@example({"ticker": "AAPL", "action": "buy", "quantity": float("inf")})
@example({"ticker": "AAPL", "action": "buy", "quantity": 2**70})
@example({"ticker": "AAPL", "action": "buy", "time": "9999-12-31T23:59:59-23:59"})
@example({"ticker": "\x00", "action": "buy"})
def test_alert_is_valid_or_a_validation_error(data: dict[str, Any]) -> None:
    try:
        alert = Alert.model_validate(data)
    except ValidationError:
        return
    assert alert.ticker and alert.ticker == alert.ticker.upper()
    if alert.quantity is not None:
        assert math.isfinite(alert.quantity) and 0 < alert.quantity <= 1_000_000
        assert alert.quantity == int(alert.quantity)
    for price in (alert.price, alert.stop_loss, alert.take_profit):
        assert price is None or (math.isfinite(price) and price > 0)
    assert "passphrase" not in alert.model_dump()


# -- kairos job documents -----------------------------------------------------------------
JOB_KEYS = [
    "name",
    "description",
    "schedule",
    "calendar",
    "session",
    "strategy",
    "symbols",
    "parameters",
    "risk",
    "webhook",
    "enabled",
    "jitter_seconds",
    "misfire_grace_seconds",
    "timeout_seconds",
]
job_values = (
    json_like()
    | st.sampled_from(
        [
            "*/5 * * * *",
            "0 9 * * 1-5",
            "61 * * * *",
            "* * * *",
            "@hourly",
            "XNYS",
            "XLON",
            "momentum",
            "mean_reversion",
            "rebalance",
            "os:system",
            "app.kairos.strategies.momentum:Momentum",
            "builtins:eval",
            "no_such_module:thing",
            "after_close",
            "5%",
            "abc%",
            "http://datahub:8000/",
            "regular",
        ]
    )
    | st.lists(st.sampled_from(["AAPL", "msft", "SPY", "AA;PL", "", "NASDAQ:QQQ"]), max_size=4)
    | st.dictionaries(
        st.sampled_from(
            ["policy", "offset_minutes", "position_size", "stop_loss", "lookback", "fast", "slow"]
        ),
        scalars,
        max_size=3,
    )
)
VALID_JOB = {
    "name": "fuzz-job",
    "schedule": "*/5 * * * *",
    "strategy": "momentum",
    "symbols": ["AAPL"],
}


@SETTINGS
@given(st.dictionaries(st.sampled_from(JOB_KEYS) | st.text(max_size=6), job_values, max_size=8))
def test_parse_job_raises_only_job_file_errors(data: dict[str, Any]) -> None:
    try:
        parse_job(data, Path("fuzz.yaml"))
    except JobFileError as exc:
        assert exc.lines() and all(line.startswith("fuzz.yaml") for line in exc.lines())


@SETTINGS
@given(st.dictionaries(st.sampled_from(JOB_KEYS), job_values, max_size=4))
def test_parse_job_with_a_valid_base_raises_only_job_file_errors(patch: dict[str, Any]) -> None:
    with contextlib.suppress(JobFileError):
        parse_job({**VALID_JOB, **patch}, Path("fuzz.yaml"))


@SETTINGS
@given(json_like())
def test_parse_job_of_any_document(data: Any) -> None:
    with contextlib.suppress(JobFileError):
        parse_job(data, Path("fuzz.yaml"))


yaml_text = st.text(
    alphabet=st.sampled_from(list("abcdefgh:-_ {}[]'\"\n\t#&*!|>%@`0123456789.,?\\")), max_size=120
) | st.sampled_from(
    [
        "!!python/object/apply:os.system ['true']",
        "a: &x [*x]",
        "name: x\nname: y\n",
        "- 1\n- 2\n",
        "\ufeffname: bom",
        "key: !!binary AAAA",
        "{a: 1}: 2",
        "? [1, 2]\n: 3",
    ]
)


@SETTINGS
@given(yaml_text)
def test_load_job_file_of_any_text(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("jobs") / "job.yaml"
    path.write_text(text, encoding="utf-8")
    with contextlib.suppress(JobFileError):
        load_job_file(path)


# -- Tradier's JSON -----------------------------------------------------------------------
TRADIER_KEYS = [
    "quotes",
    "quote",
    "unmatched_symbols",
    "symbol",
    "history",
    "day",
    "series",
    "data",
    "securities",
    "security",
    "clock",
    "calendar",
    "days",
    "open",
    "start",
    "end",
    "date",
    "time",
    "timestamp",
    "last",
    "bid",
    "ask",
    "close",
    "high",
    "low",
    "volume",
    "price",
    "trade_date",
    "bidsize",
    "prevclose",
    "errors",
    "error",
    "fault",
    "faultstring",
    "exch",
    "type",
    "description",
    "status",
]
tradier_json = json_like(st.sampled_from(TRADIER_KEYS) | st.text(max_size=4))


def envelope(outer: str, inner: str) -> st.SearchStrategy[Any]:
    """Tradier's envelope at ``outer.inner`` holding anything: one, many, "null"..."""
    return st.builds(
        lambda item, items, kind: {
            outer: {inner: item if kind == 0 else items if kind == 1 else "null"}
        },
        tradier_json,
        st.lists(tradier_json, max_size=3),
        st.integers(0, 2),
    )


@SETTINGS
@given(tradier_json | envelope("quotes", "quote"))
@example({"quotes": {"quote": {"last": 1.0}}})  # a priced quote without its symbol
@example({"quotes": {"quote": {"symbol": "AAPL", "last": -5.0}}})
@example({"quotes": {"quote": {"symbol": ["AAPL"], "last": 5.0, "volume": 1e300}}})
def test_quotes_from_rest(body: Any) -> None:
    quotes, unmatched = tn.quotes_from_rest(body, 1_700_000_000.0)
    assert isinstance(quotes, list) and isinstance(unmatched, list)


@SETTINGS
@given(tradier_json | envelope("history", "day"), st.sampled_from(list(Resolution)))
@example({"history": {"day": {"date": "2026-03-09", "close": -1.0}}}, Resolution.D1)
@example({"history": {"day": {"date": "2026-03-09", "close": 1.0, "volume": 1e400}}}, Resolution.D1)
def test_history_bars(body: Any, resolution: Resolution) -> None:
    assert isinstance(tn.history_bars(body, resolution), list)


@SETTINGS
@given(tradier_json | envelope("series", "data"))
@example({"series": {"data": {"timestamp": 1e300, "price": 1.0}}})
@example({"series": {"data": {"time": "2026-03-08T02:30:00", "price": 1.0}}})
def test_timesales_bars(body: Any) -> None:
    assert isinstance(tn.timesales_bars(body), list)


@SETTINGS
@given(tradier_json | envelope("securities", "security"))
def test_securities(body: Any) -> None:
    assert isinstance(tn.securities(body), list)


@SETTINGS
@given(tradier_json | envelope("calendar", "days"))
@example({"calendar": {"days": {"day": "closed"}}})
@example({"calendar": {"days": {"day": [1, 2]}}})
def test_calendar_days(body: Any) -> None:
    assert isinstance(tn.calendar_days(body), list)


@SETTINGS
@given(tradier_json)
def test_market_clock_and_envelope_helpers(body: Any) -> None:
    tn.market_clock(body)
    assert isinstance(tn.collection(body, "a", "b"), list)
    assert isinstance(tn.first(body, "clock"), dict)


@SETTINGS
@given(scalars | json_like())
def test_numbers(value: Any) -> None:
    n = tn.num(value)
    assert n is None or math.isfinite(n)
    assert isinstance(tn.integer(value), int)
    ms = tn.epoch_ms(value)
    assert ms is None or math.isfinite(ms)


@SETTINGS
@given(st.text(max_size=200) | tradier_json.map(lambda v: __import__("json").dumps(v)))
def test_error_message(text: str) -> None:
    msg = tn.error_message(text)
    assert isinstance(msg, str) and len(msg) <= 200


@SETTINGS
@given(
    st.binary(max_size=200)
    | st.text(max_size=200)
    | st.lists(tradier_json.map(lambda v: __import__("json").dumps(v)), max_size=4).map("\n".join)
)
def test_stream_events(payload: str | bytes) -> None:
    events = tn.stream_events(payload)
    assert all(isinstance(e, dict) for e in events)
