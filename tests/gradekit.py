"""Run the real grader on an implementation, the way an instructor would.

`grade()` starts `python -m pytest grader --impl DIR --results FILE` as its
own process (in its own process group, with a hard time limit) and returns
what the grader wrote to results.json, plus its wall time and printed output.
Tests judge the grader by that JSON, never by parsing its prose.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

KIT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(KIT))   # the kit's own modules (grader.stages) for the tests
from grader.stages import STAGES  # noqa: E402  (re-exported: the one list of the stages)

IMPLS = KIT / "tests" / "impls"
POSIX = os.name == "posix"
KILL_GRACE = 5.0   # seconds the grader gets to clean up after SIGTERM


@dataclass
class Grade:
    """One grader run: its results.json, exit status, output and wall time."""
    impl: Path
    results: dict
    status: int
    output: str
    seconds: float
    env: dict = field(default_factory=dict)

    @property
    def score(self) -> int:
        return self.results["score"]

    @property
    def max_score(self) -> int:
        return self.results["max_score"]

    def tests(self, stage: str | None = None) -> list[dict]:
        return [t for t in self.results["tests"] if stage is None or stage in t["tags"]]

    def failed(self, stage: str | None = None) -> list[str]:
        """Numbers of the failed checks ("2.3"), in order."""
        return [t["number"] for t in self.tests(stage) if t["status"] == "failed"]

    def stage_score(self, stage: str) -> tuple[int, int]:
        tests = self.tests(stage)
        return sum(t["score"] for t in tests), sum(t["max_score"] for t in tests)

    def output_of(self, number: str) -> str:
        return next(t["output"] for t in self.results["tests"] if t["number"] == number)


def grade(impl: Path | str, *args: str, env: dict | None = None, limit: float = 240) -> Grade:
    """Run the grader on `impl` (extra pytest arguments in `args`); bounded by `limit` s."""
    impl = Path(impl)
    with tempfile.TemporaryDirectory(prefix="chatkit-grade-") as tmp:
        results_path = Path(tmp) / "results.json"
        command = [sys.executable, "-m", "pytest", "grader", "--impl", str(impl),
                   "--results", str(results_path), "-q", "-p", "no:cacheprovider", *args]
        started = time.monotonic()
        proc = subprocess.Popen(command, cwd=KIT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=grader_environment(env), start_new_session=POSIX)
        try:
            output, _ = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            output, _ = proc.communicate()
            raise AssertionError("the grader did not finish within %d s on %s:\n%s"
                                 % (limit, impl, output.decode("utf-8", "replace")[-3000:]))
        seconds = time.monotonic() - started
        text = output.decode("utf-8", "replace")
        if not results_path.exists():
            raise AssertionError("the grader wrote no results.json (exit %s):\n%s"
                                 % (proc.returncode, text[-3000:]))
        results = json.loads(results_path.read_text(encoding="utf-8"))
    return Grade(impl, results, proc.returncode, text, seconds, env or {})


def grader_environment(extra: dict | None) -> dict:
    """The grader's environment, as on a student's machine: Python may cache the grader's
    compiled modules (a machine that sets PYTHONDONTWRITEBYTECODE would otherwise make
    pytest compile and rewrite them on every run, ~1 s of each grading's time)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra or {})
    return env


def grade_many(jobs: list[tuple], workers: int = 3) -> list[Grade]:
    """Run several gradings in parallel: jobs are (impl, args, env) tuples."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(grade, impl, *args, env=env) for impl, args, env in jobs]
        return [f.result() for f in futures]


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM first, so the grader can stop the programs it started; then SIGKILL."""
    if POSIX:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(KILL_GRACE)
            except subprocess.TimeoutExpired:
                pass
    else:
        proc.kill()


def processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that contain `text` (Linux: /proc; else ps)."""
    found = []
    proc = Path("/proc")
    if proc.is_dir():
        for entry in proc.iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                raw = (entry / "cmdline").read_bytes()
                if b"\0" not in raw and not raw:
                    continue
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            line = raw.replace(b"\0", b" ").decode("utf-8", "replace")
            if text in line and state != "Z":
                found.append("%s: %s" % (entry.name, line))
        return found
    ps = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True)
    return [line.strip() for line in ps.stdout.splitlines() if text in line]


def started_by(process: str, marker: str) -> bool:
    """Whether a process (a processes_mentioning line) carries `marker` ('NAME=VALUE')
    in its environment: the kit's tests mark the gradings they start this way, so that
    another copy of the tests running on the same machine is never counted as theirs.
    Where the environment can't be read (no /proc), assume it does."""
    proc = Path("/proc", process.split(":", 1)[0])
    if not proc.parent.is_dir():
        return True
    try:
        environ = (proc / "environ").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False        # it has ended since it was listed
    except OSError:
        return True
    return marker.encode() in environ


def stage_maximum(stage: str) -> tuple[int, int]:
    """(points, checks) of one stage as the grader declares them, read from the @check
    marks of grader/test_*.py, so that tests never hard-code a stage's total."""
    import importlib
    if str(KIT) not in sys.path:
        sys.path.insert(0, str(KIT))
    points = count = 0
    for path in sorted((KIT / "grader").glob("test_*.py")):
        module = importlib.import_module("grader." + path.stem)
        for function in vars(module).values():
            marks = getattr(function, "pytestmark", [])
            check = next((m for m in marks if m.name == "check"), None)
            if check is None:
                continue
            stages = next((m.args[1] for m in marks if m.name == "parametrize"
                           and m.args[0] == "stage"), [getattr(module, "STAGE", None)])
            if stage in stages:
                points += check.kwargs["points"]
                count += 1
    return points, count
