"""TradingView's alert log export, read by its header (``app/backtest/tvlog.py``), and
what the replay makes of a message (passphrase dropped, the intake's id).

The fixture ``tests/fixtures/TradingView_Alerts_Log_2025-03-04_5f2c1.csv`` is written in
the format TradingView's Alerts panel -> Log -> Export downloads, as found in public code
that parses real exports (searched for the exact header): the columns
``Alert ID,Ticker,Name,Description,Time`` and, in newer exports, ``Webhook status``; the
Ticker is ``EXCHANGE:SYMBOL, interval``; the Description is the message (our JSON, quoted
with doubled quotes, commas and new lines inside); the Time is UTC ISO 8601 with a ``Z``
(``2026-08-03T03:50:01Z``; older exports with milliseconds, ``2021-05-20T02:44:05.000Z``);
rows newest first; the file name ``TradingView_Alerts_Log_<date>_<hex>.csv``.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from app.backtest.replay import Live, ReplayAlert, Replayed, match_ids, prepare
from app.backtest.tvlog import TvLogError, load_log, parse_time, read_log
from app.cli import cli
from app.execution.intake import content_digest
from app.models.alerts import Decision

FIXTURE = Path(__file__).parents[1] / "fixtures" / "TradingView_Alerts_Log_2025-03-04_5f2c1.csv"
HEADER = ["Alert ID", "Ticker", "Name", "Description", "Time", "Webhook status"]


def rows_of(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(), newline="")))


def to_csv(columns: list[str], rows: list[dict[str, str]], bom: bool = False) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return ("\ufeff" if bom else "") + out.getvalue()


def test_the_fixture_oldest_first_with_rejected_rows_named() -> None:
    rows, rejected = load_log(FIXTURE)
    assert [(r.alert.ticker, r.alert.action.value) for r in rows] == [
        ("AAPL", "buy"),
        ("MSFT", "sell"),
        ("SPY", "buy"),
        ("AAPL", "exit"),
        ("AAPL", "buy"),
        ("MSFT", "exit"),
    ]
    assert [r.time for r in rows] == sorted(r.time for r in rows)
    first = rows[0]
    assert first.time == datetime(2025, 3, 3, 14, 35, tzinfo=UTC)
    assert first.tv_alert_id == "1874012931" and first.chart == "NASDAQ:AAPL, 5"
    assert first.webhook_status == "Webhook successfully delivered"
    assert first.line == 17  # the file's line (the header is line 1; rows span lines)
    # a multi-line message with commas and doubled quotes, a quantity as a string
    spy = rows[2]
    assert orjson.loads(spy.body)["comment"] == "dip, then bounce: 3 shares"
    assert spy.alert.quantity == 3 and spy.alert.alert_id == "tv-spy-1"
    assert rows[1].time == datetime(2025, 3, 3, 14, 40, tzinfo=UTC)  # ".000Z"
    assert [(r.line, r.reason.split(" (")[0]) for r in rejected] == [
        (14, "the alert message is not JSON"),
        (15, "invalid alert"),
    ]
    assert "action" in rejected[1].reason
    assert "line 14" in rejected[0].describe() and "Crossing 240" in rejected[0].describe()


def test_columns_are_read_by_their_header_in_any_order() -> None:
    records = rows_of(FIXTURE)
    shuffled = ["Time", "Webhook status", "Description", "Name", "Alert ID", "Ticker"]
    old = ["Description", "Alert ID", "Time", "Ticker", "Name"]  # no Webhook status
    want, _ = load_log(FIXTURE)
    for columns, bom in ((shuffled, False), (old, True)):
        rows, rejected = read_log(to_csv(columns, records, bom))
        assert [r.body for r in rows] == [r.body for r in want]
        assert [r.time for r in rows] == [r.time for r in want]
        assert [r.chart for r in rows] == [r.chart for r in want]
        assert len(rejected) == 2
    rows, _ = read_log(to_csv(old, records))
    assert all(r.webhook_status == "" for r in rows)


def test_a_quoted_message_with_commas_and_doubled_quotes() -> None:
    message = '{"ticker": "AAPL", "action": "buy", "quantity": 2, "alert_id": "a,\\"b\\",c"}'
    text = to_csv(HEADER, [{"Description": message, "Time": "2025-03-03T15:00:00Z"}])
    assert '""ticker""' in text  # the csv module doubles quotes as TradingView does
    (row,), rejected = read_log(text)
    assert not rejected
    assert row.alert.alert_id == 'a,"b",c' and row.body == message.encode()


def test_bad_rows_are_lines_not_crashes() -> None:
    records = [
        {"Description": '{"ticker": "AAPL", "action": "buy"', "Time": "2025-03-03T15:00:00Z"},
        {"Description": "[1, 2]", "Time": "2025-03-03T15:01:00Z"},
        {"Description": '{"ticker": "AAPL", "action": "buy"}', "Time": "yesterday"},
        {"Description": '{"ticker": "$$$", "action": "buy"}', "Time": "2025-03-03T15:02:00Z"},
        {
            "Description": '{"ticker": "AAPL", "action": "sell"}',
            "Time": "2025-03-03T17:03:00+02:00",
        },
    ]
    rows, rejected = read_log(to_csv(HEADER, records))
    assert [r.reason.split(" (")[0] for r in rejected] == [
        "the alert message is not JSON",
        "the alert message must be a JSON object",
        "time 'yesterday' is not ISO 8601",
        "invalid alert",
    ]
    assert [r.line for r in rejected] == [2, 3, 4, 5]
    assert rejected[2].time is None
    (row,) = rows
    assert row.time == datetime(2025, 3, 3, 15, 3, tzinfo=UTC)  # an offset, to UTC


def test_files_that_cannot_be_used() -> None:
    with pytest.raises(TvLogError, match="no Description column"):
        read_log("Alert ID,Ticker,Name,Message,Time\n1,AAPL,x,{},2025-03-03T15:00:00Z\n")
    with pytest.raises(TvLogError, match="no Description or Time column"):
        read_log("")
    with pytest.raises(TvLogError, match="cannot read"):
        load_log(Path("/nonexistent/alerts.csv"))


def test_parse_time() -> None:
    assert parse_time("2021-05-20T02:44:05.000Z") == datetime(2021, 5, 20, 2, 44, 5, tzinfo=UTC)
    assert parse_time("2021-05-20 02:44:05") == datetime(2021, 5, 20, 2, 44, 5, tzinfo=UTC)
    with pytest.raises(ValueError, match="not ISO 8601"):
        parse_time("20/05/2021")


def test_prepare_drops_the_passphrase_and_derives_the_intakes_id() -> None:
    body = b'{"passphrase": "tv-secret", "ticker": "MSFT", "action": "sell", "quantity": 5}'
    a = prepare(1741012800.0, body, "line 16")
    data = orjson.loads(a.body)
    assert "passphrase" not in data and a.derived
    # the intake's id of an id-less alert: its content less the passphrase, and the time
    content = orjson.dumps(
        {"ticker": "MSFT", "action": "sell", "quantity": 5}, option=orjson.OPT_SORT_KEYS
    )
    assert a.alert_id == f"h-{content_digest(content)[:20]}-1741012800000"
    assert data["alert_id"] == a.alert_id
    assert prepare(1741012801.0, body, "x").alert_id != a.alert_id  # a later firing: new
    named = prepare(0.0, b'{"ticker": "AAPL", "action": "buy", "alert_id": " x1 "}', "y")
    assert named.alert_id == "x1" and not named.derived
    with pytest.raises(ValueError, match="not JSON"):
        prepare(0.0, b"AAPL crossing", "z")


def test_a_derived_id_matches_the_live_copy_nearest_in_time() -> None:
    a = prepare(1000.0, b'{"ticker": "MSFT", "action": "exit"}', "line 2")
    stem = a.alert_id.rsplit("-", 1)[0]

    def decision(alert_id: str) -> Decision:
        return Decision(alert_id=alert_id, status="accepted", time=0.0)

    live = Live(
        {
            i: decision(i)
            for i in (f"{stem}-1000900", f"{stem}-1003500", f"{stem}-900000", "h-other-1000000")
        },
        {},
        {},
    )
    row = Replayed(a, None)
    assert match_ids([row], live) == {a.alert_id: f"{stem}-1000900"}  # 0.9 s later
    far = Live({f"{stem}-1500000": decision(f"{stem}-1500000")}, {}, {})
    assert match_ids([row], far) == {}  # 500 s: another firing, not this one
    exact = ReplayAlert(1.0, b"{}", "id-1", "AAPL", "buy", "s")
    assert match_ids([Replayed(exact, None)], far) == {"id-1": "id-1"}


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["replay", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent/alerts.csv"], "no such file"),
        ([str(FIXTURE), "--from", "2025-13-01"], "is not a date"),
        ([str(FIXTURE), "--from", "2025-03-04", "--to", "2025-03-03"], "is before --from"),
        ([str(FIXTURE), "--from", "2025-03-04"], "no alert to replay in --from/--to"),
        (["redis://127.0.0.1:1/0"], "needs --from and --to"),
        ([str(FIXTURE), "--compare", "redis://u:secret@127.0.0.1:1/0"], "cannot reach Redis"),
    ],
)
def test_cli_errors_are_one_line(args: list[str], message: str) -> None:
    code, output = run_cli(*args)
    assert code == 2, output
    assert message in output and len(output.strip().splitlines()) == 1
    assert "secret" not in output


def test_cli_a_csv_without_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "alerts.csv"
    path.write_text("Symbol,Side,Qty\nAAPL,buy,1\n")
    code, output = run_cli(str(path))
    assert code == 2 and "not a TradingView alert log: no Description or Time column" in output
    assert len(output.strip().splitlines()) == 1
