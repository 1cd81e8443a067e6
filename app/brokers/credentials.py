"""Reading a broker's secrets from where the accounts file says they are: a file (0600,
e.g. a systemd credential), or an environment variable name (the variable, else the
systemd credential of that name). Never inline in the file."""

from __future__ import annotations

import os
from pathlib import Path


class CredentialsError(ValueError):
    """A secret that cannot be read (one line, names the file or variable)."""


def read_secret_file(path: Path) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CredentialsError(f"{path}: cannot read: {exc.strerror}") from None
    if not value:
        raise CredentialsError(f"{path}: empty")
    return value


def read_secret_env(name: str) -> str:
    """The variable, else the systemd credential of that name (``$CREDENTIALS_DIRECTORY``)."""
    value = os.environ.get(name)
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if not value and creds and (Path(creds) / name).is_file():
        value = read_secret_file(Path(creds) / name)
    if not value:
        raise CredentialsError(f"{name} is not set (environment or systemd credential)")
    return value


def relative(path: Path | None, base: Path) -> Path | None:
    """``path`` taken relative to ``base`` (the accounts file's directory) unless absolute."""
    return path if path is None or path.is_absolute() else base / path
