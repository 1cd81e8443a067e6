"""Build TradeNote (server + Vue UI) once per source, cached on this machine.

Used by the tests (``tests/tradenote``: the journal's oracle and browser tests run this build)
and by the playbook's ``tradenote`` role, which runs this script on the production host
(``--cache-dir /opt/tradenote/releases``), so the host runs the build the tests ran.

The source comes from ``TRADENOTE_SOURCE``: a path to a source tarball (upstream's
``TradeNote-<tag>.tar.gz``), a path to an unpacked source tree, or a git URL with the tag
after ``#`` (``https://github.com/Eleven-Trading/TradeNote.git#19.0.3``). Unset, the
tarball in ``../shared/peers/tradenote`` next to the repository (or next to one of its
parent directories, or ``/work/shared``) is used when present, else a build of the tested
version already in the cache.

The build (``npm install`` + ``vite build``, ~90 s) lands in
``$TRADEROPS_TEST_CACHE/tradenote/<version>-<hash of the source>`` (default
``~/.cache/trader-ops``), so reruns on the same machine, CI included, reuse it. The one
change to upstream: ``package.json``'s ``xlsx`` points at a CDN this machine cannot reach;
it is replaced by the npm registry's ``xlsx@0.18.5`` (the functions TradeNote uses exist
there). ``python deployment/tradenote/build.py`` builds it ahead of the tests (``make setup``);
``--json`` prints the build's directory and whether this run built it.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTED_VERSION = "19.0.3"
UPSTREAM = f"https://github.com/Eleven-Trading/TradeNote.git#{TESTED_VERSION}"
PEER_TARBALL = Path("shared") / "peers" / "tradenote" / f"TradeNote-{TESTED_VERSION}.tar.gz"
XLSX_FROM_NPM = "0.18.5"
HERE = Path(__file__).resolve().parent
BUILT_NOW: list[str] = []  # keys built by this process (the playbook reports "changed")


class SourceMissing(RuntimeError):
    """No TradeNote source is configured or found (a skip locally, a failure under CI)."""


def cache_root() -> Path:
    base = os.environ.get("TRADENOTE_BUILD_CACHE") or os.environ.get("TRADEROPS_TEST_CACHE")
    if os.environ.get("TRADENOTE_BUILD_CACHE"):
        return Path(base or "")
    base = base or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "trader-ops"
    )
    return Path(base) / "tradenote"


def source_setting() -> str:
    """Where TradeNote's source comes from (the setting, else the peer tarball)."""
    value = os.environ.get("TRADENOTE_SOURCE", "").strip()
    if value:
        return value
    # ../shared/peers/tradenote next to the repository (or above it); then this workplace's
    # /work/shared, for a clone made elsewhere (a CI checkout under /tmp)
    for parent in [*REPO.parents, Path("/work")]:
        if (parent / PEER_TARBALL).is_file():
            return str(parent / PEER_TARBALL)
    raise SourceMissing(
        "TradeNote's source is not configured: set TRADENOTE_SOURCE to its tarball, an "
        f"unpacked tree, or {UPSTREAM}"
    )


def _is_git(source: str) -> bool:
    return source.startswith(("https://", "http://", "git@", "git+", "ssh://"))


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _hash_tree(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] in {"node_modules", "dist", ".git"} or not path.is_file():
            continue
        digest.update(str(rel).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _unpack(source: str, into: Path) -> tuple[Path, str]:
    """The unpacked source tree under ``into`` and a key identifying its content."""
    if _is_git(source):
        url, _, tag = source.removeprefix("git+").partition("#")
        tree = into / "src"
        cmd = ["git", "clone", "--quiet", "--depth", "1", *(["--branch", tag] if tag else [])]
        subprocess.run([*cmd, url, str(tree)], check=True, timeout=600)
        commit = subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "HEAD"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        return tree, commit
    path = Path(source).expanduser()
    if path.is_dir():
        tree = into / "src"
        shutil.copytree(path, tree, ignore=shutil.ignore_patterns("node_modules", "dist", ".git"))
        return tree, _hash_tree(tree)
    if not path.is_file():
        raise SourceMissing(f"TRADENOTE_SOURCE={source}: no such file or directory")
    with tarfile.open(path) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 (or a backport)
            tar.extractall(into / "src", filter="data")
        else:  # Debian 12's 3.11.2: a source tarball we chose, not user input
            tar.extractall(into / "src")  # noqa: S202
    tops = [p for p in (into / "src").iterdir() if p.is_dir()]
    tree = tops[0] if len(tops) == 1 else into / "src"
    return tree, _hash_file(path)


def _quick_key(source: str) -> str | None:
    """The cache key without unpacking, when the source allows it (tarball, tree)."""
    if _is_git(source):
        return None
    path = Path(source).expanduser()
    if path.is_file():
        return _hash_file(path)
    if path.is_dir():
        return _hash_tree(path)
    return None


def _run(cmd: list[str], cwd: Path, log: Path) -> None:
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, timeout=1200)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"TradeNote build step failed: {' '.join(cmd)}\n{tail}")


def _patch_offline(tree: Path) -> None:
    pkg_path = tree / "package.json"
    pkg = json.loads(pkg_path.read_text())
    deps = pkg.get("dependencies", {})
    if str(deps.get("xlsx", "")).startswith("http"):
        deps["xlsx"] = XLSX_FROM_NPM
        pkg_path.write_text(json.dumps(pkg, indent=2) + "\n")
        # the lock file pins the CDN tarball: let npm resolve xlsx from the registry
        lock = tree / "package-lock.json"
        if lock.exists():
            data = json.loads(lock.read_text())
            data.get("packages", {}).get("", {}).get("dependencies", {})["xlsx"] = XLSX_FROM_NPM
            data.get("packages", {}).pop("node_modules/xlsx", None)
            lock.write_text(json.dumps(data, indent=2) + "\n")


def _find_built(root: Path, key: str) -> Path | None:
    for candidate in root.glob(f"*-{key[:16]}"):
        if (candidate / ".built").is_file():
            return candidate
    return None


def ensure_built(source: str | None = None) -> Path:
    """The directory of a built TradeNote (``index.mjs``, ``node_modules``, ``dist``)."""
    root = cache_root()
    if source is None:
        try:
            source = source_setting()
        except SourceMissing:
            # a clone elsewhere on this machine: the build an earlier run made of this version
            cached = sorted(root.glob(f"{TESTED_VERSION}-*/.built"))
            if cached:
                return cached[0].parent
            raise
    root.mkdir(parents=True, exist_ok=True)
    key = _quick_key(source)
    if key and (built := _find_built(root, key)):
        return built
    npm = shutil.which("npm")
    if not npm:
        raise SourceMissing("npm not found (run `bash scripts/setup.sh`)")
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time on this machine
        if key and (built := _find_built(root, key)):
            return built
        work = Path(tempfile.mkdtemp(prefix="build-", dir=root))
        try:
            tree, key = _unpack(source, work)
            if built := _find_built(root, key):
                return built
            version = json.loads((tree / "package.json").read_text()).get("version", "unknown")
            log = work / "build.log"
            _patch_offline(tree)
            _run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error"], tree, log)
            _run([npm, "run", "build"], tree, log)
            shutil.copy(HERE / "loopback.cjs", tree / "loopback.cjs")
            (tree / ".built").write_text(json.dumps({"source": source, "key": key}) + "\n")
            BUILT_NOW.append(key)
            final = root / f"{version}-{key[:16]}"
            tree.rename(final)
            return final
        finally:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--source", help="tarball, tree or git URL#tag (default: TRADENOTE_SOURCE)")
    parser.add_argument("--json", action="store_true", help="print {version, build, built}")
    parser.add_argument(
        "--cache-dir",
        help="where builds are kept (default: TRADENOTE_BUILD_CACHE, else "
        "$TRADEROPS_TEST_CACHE/tradenote or ~/.cache/trader-ops/tradenote)",
    )
    parser.add_argument("--strict", action="store_true", help="no source: exit 1 (not 0)")
    args = parser.parse_args(argv)
    if args.cache_dir:
        os.environ["TRADENOTE_BUILD_CACHE"] = args.cache_dir
    try:
        build = ensure_built(args.source or None)
    except SourceMissing as exc:
        print(f"tradenote: not built: {exc}", file=sys.stderr)
        strict = args.strict or os.environ.get("CI", "").lower() in {"1", "true", "yes"}
        return 1 if strict else 0
    if args.json:
        version = json.loads((build / "package.json").read_text()).get("version", "unknown")
        print(json.dumps({"version": version, "build": str(build),
                          "built": bool(BUILT_NOW)}))  # fmt: skip
    else:
        print(build)
    return 0


if __name__ == "__main__":
    sys.exit(main())
