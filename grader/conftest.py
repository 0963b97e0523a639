"""The grader as a pytest plugin: options, fixtures, dependencies, the score.

    pytest grader                          grade stages/ (your work)
    pytest grader --impl solutions         grade any implementation directory
    pytest grader --stage 2                only stage 2 (also: 2_naming, naming)
    pytest grader --results results.json   also write Gradescope's results.json

Each check is a test function marked with @check (grader/checks.py), which
carries its number, title and points. Everything about scoring lives here.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from grader.checks import STAGES
from grader.clientside import spare_client
from grader.procs import (ServerUnderTest, discard_spares, keep_spare, spare_server,
                          stop_everything)
from grader.wire import Conversation

KIT_ROOT = Path(__file__).resolve().parent.parent
CHECK_TIMEOUT = 30   # pytest-timeout's outer safety net for one check, in seconds
SERVER_CHECKS = range(1, 20)    # N.1-N.19 test the server, N.20 and up the client
CLIENT_CHECKS = range(20, 100)


def pytest_addoption(parser):
    group = parser.getgroup("chatkit", "chat kit grader")
    group.addoption("--impl", metavar="DIR", default=None,
                    help="implementation directory to grade (default: the kit's stages/)")
    group.addoption("--stage", action="append", default=[], metavar="N",
                    help="grade only this stage: 1-4, 2_naming or naming; repeat or "
                         "comma-separate for several")
    group.addoption("--results", metavar="FILE", default=None,
                    help="also write the run as Gradescope results.json to FILE")


def parse_stages(values: list[str]) -> list[str]:
    """['2', 'exit'] -> ['2_naming', '4_exit']; all stages when nothing is given."""
    wanted = [v.strip() for value in values for v in value.split(",") if v.strip()]
    chosen = []
    for value in wanted:
        matches = [s for s in STAGES if value in (s, s[0], s[2:])]
        if not matches:
            raise pytest.UsageError("--stage %s: no such stage; use 1-4 or one of %s"
                                    % (value, ", ".join(STAGES)))
        chosen += matches
    return [s for s in STAGES if s in chosen] or list(STAGES)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "check(number, title, points, needs): a scored check of the chat kit grader")
    if config.pluginmanager.has_plugin("chatkit-grader"):
        return
    set_up_signals()
    impl = Path(config.getoption("--impl") or KIT_ROOT / "stages").resolve()
    if not impl.is_dir():
        raise pytest.UsageError("--impl %s: no such directory" % impl)
    grader = Grader(impl, parse_stages(config.getoption("--stage")),
                    config.getoption("--results"))
    config.pluginmanager.register(grader, "chatkit-grader")


def pytest_unconfigure(config):
    stop_everything()   # normally nothing is left by now; after Ctrl-C there may be


def set_up_signals() -> None:
    """Two signal matters of the grader's own process.

    SIGINT: a job started in the background (`pytest grader &`, some CI runners)
    ignores Ctrl-C, and the programs it starts would inherit that, so check 4.8's
    Ctrl-C would be ignored by a correct server. So we make SIGINT count again.

    SIGTERM: if the grader itself is terminated (say, by a platform's time limit),
    the programs it started, each in a process group of its own, must not outlive it.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def on_sigterm(signum, frame):
        stop_everything()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)


@dataclass
class Check:
    stage: str
    number: int
    title: str
    points: int
    needs: int | None
    doc: str
    status: str = "not run"     # passed, failed, skipped
    output: str = ""

    @property
    def label(self) -> str:
        return "%s.%d" % (self.stage[0], self.number)


class Grader:
    """Collects the checks, enforces their dependencies, and keeps the score."""

    def __init__(self, impl: Path, stages: list[str], results_path: str | None) -> None:
        self.impl = impl
        self.stages = stages
        self.results_path = results_path
        self.checks: dict[str, Check] = {}       # by pytest node id
        self.started = time.time()

    # --- collection: find the checks, keep the chosen stages, order them ----
    def pytest_collection_modifyitems(self, config, items):
        keep, drop = [], []
        for item in items:
            marker = item.get_closest_marker("check")
            if marker is None:
                keep.append(item)
                continue
            check = self._check_of(item, marker)
            if check.stage not in self.stages:
                drop.append(item)
                continue
            self.checks[item.nodeid] = check
            item.add_marker(pytest.mark.timeout(CHECK_TIMEOUT))
            keep.append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
        order = {id(i): n for n, i in enumerate(keep)}
        keep.sort(key=lambda i: self._sort_key(i, order[id(i)]))
        items[:] = keep

    def pytest_deselected(self, items):
        """Checks left out (by -k, or by --stage) are neither run nor scored."""
        for item in items:
            self.checks.pop(item.nodeid, None)

    def _check_of(self, item, marker) -> Check:
        params = getattr(item, "callspec", None)
        stage = params.params.get("stage") if params else None
        stage = stage or getattr(item.module, "STAGE")
        doc = " ".join((item.function.__doc__ or "").split())
        return Check(stage, marker.kwargs["number"], marker.kwargs["title"],
                     marker.kwargs["points"], marker.kwargs["needs"], doc)

    def _sort_key(self, item, position):
        check = self.checks.get(item.nodeid)
        if check is None:
            return (len(STAGES), 0, position)
        return (STAGES.index(check.stage), check.number, position)

    def pytest_collection_finish(self, session):
        """Start each stage's first server and client now, all at once (procs.py § spares),
        so that a program that never starts costs its 5 s once per run, not once per stage."""
        for stage in self.stages:
            numbers = [c.number for c in self.checks.values() if c.stage == stage]
            for script, wanted, start in (("chat_server.py", SERVER_CHECKS, spare_server),
                                          ("chat_client.py", CLIENT_CHECKS, spare_client)):
                path = self.impl / stage / script
                if path.is_file() and any(n in wanted for n in numbers):
                    keep_spare(path, start(path))

    # --- running: a check whose prerequisite failed is not run --------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self, item):
        check = self.checks.get(item.nodeid)
        if check is None or check.needs is None:
            return
        needed = self._find(check.stage, check.needs)
        if needed is not None and needed.status == "failed":
            pytest.fail("Blocked by check %s (%s), which failed: fix that one first.\n"
                        "This check needs it, so it was not run and scores 0."
                        % (needed.label, needed.title), pytrace=False)

    def _find(self, stage: str, number: int) -> Check | None:
        for check in self.checks.values():
            if check.stage == stage and check.number == number:
                return check
        return None

    def pytest_runtest_logreport(self, report):
        check = self.checks.get(report.nodeid)
        if check is None:
            return
        if report.failed:
            check.status = "failed"
            check.output = (check.output + "\n" + report.longreprtext).strip()
        elif report.skipped and check.status != "failed":
            check.status = "skipped"
            check.output = "Skipped: %s" % report.longrepr[2] if isinstance(
                report.longrepr, tuple) else "Skipped."
        elif report.when == "call" and check.status == "not run":
            check.status = "passed"
            check.output = "Passed. " + check.doc if check.doc else "Passed."

    # --- the score ------------------------------------------------------------
    def _scored(self, stage: str) -> list[Check]:
        return [c for c in self.checks.values() if c.stage == stage and c.status != "skipped"]

    def pytest_terminal_summary(self, terminalreporter):
        tr = terminalreporter
        if not self.checks:
            return
        tr.section("chat kit: %s" % self.impl)
        total = maximum = 0
        rows = []
        for stage in self.stages:
            checks = sorted((c for c in self.checks.values() if c.stage == stage),
                            key=lambda c: c.number)
            if not checks:
                continue
            tr.write_line(stage)
            for c in checks:
                mark = {"passed": "✓", "failed": "✗", "skipped": "-"}.get(c.status, "·")
                earned = c.points if c.status == "passed" else 0
                tr.write_line("  %s %-5s %-58s %d/%d" % (mark, c.label, c.title[:58], earned, c.points))
            got = sum(c.points for c in self._scored(stage) if c.status == "passed")
            out_of = sum(c.points for c in self._scored(stage))
            rows.append((stage, got, out_of))
            total, maximum = total + got, maximum + out_of
        if any(c.status == "not run" for c in self.checks.values()):
            tr.write_line("(· = not run: the run stopped early, e.g. with -x or Ctrl-C; scores 0)")
        tr.write_line("")
        tr.write_line("%-14s %s" % ("stage", "points"))
        for stage, got, out_of in rows:
            tr.write_line("%-14s %3d / %d" % (stage, got, out_of))
        tr.write_line("%-14s %3d / %d" % ("total", total, maximum), bold=True)

    def pytest_sessionfinish(self, session, exitstatus):
        discard_spares()
        if self.results_path:
            Path(self.results_path).write_text(json.dumps(self.results(), indent=2,
                                                          ensure_ascii=False), encoding="utf-8")

    def results(self) -> dict:
        """The run in Gradescope's results.json format."""
        checks = sorted(self.checks.values(), key=lambda c: (STAGES.index(c.stage), c.number))
        tests = [{
            "name": "%s %s" % (c.label, c.title),
            "number": c.label,
            "score": c.points if c.status == "passed" else 0,
            "max_score": 0 if c.status == "skipped" else c.points,
            "status": "passed" if c.status == "passed" else "failed",
            "output": c.output or "Not run.",
            "tags": [c.stage],
            "visibility": "visible",
        } for c in checks]
        return {
            "score": sum(t["score"] for t in tests),
            "max_score": sum(t["max_score"] for t in tests),
            "execution_time": round(time.time() - self.started, 2),
            "visibility": "visible",
            "tests": tests,
        }


# --- fixtures the checks use -------------------------------------------------

@pytest.fixture
def grader(request) -> Grader:
    return request.config.pluginmanager.get_plugin("chatkit-grader")


@pytest.fixture
def stage(request) -> str:
    """The stage a check belongs to (module STAGE, unless parametrized)."""
    return request.module.STAGE


@pytest.fixture
def stage_dir(grader, stage) -> Path:
    return grader.impl / stage


@pytest.fixture
def conversation() -> Conversation:
    return Conversation()


@pytest.fixture
def server(stage_dir, conversation):
    """The student's server for this check: fresh, started on first use, always stopped."""
    under_test = ServerUnderTest(stage_dir, conversation)
    yield under_test
    under_test.stop()


@pytest.fixture
def another_server(stage_dir, conversation):
    """Start more servers of the same stage (e.g. to re-bind a port); all stopped at the end."""
    started = []

    def start(port: int | None = None) -> ServerUnderTest:
        fresh = ServerUnderTest(stage_dir, conversation)
        started.append(fresh)
        fresh.start(port)
        return fresh

    yield start
    for fresh in started:
        fresh.stop()
