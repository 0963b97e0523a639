"""Benchmark: the reference server against the asyncio and thread-per-client designs.

    python tests/bench_load.py                      # 100 and 1000 clients, 3 rounds
    python tests/bench_load.py --clients 100 --rounds 5 --in-flight 4

Not a test (pytest does not collect it): it runs `python -m grader load` on
each design in turn, alternating them round after round so that a machine that
gets busier or quieter affects them all alike, and prints the medians as the
table in docs/teachers.md § Load, with the reference's throughput over each other design's
(the median of the ratios round by round) and how often its p99 was the lower.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

KIT = Path(__file__).resolve().parent.parent
DESIGNS = {
    "reference (solutions/)": KIT / "solutions",
    "asyncio (tests/impls/asyncio)": KIT / "tests" / "impls" / "asyncio",
    "threaded (tests/impls/threaded)": KIT / "tests" / "impls" / "threaded",
}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def one_run(impl: Path, args, clients: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "load.json"
        command = [sys.executable, "-m", "grader", "load", "--impl", str(impl),
                   "--stage", str(args.stage), "--clients", str(clients),
                   "--seconds", str(args.seconds), "--in-flight", str(args.in_flight),
                   "--json", str(out)]
        proc = subprocess.run(command, cwd=KIT, capture_output=True, text=True,
                              timeout=args.seconds + 120)
        if not out.exists():
            sys.exit("no result from %s:\n%s%s" % (" ".join(command), proc.stdout, proc.stderr))
        result = json.loads(out.read_text())
        result["limit"] = next((line for line in proc.stdout.splitlines()
                                if line.startswith("Limit:")), "")
        cost = re.search(r"\((\d+) µs of its CPU per delivery\)", proc.stdout)
        result["cpu_us"] = int(cost.group(1)) if cost else None
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, action="append",
                        help="client counts (repeat; default 100 and 1000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--in-flight", type=int, default=1)
    parser.add_argument("--stage", type=int, default=3)
    parser.add_argument("--design", action="append", choices=[n.split()[0] for n in DESIGNS],
                        help="only these designs (repeat; default all three)")
    args = parser.parse_args()
    counts = args.clients or [100, 1000]
    designs = {name: impl for name, impl in DESIGNS.items()
               if not args.design or name.split()[0] in args.design}
    runs = {(name, c): [] for name in designs for c in counts}
    for round_number in range(args.rounds):
        for clients in counts:
            for name, impl in designs.items():
                result = one_run(impl, args, clients)
                runs[name, clients].append(result)
                print("round %d  %-32s %5d clients: %6d held, %9.0f msg/s, p99 %7.2f ms, "
                      "%s µs CPU/delivery, lost %d, wrong %d  %s" % (
                          round_number + 1, name, clients, result["clients_connected"],
                          result["throughput"], result["latency_ms"]["p99"] or -1,
                          result["cpu_us"],
                          result["lost"], result["wrong"],
                          "[tool-bound]" if "THIS TOOL" in result["limit"] else ""),
                      file=sys.stderr, flush=True)
    print("\n%s, %d cores, Python %s; stage %d, %g s per run, %d message%s in flight per "
          "client; median of %d rounds\n" % (
              cpu_model(), os.cpu_count(), platform.python_version(), args.stage, args.seconds,
              args.in_flight, "" if args.in_flight == 1 else "s", args.rounds))
    print("| design | clients | held | throughput (msg/s) | p50 (ms) | p99 (ms) | "
          "server CPU per delivery (µs) | reference's throughput / this | "
          "rounds where the reference's p99 was lower |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    first = next(iter(designs))
    for clients in counts:
        for name in designs:
            results = runs[name, clients]
            ours = runs[first, clients]
            costs = [r["cpu_us"] for r in results if r["cpu_us"] is not None]
            # Compared round by round (the two ran a few seconds apart), then the median:
            # a machine that gets busier or quieter between rounds cancels out.
            ratios = [a["throughput"] / b["throughput"] for a, b in zip(ours, results)
                      if b["throughput"]]
            lower = sum(a["latency_ms"]["p99"] <= b["latency_ms"]["p99"]
                        for a, b in zip(ours, results)
                        if a["latency_ms"]["p99"] is not None and b["latency_ms"]["p99"])
            print("| %s | %d | %d | %s | %.2f | %.2f | %s | %s | %s |" % (
                name, clients, min(r["clients_connected"] for r in results),
                "{:,.0f}".format(statistics.median(r["throughput"] for r in results)),
                statistics.median(r["latency_ms"]["p50"] or 0 for r in results),
                statistics.median(r["latency_ms"]["p99"] or 0 for r in results),
                "%.0f" % statistics.median(costs) if costs else "–",
                "%.2f×" % statistics.median(ratios) if ratios else "–",
                "–" if name == first else "%d of %d" % (lower, len(results))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
