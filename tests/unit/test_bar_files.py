"""Bar files for backtests: the documented columns, roll-ups and what a quote is."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.backtest.bars import BarFileError, BarFiles, read_bars
from app.models.market import Resolution

T0 = 1_793_629_800  # a minute boundary


def write(path: Path, rows: list[str], header: str = "time,open,high,low,close,volume") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def minutes(n: int) -> list[str]:
    return [f"{T0 + 60 * i},{100 + i},{101 + i},{99 + i},{100.5 + i},10" for i in range(n)]


def test_columns_are_read_by_header_and_iso_times_are_utc(tmp_path: Path) -> None:
    path = write(
        tmp_path / "X_1.csv",
        ["10,2026-11-02T14:30:00,101,99,100.5,100", "20,2026-11-02T14:31:00Z,102,100,101,100"],
        header="volume,time,high,low,close,open",
    )
    bars = read_bars(path)
    assert [b.time for b in bars] == [T0, T0 + 60]
    assert (bars[0].open, bars[0].volume) == (100.0, 10.0)


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        (["1,2,3,1,2"], "time,open,high,low", "missing column(s) close"),
        ([f"{T0},100,99,98,100.5"], "time,open,high,low,close", ":2: high/low"),
        ([f"{T0},a,101,99,100"], "time,open,high,low,close", ":2: a price"),
        (["yesterday,100,101,99,100"], "time,open,high,low,close", "neither Unix seconds"),
        ([f"{T0},100,101,99,100", f"{T0},100,101,99,100"], "time,open,high,low,close", "two bars"),
    ],
)
def test_a_bad_file_names_the_file_and_line(
    tmp_path: Path, rows: list[str], header: str, message: str
) -> None:
    with pytest.raises(BarFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_bars(write(tmp_path / "X_1.csv", rows, header))


def test_minutes_roll_up_and_quotes_are_the_last_completed_close(tmp_path: Path) -> None:
    write(tmp_path / "X_1.csv", minutes(10))
    files = BarFiles(tmp_path, ["X"], clock=lambda: 0.0)
    five = files.history_at("X", Resolution("5"), T0, T0 + 600, None, now=T0 + 600).bars
    assert [(b.time, b.open, b.high, b.low, b.close, b.volume) for b in five] == [
        (T0, 100, 105, 99, 104.5, 50),
        (T0 + 300, 105, 110, 104, 109.5, 50),
    ]
    # never a bar that starts after now; the last two with countback
    got = files.history_at("X", Resolution("1"), 0, T0 + 600, 2, now=T0 + 150)
    assert [b.time for b in got.bars] == [T0 + 60, T0 + 120]
    assert files.quote_at("X", T0 + 150).last == 101.5  # the 2nd minute ended at +120


def test_a_symbol_without_a_file_is_named(tmp_path: Path) -> None:
    write(tmp_path / "X_1.csv", minutes(2))
    with pytest.raises(BarFileError, match=r"no Y_<resolution>\.csv for Y"):
        BarFiles(tmp_path, ["X", "Y"], clock=lambda: 0.0)
