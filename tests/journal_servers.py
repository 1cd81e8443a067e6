"""TradeNote's backend for the journal tests: a real PostgreSQL (+PostGIS) and a real
parse-server 7 (tests/parse/server.js: express + Parse at /parse, like TradeNote),
started on free loopback ports. Under CI=true a missing binary fails, never skips.

Set-up: ``bash scripts/setup.sh`` (installs postgresql-15-postgis-3 and the npm
packages in tests/parse/).
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import subprocess
import tempfile
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
from tests.servers import IN_CI, free_port, wait_for_port

PARSE_DIR = Path(__file__).resolve().parent / "parse"


def _missing(message: str) -> None:
    message += " (run `bash scripts/setup.sh`)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def postgres_bin(name: str) -> str:
    """A PostgreSQL server binary: Debian keeps them under /usr/lib/postgresql/N/bin."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if found:
        return found[0]
    path = shutil.which(name)
    if path:
        return path
    _missing(f"PostgreSQL's {name} not found")
    raise AssertionError("unreachable")


def _postgis_available(pg_ctl: str) -> bool:
    share = subprocess.run(
        [str(Path(pg_ctl).parent / "pg_config"), "--sharedir"], capture_output=True, text=True
    )
    candidates = [Path(share.stdout.strip())] if share.returncode == 0 else []
    version = Path(pg_ctl).parent.parent.name
    candidates.append(Path(f"/usr/share/postgresql/{version}"))
    return any((c / "extension" / "postgis.control").exists() for c in candidates)


class PostgresServer:
    """A throwaway PostgreSQL cluster (trust auth on 127.0.0.1 only) with PostGIS."""

    def __init__(self, *, durable: bool = False) -> None:
        self.initdb = postgres_bin("initdb")
        self.pg_ctl = postgres_bin("pg_ctl")
        self.psql = shutil.which("psql") or postgres_bin("psql")
        if not _postgis_available(self.pg_ctl):
            _missing("PostGIS is not installed for this PostgreSQL")
        self.port = free_port()
        self.durable = durable
        self.as_root = os.geteuid() == 0
        # /tmp, not pytest's tmp_path: the postgres user must be able to reach it
        self.directory = Path(tempfile.mkdtemp(prefix="traderops-pg-"))
        self.data = self.directory / "data"
        self.database = "tradenote"

    @property
    def uri(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        cmd = ["runuser", "-u", "postgres", "--", *args] if self.as_root else args
        return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)

    def start(self) -> None:
        if self.as_root:
            shutil.chown(self.directory, "postgres", "postgres")
        out = self._run(
            [self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
             "--no-instructions"]
        )  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(f"initdb failed: {out.stderr.strip()}")
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.directory} -c max_connections=100"
        )
        if not self.durable:  # a test cluster: speed over crash safety
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        out = self._run(
            [self.pg_ctl, "-D", str(self.data), "-l", str(self.directory / "postgres.log"),
             "-o", options, "-w", "-t", "30", "start"]
        )  # fmt: skip
        if out.returncode != 0:
            log = (self.directory / "postgres.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"PostgreSQL did not start: {out.stderr.strip()}\n{log}")
        self.sql("postgres", f"CREATE DATABASE {self.database}")
        self.sql(self.database, "CREATE EXTENSION IF NOT EXISTS postgis")

    def sql(self, database: str, statement: str) -> str:
        out = subprocess.run(
            [self.psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
             "-v", "ON_ERROR_STOP=1", "-qAt", "-c", statement],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(f"psql {statement!r}: {out.stderr.strip()}")
        return out.stdout

    def stop(self) -> None:
        if self.data.exists():
            self._run([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(self.directory, ignore_errors=True)


class ParseServer:
    """parse-server 7 on express at http://127.0.0.1:PORT/parse, like TradeNote mounts it."""

    def __init__(self, database_uri: str, log_dir: Path) -> None:
        self.node = shutil.which("node") or ""
        if not self.node:
            _missing("node not found")
        if not (PARSE_DIR / "node_modules" / "parse-server").is_dir():
            _missing(f"parse-server is not installed in {PARSE_DIR}")
        self.database_uri = database_uri
        self.port = free_port()
        self.app_id = "tradenote-test"
        self.master_key = secrets.token_hex(16)
        self.log_path = log_dir / "parse-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """What TRADEROPS_TRADENOTE_URL would be (TradeNote's base URL)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def parse_url(self) -> str:
        return f"{self.base_url}/parse"

    def start(self, timeout: float = 60.0) -> None:
        env = {
            **os.environ,
            "PARSE_PORT": str(self.port),
            "DATABASE_URI": self.database_uri,
            "APP_ID": self.app_id,
            "MASTER_KEY": self.master_key,
            "NODE_ENV": "production",
        }
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [self.node, str(PARSE_DIR / "server.js")],
            cwd=PARSE_DIR,
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
                        return
            except (OSError, ValueError):
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"parse-server did not become healthy:\n{self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_process(self.proc)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    # -- REST helpers for tests -----------------------------------------------------------
    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        session: str | None = None,
        master: bool = True,
        params: dict[str, str] | None = None,
    ) -> Any:
        url = f"{self.parse_url}/{path.lstrip('/')}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        headers = {"X-Parse-Application-Id": self.app_id, "Content-Type": "application/json"}
        if master:
            headers["X-Parse-Master-Key"] = self.master_key
        if session:
            headers["X-Parse-Session-Token"] = session
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: HTTP {exc.code} {exc.read()[:300]!r}") from None

    def create_tradenote_schema(self) -> None:
        """The classes and fields TradeNote's /updateSchemas creates that the journal uses."""
        schema = json.loads((PARSE_DIR / "schema.json").read_text())
        for cls in schema:
            name = cls["className"]
            existing = self.call("GET", "schemas")["results"]
            fields = {k: v for k, v in cls["fields"].items()}
            if any(s["className"] == name for s in existing):
                have = next(s for s in existing if s["className"] == name)["fields"]
                add = {k: v for k, v in fields.items() if k not in have}
                if add:
                    self.call("PUT", f"schemas/{name}", {"className": name, "fields": add})
            else:
                self.call(
                    "POST",
                    f"schemas/{name}",
                    {
                        "className": name,
                        "fields": fields,
                        "classLevelPermissions": cls.get("classLevelPermissions"),
                    },
                )

    def signup(self, username: str, password: str) -> dict[str, Any]:
        """A TradeNote user (as its sign-up page makes one); returns objectId and sessionToken."""
        return dict(
            self.call(
                "POST",
                "users",
                {"username": username, "password": password, "timeZone": "America/New_York"},
                master=False,
                session=None,
            )
        )

    def login(self, username: str, password: str) -> str:
        body = self.call(
            "POST", "login", {"username": username, "password": password}, master=False
        )
        return str(body["sessionToken"])

    def ui_trades(self, session: str, start: int, end: int) -> list[dict[str, Any]]:
        """What TradeNote's UI loads: the user's ``trades`` by dateUnix range, as the user."""
        where = {"dateUnix": {"$gte": start, "$lte": end}}
        body = self.call(
            "GET",
            "classes/trades",
            session=session,
            master=False,
            params={"where": json.dumps(where), "order": "dateUnix", "limit": "1000"},
        )
        return list(body["results"])


@contextmanager
def tradenote_backend(log_dir: Path) -> Iterator[tuple[PostgresServer, ParseServer]]:
    pg = PostgresServer()
    pg.start()
    parse: ParseServer | None = None
    try:
        parse = ParseServer(pg.uri, log_dir)
        parse.start()
        parse.create_tradenote_schema()
        yield pg, parse
    finally:
        if parse is not None:
            parse.stop()
        pg.stop()


_BACKEND: dict[str, Any] = {}


@pytest.fixture(scope="session")
def tradenote_srv(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> ParseServer:
    """One PostgreSQL + parse-server for the whole test session (shared by every module
    that imports this fixture); torn down at the end of the session."""
    if "parse" not in _BACKEND:
        manager = tradenote_backend(Path(tmp_path_factory.mktemp("tradenote")))
        _BACKEND["pg"], _BACKEND["parse"] = manager.__enter__()

        def _close() -> None:
            _BACKEND.clear()
            manager.__exit__(None, None, None)

        request.addfinalizer(_close)
    parse: ParseServer = _BACKEND["parse"]
    if parse.proc is None or parse.proc.poll() is not None:
        parse.start()
    return parse


@pytest.fixture
def tradenote_user(tradenote_srv: ParseServer) -> dict[str, Any]:
    """A fresh TradeNote user per test (isolates the tests' documents)."""
    username = f"trader-{secrets.token_hex(4)}"
    password = secrets.token_hex(8)
    user = tradenote_srv.signup(username, password)
    return {"username": username, "password": password, "objectId": user["objectId"]}
