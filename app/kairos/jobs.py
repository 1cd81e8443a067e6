"""Job files: the YAML schema traders write, and loading that keeps one bad file from
stopping the others.

Every problem is reported as ``FILE: FIELD: PROBLEM`` so a trader can fix it without
reading a traceback; ``trader-ops kairos validate`` prints exactly these lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app.models.market import is_valid_symbol, normalize_symbol
from app.sessions import calendar_names

if TYPE_CHECKING:
    from app.kairos.strategies.base import Strategy

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


class SessionPolicy(StrEnum):
    """When, relative to the exchange session, a cron fire time may run."""

    REGULAR = "regular"  # only while the regular session is open (open <= t < close)
    AFTER_CLOSE = "after_close"  # trading days only, at or after close + offset
    ALWAYS = "always"  # every cron fire time, open or not


class SessionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: SessionPolicy = SessionPolicy.REGULAR
    offset_minutes: int = Field(0, ge=0, le=420, description="after_close: minutes after the close")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        """``session: regular`` is shorthand for ``session: {policy: regular}``."""
        return {"policy": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _offset_only_after_close(self) -> SessionSpec:
        if self.offset_minutes and self.policy is not SessionPolicy.AFTER_CLOSE:
            raise ValueError("offset_minutes only applies to policy after_close")
        return self


def _fraction(value: Any) -> Any:
    """Accept ``0.05`` or ``"5%"``; a bare 5 is refused below rather than read as 500%."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return float(value.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"not a percentage: {value!r}") from None
    return value


class RiskSpec(BaseModel):
    """Per-job sizing and exits. Fractions: 0.05 or "5%" both mean five percent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    position_size: float | None = Field(None, gt=0, le=1, description="fraction of equity")
    stop_loss: float | None = Field(None, gt=0, lt=1, description="fraction below entry")
    take_profit: float | None = Field(None, gt=0, le=10, description="fraction above entry")
    max_positions: int | None = Field(None, ge=1)

    @field_validator("position_size", "stop_loss", "take_profit", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> Any:
        return _fraction(value)


class JobSpec(BaseModel):
    """One strategy job, as written in ``deployment/kairos/jobs/*.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    schedule: str = Field(description="5-field cron, in the exchange's time zone")
    calendar: str = "XNYS"
    session: SessionSpec = SessionSpec()
    strategy: str = Field(description="momentum | mean_reversion | rebalance | module:callable")
    symbols: list[str] = Field(min_length=1)
    parameters: dict[str, Any] = Field(default_factory=dict)
    risk: RiskSpec = RiskSpec()
    webhook: str | None = Field(None, description="datahub base URL; default: the runner's")
    enabled: bool = True
    jitter_seconds: float = Field(10.0, ge=0, le=30, description="upper bound of the per-job delay")
    misfire_grace_seconds: float = Field(120.0, ge=0, le=86_400)
    timeout_seconds: float = Field(60.0, gt=0, le=3600)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError("use lower-case letters, digits, '_' or '-' (at most 64)")
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        value = " ".join(value.split())
        if len(value.split()) != 5:
            raise ValueError(f"{value!r} is not a 5-field cron expression (m h dom mon dow)")
        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a valid cron expression")
        return value

    @field_validator("calendar")
    @classmethod
    def _calendar(cls, value: str) -> str:
        if value not in calendar_names():
            raise ValueError(f"unknown exchange calendar {value!r} (e.g. XNYS, XNAS, XLON)")
        return value

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: list[str]) -> list[str]:
        out: list[str] = []
        for raw in value:
            symbol = normalize_symbol(str(raw))
            if not is_valid_symbol(symbol):
                raise ValueError(f"invalid symbol {raw!r}")
            if symbol in out:
                raise ValueError(f"duplicate symbol {symbol}")
            out.append(symbol)
        return out

    @field_validator("webhook")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s):// base URL, e.g. http://datahub:8000")
        return value.rstrip("/") if value else value


class JobFileError(Exception):
    """A job file that cannot be used; ``problems`` are (field, message) pairs."""

    def __init__(self, path: Path, problems: list[tuple[str, str]]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("; ".join(self.lines()))

    def lines(self) -> list[str]:
        return [
            f"{self.path}: {fld}: {msg}" if fld else f"{self.path}: {msg}"
            for fld, msg in self.problems
        ]


@dataclass(frozen=True)
class LoadedJob:
    """A validated job and the strategy object built from it."""

    spec: JobSpec
    strategy: Strategy
    path: Path

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class JobSet:
    jobs: list[LoadedJob] = field(default_factory=list)
    errors: list[JobFileError] = field(default_factory=list)

    def get(self, name: str) -> LoadedJob | None:
        return next((j for j in self.jobs if j.name == name), None)


def pydantic_problems(exc: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted field, message) for each error, without pydantic's boilerplate."""
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        problems.append((f"{prefix}{loc}" if loc else prefix.rstrip("."), msg))
    return problems


def parse_job(data: Any, path: Path) -> LoadedJob:
    """Validate one job document and build its strategy; raises JobFileError."""
    from app.kairos.strategies import build_strategy

    if not isinstance(data, dict):
        raise JobFileError(path, [("", "expected a mapping of job fields at the top level")])
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as exc:
        raise JobFileError(path, pydantic_problems(exc)) from None
    try:
        strategy = build_strategy(spec)
    except ValidationError as exc:
        raise JobFileError(path, pydantic_problems(exc, "parameters.")) from None
    except ValueError as exc:
        raise JobFileError(path, [("strategy", str(exc))]) from None
    return LoadedJob(spec, strategy, path)


def load_job_file(path: Path) -> LoadedJob:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise JobFileError(path, [("", f"cannot read: {exc.strerror}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise JobFileError(path, [("", f"invalid YAML: {where}{problem}")]) from None
    return parse_job(data, path)


def job_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in {".yaml", ".yml"} and p.is_file())


def load_jobs(paths: Path | list[Path]) -> JobSet:
    """Load a directory (or a list of files); bad files become errors, never exceptions."""
    if isinstance(paths, Path):
        if not paths.is_dir():
            err = JobFileError(paths, [("", "job directory does not exist")])
            return JobSet(errors=[err])
        paths = job_files(paths)
    result = JobSet()
    seen: dict[str, Path] = {}
    for path in paths:
        try:
            job = load_job_file(path)
        except JobFileError as exc:
            result.errors.append(exc)
            continue
        if job.name in seen:
            result.errors.append(
                JobFileError(
                    path, [("name", f"job {job.name!r} is already defined in {seen[job.name]}")]
                )
            )
            continue
        seen[job.name] = path
        result.jobs.append(job)
    return result
