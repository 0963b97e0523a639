"""Benchmark: how long a grading takes, and where its time goes.

    python tests/bench_grader.py                    # solutions and skeletons, median of 5
    python tests/bench_grader.py --runs 3 --impl solutions --only full --only 1

Not a test (pytest does not collect it): it runs the real grader, `pytest
grader --impl DIR [--stage N]`, on the reference solutions and on the
untouched skeletons, a full grading and each stage alone, plus `pytest grader
--collect-only` (the grader's fixed cost: Python, pytest, the plugin, the
checks' modules), the configurations taking turns round after round so that a
machine that gets busier or quieter affects them all alike; then it prints
the medians (a quiet machine's are in docs/developing.md § Grading time).

What it measures, for each grading (each is its own process, started as
tests/gradekit.py starts one, cwd the kit, results.json written):

* wall: from starting the grader's process to its end;
* the grader's CPU: user + system time of the grader's own process
  (getrusage(RUSAGE_SELF) at its end: pytest, the checks, the scripted
  clients, the watchdog and output threads);
* the programs' CPU: user + system time of every process the grader started
  and waited for (getrusage(RUSAGE_CHILDREN) at its end): the students'
  servers and clients, and the grader's few helpers (as root: the probe for a
  Python the grading's own user can run; check 1.12's `ps` off Linux);
* programs started: how many student programs (grader.programs.Program) the
  grading started, spares included, and how many other processes (helpers).

CPU seconds are disturbed less than wall time by others on a shared machine;
wall time is the figure a student feels. The counts come from a driver that
runs pytest in the grader's process after wrapping Program's and Popen's
constructors with a counter (nothing in grader/ changes for it; the grader's
behaviour is the same, the wrapper only counts).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KIT = Path(__file__).resolve().parent.parent
IMPLS = {"solutions": KIT / "solutions", "skeletons": KIT / "stages"}
GRADINGS = ["full", "1", "2", "3", "4"]

# Runs in the grader's own process: count what it starts, run pytest, report the
# process's own CPU and its children's. sys.argv[1] is where the figures go.
DRIVER = r"""
import json, os, resource, subprocess, sys, time
sys.path.insert(0, os.getcwd())
import grader.programs as programs
counts = {"programs": 0, "processes": 0}
program_init, popen_init = programs.Program.__init__, subprocess.Popen.__init__
def counted_program(self, *args, **kwargs):
    counts["programs"] += 1
    program_init(self, *args, **kwargs)
def counted_popen(self, *args, **kwargs):
    counts["processes"] += 1
    popen_init(self, *args, **kwargs)
programs.Program.__init__, subprocess.Popen.__init__ = counted_program, counted_popen
import pytest
out = sys.argv.pop(1)
status = pytest.main(sys.argv[1:])
me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
with open(out, "w") as f:
    json.dump({"status": int(status), "grader_cpu": me.ru_utime + me.ru_stime,
               "programs_cpu": children.ru_utime + children.ru_stime,
               "programs": counts["programs"],
               "helpers": counts["processes"] - counts["programs"]}, f)
"""


def environment(only_requirements: bool) -> dict:
    """The grader's environment, as tests/gradekit.py gives it (compiled modules may be
    cached); with only_requirements, pytest loads no plugin installed beside it but
    pytest-timeout, as on a machine that installed requirements.txt alone."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if only_requirements:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return env


def one_run(impl: str, grading: str, only_requirements: bool) -> dict:
    """One grading (or, for grading 'collect', `pytest grader --collect-only`)."""
    with tempfile.TemporaryDirectory(prefix="chatkit-bench-") as tmp:
        figures, results = Path(tmp) / "figures.json", Path(tmp) / "results.json"
        args = ["grader", "--impl", str(IMPLS[impl]), "-q", "-p", "no:cacheprovider"]
        if only_requirements:
            args += ["-p", "pytest_timeout"]
        if grading == "collect":
            args.append("--collect-only")
        else:
            args += ["--results", str(results)]
            if grading != "full":
                args += ["--stage", grading]
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-c", DRIVER, str(figures), *args], cwd=KIT,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              env=environment(only_requirements), timeout=600)
        wall = time.monotonic() - started
        if not figures.exists():
            sys.exit("no figures from %s %s:\n%s%s" % (impl, grading, proc.stdout[-3000:],
                                                        proc.stderr[-3000:]))
        found = json.loads(figures.read_text())
        found["wall"] = wall
        if results.exists():
            data = json.loads(results.read_text(encoding="utf-8"))
            found["score"] = "%d/%d" % (data["score"], data["max_score"])
            found["checks"] = len(data["tests"])
            found["failed"] = sorted(t["number"] for t in data["tests"]
                                     if t["status"] == "failed")
        return found


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load() -> str:
    try:
        return "%.1f" % os.getloadavg()[0]
    except (AttributeError, OSError):
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds (default 5): the median")
    parser.add_argument("--impl", action="append", choices=list(IMPLS),
                        help="only these (repeat; default both)")
    parser.add_argument("--only", action="append", choices=GRADINGS + ["collect"],
                        help="only these gradings (repeat; default all, and collect)")
    parser.add_argument("--only-requirements", action="store_true",
                        help="load no pytest plugin but pytest-timeout (as a machine with "
                             "requirements.txt alone installed)")
    args = parser.parse_args()
    impls = args.impl or list(IMPLS)
    gradings = args.only or GRADINGS + ["collect"]
    configs = [(impl, g) for impl in impls for g in gradings
               if g != "collect" or impl == impls[0]]
    runs = {config: [] for config in configs}
    loads = [load()]
    for round_number in range(args.runs):
        for impl, grading in configs:
            found = one_run(impl, grading, args.only_requirements)
            runs[impl, grading].append(found)
            print("round %d  %-9s %-7s wall %5.2f s  grader CPU %5.2f s  programs' CPU %5.2f s"
                  "  %3d programs, %d helpers  %s%s  (load %s)" % (
                      round_number + 1, impl, grading, found["wall"], found["grader_cpu"],
                      found["programs_cpu"], found["programs"], found["helpers"],
                      found.get("score", ""),
                      " failed: " + " ".join(found["failed"]) if impl == "solutions"
                      and found.get("failed") else "", load()), file=sys.stderr, flush=True)
        loads.append(load())
    print("\n%s, %d cores, Python %s, %s; %s; median of %d rounds; 1-minute load average "
          "during the rounds: %s\n" % (
              cpu_model(), os.cpu_count(), platform.python_version(), platform.system(),
              "as root (programs run as the grading's own user)" if hasattr(os, "geteuid")
              and os.geteuid() == 0 else "not as root",
              args.runs, ", ".join(loads)))
    print("| grading | impl | checks | score | wall (s) | grader CPU (s) | programs' CPU (s) "
          "| programs started | helpers |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for impl, grading in configs:
        results = runs[impl, grading]
        median = lambda key: statistics.median(r[key] for r in results)   # noqa: E731
        name = {"full": "all four stages", "collect": "`--collect-only`"}.get(
            grading, "stage %s" % grading)
        scores = sorted({r.get("score", "–") for r in results})
        print("| %s | %s | %s | %s | %.2f | %.2f | %.2f | %.0f | %.0f |" % (
            name, impl, results[0].get("checks", "–"), " or ".join(scores), median("wall"),
            median("grader_cpu"), median("programs_cpu"), median("programs"),
            median("helpers")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
