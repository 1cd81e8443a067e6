"""Limits files: defaults, the shipped example, and errors that name the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.risk import RiskConfigError, RiskEngine, RiskLimits, load_limits, parse_limits
from app.risk.checks import ORDER

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "risk.yaml"
    path.write_text(text)
    return path


def test_no_file_means_defaults() -> None:
    assert load_limits(None) == RiskLimits()


def test_shipped_example_matches_defaults_and_builds_every_check() -> None:
    limits = load_limits(REPO / "deployment" / "risk.yaml")
    assert limits.daily_loss == RiskLimits().daily_loss
    assert limits.section("position_size", "example-swing").max_shares == 200
    assert limits.section("position_size", "example-swing").max_notional == 25_000  # inherited
    assert limits.sector_concentration is not None
    assert limits.sector_concentration.sectors["AAPL"] == "Technology"
    assert limits.options == RiskLimits().options
    engine = RiskEngine(limits, market_hours="exchange")
    assert [c.name for c in engine.checks] == list(ORDER)


def test_empty_file_is_defaults(tmp_path: Path) -> None:
    assert load_limits(write(tmp_path, "# nothing\n")) == RiskLimits()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RiskConfigError, match=r"nope\.yaml: cannot read"):
        load_limits(tmp_path / "nope.yaml")


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "daily_loss:\n  max_loss: [1000\n")
    with pytest.raises(RiskConfigError) as err:
        load_limits(path)
    assert str(path) in str(err.value) and "invalid YAML" in str(err.value)
    assert "line" in str(err.value)


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(RiskConfigError, match="expected a mapping"):
        load_limits(write(tmp_path, "- 1\n- 2\n"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("daily_loss:\n  max_loss: -5\n", "daily_loss.max_loss: Input should be greater than 0"),
        ("daily_los:\n  max_loss: 5\n", "daily_los: unknown field"),
        ("leverage:\n  max_levrage: 2\n", "leverage.max_levrage: unknown field"),
        ("daily_loss:\n  reset_time: '9:30'\n", "daily_loss.reset_time: must be HH:MM"),
        ("daily_loss:\n  timezone: Mars/Olympus\n", "daily_loss.timezone: unknown time zone"),
        ("kill_switch:\n  initial_state: PAUSED\n", "kill_switch.initial_state"),
        ("market_hours:\n  mode: sometimes\n", "market_hours.mode"),
        ("quantity:\n  min_quantity: 10\n  max_quantity: 5\n", "quantity: min_quantity must not"),
        (
            "rate_limit:\n  global:\n    max_orders: 0\n    window_seconds: 1\n",
            "rate_limit.global.max_orders",
        ),
        (
            "strategies:\n  s1:\n    quantity:\n      max_quantity: lots\n",
            "strategies.s1.quantity.max_quantity: Input should be a valid integer",
        ),
        ("strategies:\n  s1:\n    leverage: {}\n", "strategies.s1.leverage: unknown field"),
    ],
)
def test_errors_name_file_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RiskConfigError) as err:
        load_limits(path)
    assert str(err.value).startswith(f"{path}: ")
    assert expected in str(err.value)


def test_null_or_enabled_false_disables(tmp_path: Path) -> None:
    limits = load_limits(
        write(tmp_path, "volatility: null\nduplicate:\n  enabled: false\nmarket_hours: null\n")
    )
    names = [c.name for c in RiskEngine(limits).checks]
    assert "volatility" not in names and "duplicate" not in names
    assert "market_hours" not in names and "leverage" in names


def test_strategy_override_is_validated_after_merge() -> None:
    # min 2000 alone would clash with the default max (1000); with max 5000 inherited it is fine.
    limits = parse_limits(
        {
            "quantity": {"max_quantity": 5000},
            "strategies": {
                "big": {"quantity": {"min_quantity": 2000}},
                "off": {"quantity": None},
            },
        }
    )
    big = limits.section("quantity", "big")
    assert (big.min_quantity, big.max_quantity) == (2000, 5000)
    assert limits.section("quantity", "off") is None
    assert limits.section("quantity", "unknown").max_quantity == 5000
    with pytest.raises(RiskConfigError, match=r"strategies\.bad\.quantity: min_quantity"):
        parse_limits({"strategies": {"bad": {"quantity": {"min_quantity": 2000}}}}, "x.yaml")


def test_strategy_can_enable_a_check_disabled_globally() -> None:
    limits = parse_limits(
        {"order_notional": None, "strategies": {"careful": {"order_notional": {"max_notional": 5}}}}
    )
    assert limits.section("order_notional") is None
    assert limits.section("order_notional", "careful").max_notional == 5
    assert "order_notional" in [c.name for c in RiskEngine(limits).checks]
