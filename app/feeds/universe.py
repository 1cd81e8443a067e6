"""Reference data for the simulated feed: the default universe and its character."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    description: str
    exchange: str
    type: str
    sector: str
    price: float  # reference close on 2025-01-01
    annual_vol: float  # annualised volatility
    daily_volume: int  # average shares a day


INSTRUMENTS: dict[str, Instrument] = {
    i.symbol: i
    for i in [
        Instrument("AAPL", "Apple Inc.", "NASDAQ", "stock", "Technology", 250.0, 0.26, 50_000_000),
        Instrument("MSFT", "Microsoft Corporation", "NASDAQ", "stock", "Technology", 420.0, 0.24, 20_000_000),
        Instrument("GOOGL", "Alphabet Inc. Class A", "NASDAQ", "stock", "Communication Services", 190.0, 0.30, 25_000_000),
        Instrument("NVDA", "NVIDIA Corporation", "NASDAQ", "stock", "Technology", 135.0, 0.50, 200_000_000),
        Instrument("AMD", "Advanced Micro Devices, Inc.", "NASDAQ", "stock", "Technology", 125.0, 0.48, 40_000_000),
        Instrument("TSLA", "Tesla, Inc.", "NASDAQ", "stock", "Consumer Discretionary", 400.0, 0.60, 90_000_000),
        Instrument("SPY", "SPDR S&P 500 ETF Trust", "NYSEARCA", "fund", "Broad Market", 590.0, 0.15, 60_000_000),
        Instrument("QQQ", "Invesco QQQ Trust", "NASDAQ", "fund", "Broad Market", 510.0, 0.20, 35_000_000),
        Instrument("IWM", "iShares Russell 2000 ETF", "NYSEARCA", "fund", "Broad Market", 220.0, 0.22, 30_000_000),
        Instrument("DIA", "SPDR Dow Jones Industrial Average ETF", "NYSEARCA", "fund", "Broad Market", 425.0, 0.14, 3_000_000),
        Instrument("VTI", "Vanguard Total Stock Market ETF", "NYSEARCA", "fund", "Broad Market", 290.0, 0.15, 4_000_000),
        Instrument("XLK", "Technology Select Sector SPDR Fund", "NYSEARCA", "fund", "Technology", 235.0, 0.22, 6_000_000),
        Instrument("XLF", "Financial Select Sector SPDR Fund", "NYSEARCA", "fund", "Financials", 48.0, 0.18, 40_000_000),
        Instrument("XLE", "Energy Select Sector SPDR Fund", "NYSEARCA", "fund", "Energy", 86.0, 0.24, 15_000_000),
        Instrument("XLV", "Health Care Select Sector SPDR Fund", "NYSEARCA", "fund", "Health Care", 138.0, 0.15, 8_000_000),
        Instrument("META", "Meta Platforms, Inc.", "NASDAQ", "stock", "Communication Services", 590.0, 0.38, 15_000_000),
        Instrument("AMZN", "Amazon.com, Inc.", "NASDAQ", "stock", "Consumer Discretionary", 220.0, 0.32, 40_000_000),
        Instrument("JPM", "JPMorgan Chase & Co.", "NYSE", "stock", "Financials", 240.0, 0.22, 9_000_000),
    ]
}  # fmt: skip


def instrument_for(symbol: str) -> Instrument:
    """Known instruments keep their character; any other configured symbol gets a stable one."""
    if symbol in INSTRUMENTS:
        return INSTRUMENTS[symbol]
    digest = sum(ord(c) * (i + 1) for i, c in enumerate(symbol))
    return Instrument(
        symbol=symbol,
        description=f"{symbol} (simulated)",
        exchange="NASDAQ",
        type="stock",
        sector="Other",
        price=20.0 + digest % 300,
        annual_vol=0.25 + (digest % 30) / 100,
        daily_volume=1_000_000 + (digest % 50) * 100_000,
    )
