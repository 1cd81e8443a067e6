"""The real TradeNote fixture: built from its source, on PostgreSQL, its own sign-up path."""

from __future__ import annotations

from typing import Any

from tests.tradenote.server import TradeNoteServer, tradenote, tradenote_account

__all__ = ["tradenote", "tradenote_account"]


def test_signup_creates_tradenotes_own_schema(
    tradenote: TradeNoteServer, tradenote_account: dict[str, Any]
) -> None:
    schemas = tradenote.parse("GET", "schemas", master=True)["results"]
    trades = next(s for s in schemas if s["className"] == "trades")
    # the fields TradeNote's requiredClasses.json declares, created by /api/updateSchemas
    for name in ("user", "dateUnix", "executions", "trades", "blotter", "pAndL", "openPositions"):
        assert name in trades["fields"], name
    me = tradenote.parse("GET", "users/me", session=tradenote_account["sessionToken"])
    assert me["timeZone"] == "America/New_York"
    assert me["email"] == tradenote_account["username"]


def test_ui_is_served(tradenote: TradeNoteServer) -> None:
    page = tradenote.http("GET", f"{tradenote.base_url}/dashboard")
    assert 'id="app"' in page
    assert tradenote.http("POST", f"{tradenote.base_url}/api/parseAppId", {}) == tradenote.app_id
