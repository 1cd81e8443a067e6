"""The journal profile of the running stack: an alert in, the day document in TradeNote.

TradeNote is the real one in its container: upstream's image with MongoDB when a registry is
reachable, else built here from its source and run on PostgreSQL (see conftest). The
journal's user registers through TradeNote's own sign-up path (``/api/updateSchemas``, then
a Parse sign-up with username = e-mail, password and time zone), as a trader would; the day
document is read back through Parse REST with that user's session, as TradeNote's UI reads it.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import TRADENOTE_USER, Stack, progress, run
from tests.e2e.test_stack import filled, position, wait_for, webhook

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

RUN_ID = uuid.uuid4().hex[:8]
SYMBOL = "QQQ"  # traded by no other e2e test: its round trip is this test's alone
TIME_ZONE = "America/New_York"


def tradenote(stack: Stack) -> httpx.Client:
    return httpx.Client(
        base_url=stack.tradenote_url,
        timeout=15,
        headers={"X-Parse-Application-Id": stack.secrets["TRADENOTE_APP_ID"]},
    )


@pytest.fixture(scope="module")
def journal_user(stack: Stack) -> dict[str, Any]:
    """The journal's TradeNote user, signed up the way TradeNote's sign-up page does it."""
    if stack.journal_off:
        pytest.skip(stack.journal_off)
    assert {"tradenote", "journal", stack.tradenote_db} <= set(stack.services), (
        f"journal profile not running: {sorted(stack.services)}"
    )
    password = secrets.token_hex(8)
    with tradenote(stack) as tn:
        r = tn.post("/api/updateSchemas", json={})
        assert r.status_code == 200, r.text
        assert "trades" in r.text  # TradeNote created (or found) its own classes
        body = {"username": TRADENOTE_USER, "password": password, "email": TRADENOTE_USER,
                "timeZone": TIME_ZONE}  # fmt: skip
        r = tn.post("/parse/users", json=body)
        assert r.status_code == 201, r.text
        r = tn.post("/parse/login", json={"username": TRADENOTE_USER, "password": password})
        assert r.status_code == 200, r.text
        user = dict(r.json())
    progress(f"TradeNote user {TRADENOTE_USER} signed up ({user['objectId']})")
    return user


def test_tradenote_serves_its_ui_and_parse(stack: Stack, journal_user: dict[str, Any]) -> None:
    r = httpx.get(f"{stack.tradenote_url}/", timeout=10)
    assert r.status_code == 200
    assert 'id="app"' in r.text and "<script" in r.text  # the built Vue app, not an error page
    assert httpx.get(f"{stack.tradenote_url}/parse/health", timeout=5).json()["status"] == "ok"
    for service in ("tradenote", stack.tradenote_db, "journal"):
        rc = run(["podman", "healthcheck", "run", stack.container(service)], check=False)
        assert rc.returncode == 0, f"{service} unhealthy: {rc.stderr}"
    # TradeNote's database is not published; TradeNote is, on loopback.
    db_ports = run(["podman", "port", stack.container(stack.tradenote_db)], check=False).stdout
    assert not db_ports.strip(), db_ports
    tn_ports = run(["podman", "port", stack.container("tradenote")]).stdout.split("\n")
    assert all("127.0.0.1:" in p for p in tn_ports if p.strip()), tn_ports


def day_documents(stack: Stack, session: str | None) -> list[dict[str, Any]]:
    headers = {"X-Parse-Session-Token": session} if session else {}
    with tradenote(stack) as tn:
        r = tn.get("/parse/classes/trades", params={"limit": "1000"}, headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json()["results"])


def test_alert_to_fill_to_the_day_document_in_tradenote(
    stack: Stack, journal_user: dict[str, Any]
) -> None:
    session = journal_user["sessionToken"]
    with stack.api() as api:
        assert position(api, SYMBOL) == 0
        buy = webhook(
            stack, api, ticker=SYMBOL, action="buy", quantity=5, alert_id=f"e2e-j-{RUN_ID}-1"
        )
        entry = filled(api, buy["order_id"])
        wait_for(f"{SYMBOL} +5", lambda: position(api, SYMBOL) == 5)
        sell = webhook(stack, api, ticker=SYMBOL, action="exit", alert_id=f"e2e-j-{RUN_ID}-2")
        exit_ = filled(api, sell["order_id"])
        wait_for(f"{SYMBOL} flat", lambda: position(api, SYMBOL) == 0)
    orders = {buy["order_id"], sell["order_id"]}

    def journaled() -> dict[str, Any] | None:
        for doc in day_documents(stack, session):
            ids = {e.get("orderId") for e in doc.get("executions", [])}
            if orders <= ids:
                return doc
        return None

    progress("waiting for the journal worker to write the day into TradeNote")
    doc = wait_for("the round trip in a TradeNote day document", journaled, timeout=90, every=1)

    # The day document as TradeNote's UI needs it (docs/JOURNAL.md).
    assert doc["user"] == {"__type": "Pointer", "className": "_User",
                           "objectId": journal_user["objectId"]}  # fmt: skip
    assert doc["ACL"] == {journal_user["objectId"]: {"read": True, "write": True}}
    trades = [t for t in doc["trades"] if t["symbol"] == SYMBOL]
    assert len(trades) == 1, trades
    trade = trades[0]
    assert trade["td"] == doc["dateUnix"], "a td other than dateUnix hangs TradeNote's pages"
    assert trade["strategy"] == "long" and trade["tradesCount"] == 1
    assert trade["buyQuantity"] == 5 and trade["sellQuantity"] == 5
    expected_gross = (exit_["avg_fill_price"] - entry["avg_fill_price"]) * 5
    assert trade["grossProceeds"] == pytest.approx(expected_gross, abs=1e-6)
    assert trade["netProceeds"] == pytest.approx(
        trade["grossProceeds"] - trade["commission"], abs=1e-6
    )
    # The account is in the user's accounts before the next login (else TradeNote shows $0).
    with tradenote(stack) as tn:
        me = tn.get("/parse/users/me", headers={"X-Parse-Session-Token": session}).json()
    assert trade["account"] in {a["value"] for a in me.get("accounts", [])}, me.get("accounts")

    # Owner-only: without the user's session nobody reads the day.
    assert day_documents(stack, None) == []
