"""The real TradeNote (its ``index.mjs``: Express + Parse Server + the built Vue UI) on a
real PostgreSQL, on free loopback ports, for the journal tests.

TradeNote is built once per source (``deployment/tradenote/build.py``, cached). Users are made
the way TradeNote's sign-up page makes them (``POST /api/updateSchemas``, then a Parse
sign-up with username, password, email and time zone), so TradeNote creates its own schema.
Under CI=true a TradeNote that cannot be built or started is a failure, never a skip.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from app.embedded import stop_process
from tests.journal_servers import PostgresServer
from tests.servers import IN_CI, free_port, wait_for_port
from tests.tradenote.build import SourceMissing, ensure_built

TIME_ZONE = "America/New_York"


def _missing(message: str) -> None:
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


class TradeNoteServer:
    """``node index.mjs`` from a built TradeNote, bound to 127.0.0.1 (``loopback.cjs``)."""

    def __init__(self, build: Path, database_uri: str, database: str, log_dir: Path) -> None:
        self.node = shutil.which("node") or ""
        if not self.node:
            _missing("node not found (run `bash scripts/setup.sh`)")
        self.build = build
        self.database_uri = database_uri
        self.database = database
        self.port = free_port()
        self.app_id = f"tradenote-{secrets.token_hex(4)}"
        self.master_key = secrets.token_hex(16)
        self.log_path = log_dir / "tradenote.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """What TRADEROPS_TRADENOTE_URL is for this TradeNote."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def parse_url(self) -> str:
        return f"{self.base_url}/parse"

    def start(self, timeout: float = 90.0) -> None:
        env = {
            **os.environ,
            "MONGO_URI": self.database_uri,  # TradeNote hands it to Parse Server as is
            "TRADENOTE_DATABASE": self.database,
            "APP_ID": self.app_id,
            "MASTER_KEY": self.master_key,
            "TRADENOTE_PORT": str(self.port),
            "ANALYTICS_OFF": "1",
            "NODE_ENV": "production",
            # parse-server 7.2 on Node >= 20.19 (parse-server#9517)
            "NODE_OPTIONS": "--no-experimental-require-module",
            # its Docker Hub version check fails at once instead of leaving loopback
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "HTTP_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": "127.0.0.1,localhost",
        }
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [self.node, "--require", str(self.build / "loopback.cjs"), "index.mjs"],
            cwd=self.build,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for_port(self.port, timeout=timeout, proc=self.proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.parse_url}/health", timeout=2) as resp:
                    if json.load(resp).get("status") == "ok":
                        # the UI is served once runServer() has run, after Parse is up
                        with urllib.request.urlopen(f"{self.base_url}/", timeout=2) as page:
                            if b'id="app"' in page.read():
                                return
            except (OSError, ValueError):
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"TradeNote did not become ready:\n{self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    # -- HTTP -----------------------------------------------------------------------
    def http(
        self,
        method: str,
        url: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        req = urllib.request.Request(url, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {url}: HTTP {exc.code} {exc.read()[:300]!r}") from None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode(errors="replace")

    def parse(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        session: str | None = None,
        master: bool = False,
        params: dict[str, str] | None = None,
    ) -> Any:
        url = f"{self.parse_url}/{path.lstrip('/')}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        headers = {"X-Parse-Application-Id": self.app_id}
        if master:
            headers["X-Parse-Master-Key"] = self.master_key
        if session:
            headers["X-Parse-Session-Token"] = session
        return self.http(method, url, body, headers)

    # -- what TradeNote's pages do ----------------------------------------------------
    def update_schemas(self) -> Any:
        """What the sign-up page calls first: TradeNote creates or updates its classes."""
        return self.http("POST", f"{self.base_url}/api/updateSchemas", {})

    def register(self, username: str, password: str, time_zone: str = TIME_ZONE) -> dict[str, Any]:
        """TradeNote's sign-up (LoginRegister.vue): updateSchemas, then ``Parse.User.signUp``
        with username, password, email = username and the chosen time zone."""
        self.update_schemas()
        body = {"username": username, "password": password, "email": username,
                "timeZone": time_zone}  # fmt: skip
        user = dict(self.parse("POST", "users", body))
        user.update(username=username, password=password)
        return user

    def login(self, username: str, password: str) -> dict[str, Any]:
        return dict(self.parse("POST", "login", {"username": username, "password": password}))

    def generate_api_key(self, user: dict[str, Any]) -> str:
        """Settings > APIs > generate, then save: the user's ``apis`` gets a TradeNote key."""
        key = secrets.token_hex(15)
        apis = [{"provider": "tradeNote", "label": "TradeNote", "key": key}]
        self.parse("PUT", f"users/{user['objectId']}", {"apis": apis},
                   session=user["sessionToken"])  # fmt: skip
        return key

    def import_csv(self, api_key: str, csv_text: str, broker: str = "template") -> str:
        """TradeNote's own importer: ``POST /api/trades`` with the file's text."""
        body = {"data": csv_text, "selectedBroker": broker, "uploadMfePrices": False}
        return str(self.http("POST", f"{self.base_url}/api/trades", body, {"api-key": api_key}))

    def day_documents(self, user: dict[str, Any]) -> list[dict[str, Any]]:
        """The user's ``trades`` documents as the UI loads them (the user's session)."""
        body = self.parse(
            "GET",
            "classes/trades",
            session=user["sessionToken"],
            params={"order": "dateUnix", "limit": "1000"},
        )
        return list(body["results"])

    def user_record(self, object_id: str) -> dict[str, Any]:
        return dict(self.parse("GET", f"users/{object_id}", master=True))


@contextmanager
def tradenote_server(log_dir: Path) -> Iterator[TradeNoteServer]:
    """A fresh PostgreSQL + TradeNote; both stopped afterwards."""
    try:
        build = ensure_built()
    except SourceMissing as exc:
        _missing(str(exc))
        raise AssertionError("unreachable") from exc
    pg = PostgresServer()
    pg.start()
    server: TradeNoteServer | None = None
    try:
        server = TradeNoteServer(build, pg.uri, pg.database, log_dir)
        server.start()
        yield server
    finally:
        if server is not None:
            server.stop()
        pg.stop()


_RUNNING: dict[str, Any] = {}


@pytest.fixture(scope="session")
def tradenote(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> TradeNoteServer:
    """One real TradeNote on PostgreSQL for the test session."""
    if "server" not in _RUNNING:
        manager = tradenote_server(Path(tmp_path_factory.mktemp("tradenote-real")))
        _RUNNING["server"] = manager.__enter__()

        def _close() -> None:
            _RUNNING.clear()
            manager.__exit__(None, None, None)

        request.addfinalizer(_close)
    server: TradeNoteServer = _RUNNING["server"]
    return server


@pytest.fixture
def tradenote_account(tradenote: TradeNoteServer) -> dict[str, Any]:
    """A fresh TradeNote user (registered through TradeNote's sign-up path) per test."""
    return tradenote.register(f"trader-{secrets.token_hex(4)}@example.test", secrets.token_hex(8))
