"""Container healthcheck: GET /health (or the path in argv[1], e.g. /ready) of the
trader-ops service running as PID 1.

The port comes from TRADEROPS_HEALTHCHECK_PORT, else from the service in PID 1's command
line (datahub: TRADEROPS_HTTP_PORT or 8000; kairos: TRADEROPS_KAIROS_PORT or 8001;
journal: TRADEROPS_JOURNAL_PORT or 8002). Exit 0 when it answers 200 within 4 s.
Standard library only: the image has no curl or wget.
"""

import os
import sys
import urllib.request

DEFAULTS = {
    "datahub": ("TRADEROPS_HTTP_PORT", 8000),
    "kairos": ("TRADEROPS_KAIROS_PORT", 8001),
    "journal": ("TRADEROPS_JOURNAL_PORT", 8002),
}


def port() -> int:
    if os.environ.get("TRADEROPS_HEALTHCHECK_PORT"):
        return int(os.environ["TRADEROPS_HEALTHCHECK_PORT"])
    try:
        with open("/proc/1/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        argv = []
    for arg in argv[1:]:
        if arg in DEFAULTS:
            env, default = DEFAULTS[arg]
            return int(os.environ.get(env) or default)
    return int(os.environ.get("TRADEROPS_HTTP_PORT") or 8000)


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else "/health"
    url = f"http://127.0.0.1:{port()}{path}"
    try:
        with urllib.request.urlopen(url, timeout=4) as resp:  # noqa: S310 (fixed loopback URL)
            return 0 if resp.status == 200 else 1
    except Exception as exc:  # any failure is "unhealthy"
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
