"""`make bench`: every benchmark in turn, each printing p50/p99/throughput beside its baseline.

.venv/bin/python -m tests.bench [--quick]
"""

from __future__ import annotations

import subprocess
import sys
import time

BENCHES = [
    ("risk engine", ["tests.bench.bench_risk"]),
    ("datahub: UDF, quotes, WebSocket, webhook", ["tests.bench.bench_datahub"]),
    ("kairos cycle over 50 symbols", ["tests.bench.bench_kairos"]),
    ("journal to a local Parse Server", ["tests.bench.bench_journal"]),
]


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    failed = []
    for title, module in BENCHES:
        print(f"\n=== {title} ===", flush=True)
        start = time.perf_counter()
        argv = [sys.executable, "-m", *module]
        if quick and module[0].endswith("bench_datahub"):
            argv.append("--quick")
        if subprocess.run(argv, check=False).returncode != 0:
            failed.append(title)
        print(f"({time.perf_counter() - start:.0f} s)", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
