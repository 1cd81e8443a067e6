"""Job files: the shipped jobs, error messages that name file/field/problem, entry points."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.kairos.cli import kairos_app
from app.kairos.jobs import SessionPolicy, load_job_file, load_jobs
from app.kairos.models import Action, Signal
from app.kairos.strategies import FunctionStrategy, Momentum, Rebalance
from app.kairos.strategies.base import StrategyContext

JOBS_DIR = Path(__file__).resolve().parents[2] / "deployment" / "kairos" / "jobs"

GOOD = """
name: good
schedule: "*/5 * * * *"
strategy: momentum
symbols: [aapl, MSFT]
risk: {position_size: 5%, stop_loss: 0.03}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def entry_point_strategy(ctx: StrategyContext) -> list[Signal]:
    """Used by the entry-point test below as ``tests.unit.test_kairos_jobs:entry_point_strategy``."""
    return [Signal(symbol=s, action=Action.BUY, bar_time=0) for s in ctx.job.symbols]


def test_shipped_jobs_are_valid_and_match_the_brief() -> None:
    jobs = load_jobs(JOBS_DIR)
    assert jobs.errors == []
    by_name = {j.name: j for j in jobs.jobs}
    assert set(by_name) == {"momentum", "mean_reversion", "portfolio_rebalance"}

    mom = by_name["momentum"].spec
    assert mom.schedule == "*/5 * * * 1-5" and mom.session.policy is SessionPolicy.REGULAR
    assert mom.symbols == ["AAPL", "GOOGL", "MSFT", "TSLA", "AMD", "NVDA"]
    assert (mom.risk.position_size, mom.risk.stop_loss, mom.risk.take_profit) == (0.05, 0.03, 0.06)
    assert mom.risk.max_positions == 3
    assert isinstance(by_name["momentum"].strategy, Momentum)
    assert by_name["momentum"].strategy.params.resolution.value == "5"

    mr = by_name["mean_reversion"].spec
    assert mr.schedule.startswith("*/15 ") and mr.symbols == ["SPY", "QQQ", "IWM", "DIA", "VTI"]
    assert (mr.risk.position_size, mr.risk.stop_loss, mr.risk.take_profit) == (0.08, 0.05, 0.04)

    rb = by_name["portfolio_rebalance"]
    assert rb.spec.session.policy is SessionPolicy.AFTER_CLOSE
    assert isinstance(rb.strategy, Rebalance)
    targets = rb.strategy.params.targets
    assert targets["SPY"] == 0.40 and targets["QQQ"] == 0.20 and targets["VTI"] == 0.15
    assert targets["IWM"] == 0.10
    assert sum(targets[s] for s in ("XLK", "XLF", "XLE", "XLV")) == pytest.approx(0.15)
    assert rb.strategy.params.drift_threshold == 0.05 and rb.strategy.params.min_trade_value == 100


def test_good_file_normalises(tmp_path: Path) -> None:
    job = load_job_file(write(tmp_path, "good.yaml", GOOD))
    assert job.spec.symbols == ["AAPL", "MSFT"]
    assert job.spec.calendar == "XNYS" and job.spec.enabled
    assert job.spec.risk.position_size == 0.05


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        (GOOD.replace('"*/5 * * * *"', '"*/5 * * *"'), "schedule", "5-field cron"),
        (GOOD.replace('"*/5 * * * *"', '"99 * * * *"'), "schedule", "not a valid cron"),
        (GOOD + "calendar: XNOPE\n", "calendar", "unknown exchange calendar"),
        (GOOD.replace("momentum", "nope"), "strategy", "neither a built-in"),
        (GOOD.replace("momentum", "no_such_module_xyz:f"), "strategy", "cannot import module"),
        (
            GOOD.replace("position_size: 5%", "position_size: 5"),
            "risk.position_size",
            "less than or equal to 1",
        ),
        (
            GOOD + "parameters: {rsi_period: 1}\n",
            "parameters.rsi_period",
            "greater than or equal to 2",
        ),
        (GOOD + "parameters: {rsi_perod: 14}\n", "parameters.rsi_perod", "unknown field"),
        (GOOD + "colour: blue\n", "colour", "unknown field"),
        (GOOD + "session: lunch\n", "session.policy", "regular"),
        (GOOD + "session: {policy: regular, offset_minutes: 5}\n", "session", "after_close"),
        (GOOD.replace("[aapl, MSFT]", "[aapl, AAPL]"), "symbols", "duplicate symbol"),
        (GOOD + "webhook: datahub:8000\n", "webhook", "http(s)://"),
        (GOOD.replace("name: good", "name: Bad Name"), "name", "lower-case"),
    ],
)
def test_bad_field_is_named(tmp_path: Path, text: str, field: str, problem: str) -> None:
    path = write(tmp_path, "bad.yaml", text)
    jobs = load_jobs(tmp_path)
    assert jobs.jobs == []
    [err] = jobs.errors
    line = err.lines()[0]
    assert line.startswith(f"{path}: {field}: "), line
    assert problem in line


def test_a_broken_file_does_not_stop_the_others(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "b.yaml", "name: [unclosed\n")
    write(tmp_path, "c.yaml", GOOD)  # same name as a.yaml
    write(tmp_path, "notes.txt", "ignored")
    jobs = load_jobs(tmp_path)
    assert [j.name for j in jobs.jobs] == ["good"]
    lines = [ln for e in jobs.errors for ln in e.lines()]
    assert any(
        ln.startswith(f"{tmp_path / 'b.yaml'}: invalid YAML: line 2, column 1") for ln in lines
    )
    assert any("c.yaml: name: job 'good' is already defined in" in ln for ln in lines)


def test_rebalance_targets_must_match_symbols(tmp_path: Path) -> None:
    text = """
name: rb
schedule: "30 16 * * *"
session: {policy: after_close, offset_minutes: 30}
strategy: rebalance
symbols: [SPY, QQQ]
parameters: {targets: {SPY: 0.6, TLT: 0.4}}
"""
    jobs = load_jobs([write(tmp_path, "rb.yaml", text)])
    [line] = jobs.errors[0].lines()
    assert line.endswith(
        "strategy: targets must match symbols: no target for QQQ; TLT not in symbols"
    )


def test_entry_point_strategy(tmp_path: Path) -> None:
    text = GOOD.replace("momentum", "tests.unit.test_kairos_jobs:entry_point_strategy")
    job = load_job_file(
        write(tmp_path, "ep.yaml", text + "parameters: {resolution: '15', bars: 30}\n")
    )
    assert isinstance(job.strategy, FunctionStrategy)
    needs = job.strategy.needs()
    assert needs.resolution is not None and needs.resolution.value == "15" and needs.bars == 30


def test_cli_validate(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(kairos_app, ["validate", str(JOBS_DIR / "momentum.yaml")])
    assert ok.exit_code == 0 and "ok    " in ok.output
    bad = write(
        tmp_path, "bad.yaml", GOOD.replace("strategy: momentum", "strategy: momentum\nrisk2: 1")
    )
    res = runner.invoke(kairos_app, ["validate", str(JOBS_DIR / "momentum.yaml"), str(bad)])
    assert res.exit_code == 1
    assert f"error {bad}: risk2: unknown field" in res.output
