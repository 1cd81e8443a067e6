"""`make bench`: every benchmark in turn, each printing p50/p99/throughput beside its baseline.

.venv/bin/python -m tests.bench [--quick]
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCHES = [
    ("risk engine", ["tests.bench.bench_risk"]),
    ("option alerts: iron condor vs stock alert", ["tests.bench.bench_options"]),
    ("datahub: UDF, quotes, WebSocket, webhook", ["tests.bench.bench_datahub"]),
    ("webhook with the embedded notifier's channel down vs up", ["tests.bench.bench_notify"]),
    ("kairos cycle over 50 symbols", ["tests.bench.bench_kairos"]),
    ("journal to a local Parse Server", ["tests.bench.bench_journal"]),
    ("backtest: 1-minute bars/s, full live path vs backtrader", ["tests.bench.bench_backtest"]),
]


def print_summary(path: Path) -> None:
    """All benchmarks in one table, each row beside its same-run baseline."""
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    head = f"{'scenario':<48} {'p50 ms':>9} {'p99 ms':>9} {'throughput':>16} | {'base p50':>9} {'base p99':>9} {'base thr':>10} | {'p99 x':>6}"
    print("\n=== all benchmarks (" + platform.node() + ", " + str(os.cpu_count()) + " cores) ===")
    print(head)
    print("-" * len(head))
    for r in rows:
        thr = f"{r['throughput']:,.0f} {r['unit']}"
        b = r["base"]
        base = f"{b[0]:>9.3f} {b[1]:>9.3f} {b[2]:>10,.0f}" if b else f"{'':>9} {'':>9} {'':>10}"
        ratio = f"{r['p99_ms'] / b[1]:>6.1f}" if b and b[1] else f"{'':>6}"
        print(
            f"{r['scenario'][:48]:<48} {r['p50_ms']:>9.3f} {r['p99_ms']:>9.3f} {thr:>16} | {base} | {ratio}"
        )


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    failed = []
    results = Path(tempfile.mkdtemp()) / "bench.jsonl"
    os.environ["BENCH_RESULTS"] = str(results)
    for title, module in BENCHES:
        print(f"\n=== {title} ===", flush=True)
        start = time.perf_counter()
        argv = [sys.executable, "-m", *module]
        if quick and module[0].endswith(("bench_datahub", "bench_notify", "bench_backtest")):
            argv.append("--quick")
        if subprocess.run(argv, check=False).returncode != 0:
            failed.append(title)
        print(f"({time.perf_counter() - start:.0f} s)", flush=True)
    print_summary(results)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
