"""Crypto pairs as TradingView and exchanges spell them, unified the way ccxt does (``BTC/USDT``).

``BINANCE:BTCUSDT``, ``BTCUSDT``, ``BTC/USDT`` and ``BTC-USDT`` are one pair. A run-together
ticker is split at a known quote currency; when that quote is also a plain currency or a
coin (``USD``, ``EUR``, ``BTC``...), the base must be a known coin or the prefix a crypto
exchange, so that a stock ticker is never taken for a pair.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Quotes that only exist on crypto venues: ``XYZUSDT`` is a pair whatever XYZ is.
CRYPTO_ONLY_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "DAI")
#: Quotes that need a known base or a crypto exchange prefix.
SHARED_QUOTES = ("USD", "EUR", "GBP", "JPY", "TRY", "BTC", "ETH", "BNB")
KNOWN_BASES = frozenset(
    [
        "BTC",
        "XBT",
        "ETH",
        "SOL",
        "XRP",
        "ADA",
        "DOGE",
        "LTC",
        "BNB",
        "AVAX",
        "DOT",
        "LINK",
        "MATIC",
        "POL",
        "SHIB",
        "TRX",
        "BCH",
        "XLM",
        "ATOM",
        "UNI",
        "ETC",
        "NEAR",
        "APT",
        "ARB",
        "OP",
        "SUI",
        "PEPE",
        "TON",
        "FIL",
        "AAVE",
        "ALGO",
        "XMR",
        "HBAR",
        "ICP",
    ]
)
CRYPTO_EXCHANGES = frozenset(
    [
        "BINANCE",
        "BINANCEUS",
        "COINBASE",
        "KRAKEN",
        "BYBIT",
        "OKX",
        "BITSTAMP",
        "BITFINEX",
        "GEMINI",
        "KUCOIN",
        "GATEIO",
        "BITGET",
        "MEXC",
        "HTX",
        "HUOBI",
        "CRYPTO",
        "BITMEX",
        "DERIBIT",
    ]
)
_QUOTES = tuple(sorted(CRYPTO_ONLY_QUOTES + SHARED_QUOTES, key=len, reverse=True))


@dataclass(frozen=True, slots=True)
class CryptoPair:
    base: str
    quote: str

    @property
    def symbol(self) -> str:
        """ccxt's unified symbol."""
        return f"{self.base}/{self.quote}"


def _asset(code: str) -> bool:
    return 1 <= len(code) <= 12 and code.isascii() and code.isalnum()


def parse_crypto_pair(
    raw: str, *, exchange: str = "", known_bases: frozenset[str] = KNOWN_BASES
) -> CryptoPair | None:
    """The pair ``raw`` names (prefix already split off into ``exchange``), or None."""
    text = raw.strip().upper()
    for sep in ("/", "-"):
        if sep in text:
            base, _, quote = text.partition(sep)
            if quote not in _QUOTES and base not in known_bases:
                return None  # BRK-B, BRK/B: a share class, not a pair
            return CryptoPair(base, quote) if _asset(base) and _asset(quote) else None
    on_crypto_venue = exchange.upper() in CRYPTO_EXCHANGES
    for quote in _QUOTES:
        if text.endswith(quote) and len(text) > len(quote):
            base = text[: -len(quote)]
            if not _asset(base):
                return None
            if quote in CRYPTO_ONLY_QUOTES or on_crypto_venue or base in known_bases:
                return CryptoPair(base, quote)
    return None
