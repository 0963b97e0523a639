"""The grader as a pytest plugin: options, fixtures, dependencies, the score.

    pytest grader                          grade stages/ (your work)
    pytest grader --impl solutions         grade any implementation directory
    pytest grader --stage 2                only stage 2 (also: 2_naming, naming)
    pytest grader --results results.json   also write Gradescope's results.json
    pytest grader --classroom-results FILE  also write GitHub Classroom's (grader/classroom.py)
    pytest grader --check 1.9              only check 1.9 (by its number)
    pytest grader --check 1.9 --attach 7777  check 1.9 against the server YOU started
                                           (in your debugger): grader/attach.py

Each check is a test function marked with @check (grader/checks.py), which
carries its number, title and points. Everything about scoring lives here.
"""

from __future__ import annotations

import _thread
import gc
import json
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from grader import attach, catalog, naming, whereabouts
from grader.moving_on import missing_modules, not_started_message
from grader.checks import ANSWERING, BASIC
from grader.stages import DECLARED, STAGES, label, order, stage_of_module, stages_named
from grader.clientside import spare_client
from grader.limits import make_limits, release_user
from grader.programs import Sandbox
from grader.serverside import ServerUnderTest, spare_server
from grader.system import WINDOWS, speak_utf8_off_the_console
from grader.classroom import classroom_results, write_classroom_results
from grader.isolation import write_out_of_reach
from grader.failure import Conversation
from grader.wire import OWN_ERROR, CheckFailed, essentials

KIT_ROOT = Path(__file__).resolve().parent.parent
PASSED = pytest.StashKey[bool]()   # a check's own call passed (set before its teardown)
CHECK_TIMEOUT = 30   # pytest-timeout's outer safety net for one check, in seconds


def pytest_addoption(parser):
    group = parser.getgroup("chatkit", "chat kit grader")
    group.addoption("--impl", metavar="DIR", default=None,
                    help="implementation directory to grade (default: the kit's stages/)")
    group.addoption("--stage", action="append", default=[], metavar="N",
                    help="grade only this stage: its number (1-%d), folder or name (%s, "
                         "%s); repeat or comma-separate for several"
                         % (len(DECLARED), DECLARED[-1].folder, DECLARED[-1].name))
    group.addoption("--results", metavar="FILE", default=None,
                    help="also write the run as Gradescope results.json to FILE")
    group.addoption("--classroom-results", metavar="FILE", default=None,
                    help="also write the run as GitHub Classroom's grading reporter reads it "
                         "(and, in a GitHub Actions step, as the step's output 'result')")
    # Limits on student programs (grader/limits.py, docs/teachers.md § Limits on student programs).
    group.addoption("--output-limit", metavar="MB", default="16",
                    help="stop a program that prints more than MB megabytes (default 16; 0: none)")
    group.addoption("--memory-limit", metavar="MB", default="256",
                    help="stop a program that uses more than MB megabytes of memory "
                         "(default 256; 0: none; Linux)")
    group.addoption("--max-processes", metavar="N", default="50",
                    help="processes the programs may have running at once, all together "
                         "(default 50; 0: no limit; Linux)")
    group.addoption("--disk-limit", metavar="MB", default="64",
                    help="what the programs may write to files, all together (default 64; "
                         "0: none); each file at most --output-limit")
    group.addoption("--run-as", metavar="USER", default=None,
                    help="run the programs as USER (POSIX, grader running as root)")
    attach.add_options(group)   # --check, --attach, --patience, --show-exchange


def parse_stages(values: list[str]) -> list[str]:
    """['2', 'exit'] -> ['2_naming', '4_exit']; all stages when nothing is given."""
    try:
        return stages_named(values) or list(STAGES)
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None


def pytest_configure(config):
    speak_utf8_off_the_console()
    config.addinivalue_line(
        "markers", "check(number, title, points, needs): a scored check of the chat kit grader")
    if config.pluginmanager.has_plugin("chatkit-grader"):
        return
    impl = Path(config.getoption("--impl") or KIT_ROOT / "stages").resolve()
    if not impl.is_dir():
        raise pytest.UsageError("--impl %s: no such directory" % impl)
    wrong = catalog.problems()
    if wrong:   # a teacher's new check or stage: said now, not found out as a silent pass
        raise pytest.UsageError("the grader's checks are declared wrongly:\n  "
                                + "\n  ".join(wrong))
    grader = Grader(impl, parse_stages(config.getoption("--stage")),
                    results_path(config.getoption("--results")),
                    results_path(config.getoption("--classroom-results"), "--classroom-results"))
    grader.spelling = naming.spelled(config.getoption("--impl"))   # its files, as given
    grader.find_stages_not_started()
    grader.sandbox = config.stash[SANDBOX] = Sandbox(set_limits(config, grader))
    set_up_signals(config)
    config.stash[GRADER] = grader          # the run's state: the checks and their scores
    config.pluginmanager.register(grader, "chatkit-grader")   # its hooks
    attach.configure(config, grader)       # --check; a check against your own server
    if config.pluginmanager.hasplugin("timeout"):
        config.pluginmanager.register(CheckTimer(grader, grader.sandbox),
                                      "chatkit-check-timer")


GRADER = pytest.StashKey["Grader"]()     # the checks, their statuses, the score
SANDBOX = pytest.StashKey[Sandbox]()     # the programs: limits, running, watchdog, spares


def set_limits(config, grader: "Grader"):
    """The limits on student programs (limits.py), checked before any program starts."""
    try:
        limits = make_limits(config.getoption("--output-limit"), config.getoption("--memory-limit"),
                             config.getoption("--max-processes"), config.getoption("--run-as"),
                             grader.impl, grader.stages, grader.results_path,
                             config.getoption("--disk-limit"))
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    if limits.copy is not None:   # the programs' own user reads a copy (grader/isolation.py)
        grader.run_from = limits.copy
    grader.who = limits.who
    return limits


def results_path(option: str | None, name: str = "--results") -> Path | None:
    """--results FILE, checked before any grading: its folder is created if need be,
    so a typo costs one line now, not the whole run's results at the end."""
    if option is None:
        return None
    path = Path(option).resolve()
    if path.is_dir():
        raise pytest.UsageError("%s %s: that is a folder; give a file name, "
                                "e.g. %s" % (name, option, Path(option) / "results.json"))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise pytest.UsageError("%s %s: cannot create its folder (%s)"
                                % (name, option, error.strerror or error)) from None
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise pytest.UsageError("%s %s: cannot write there (permission denied)" % (name, option))
    return path


def pytest_unconfigure(config):
    sandbox = config.stash.get(SANDBOX, None)
    if sandbox is not None:
        sandbox.stop_everything()   # normally nothing is left by now; after Ctrl-C there may be


def set_up_signals(config) -> None:
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
    if WINDOWS:   # the same on Windows: a new process group ignores Ctrl-C
        import ctypes
        ctypes.WinDLL("kernel32").SetConsoleCtrlHandler(None, False)

    def on_sigterm(signum, frame):
        config.stash[SANDBOX].stop_everything()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)


@dataclass
class Check:
    stage: str
    number: int
    title: str
    points: int                 # what it earns here: 0 for a kept check (catalog.py)
    needs: str | None           # a test function's name, BASIC, ANSWERING or None
    tests: str                  # "server" or "client"
    function: str               # its test function's name
    doc: str
    fresh_server: bool = False  # never given an earlier check's server (checks.py)
    kept: bool = False          # checks what an earlier stage built: no points here
    status: str = "not run"     # passed, failed, skipped
    output: str = ""
    heard: bool = False         # the program under test answered something during it

    @property
    def label(self) -> str:
        return label(self.stage, self.number)


class Grader:
    """Collects the checks, enforces their dependencies, and keeps the score."""

    def __init__(self, impl: Path, stages: list[str], results_path: Path | None,
                 classroom_path: Path | None = None) -> None:
        self.impl = impl
        self.run_from = impl      # where the programs are started from (a copy, if need be)
        self.who = ""             # who the programs run as, when the grader runs as root
        self.sandbox: Sandbox | None = None   # the programs (set in pytest_configure)
        self.stages = stages
        self.results_path = results_path
        self.classroom_path = classroom_path
        self.checks: dict[str, Check] = {}       # by pytest node id
        self.declared = {(c.stage, c.function): c for c in catalog.declared()}
        self.starts_spares = True   # False: attached (attach.py), nothing is started ahead
        self.spares_unwanted: dict[str, set[Path]] = {}   # see _spares_unwanted
        self.shares_server: dict[str, bool] = {}   # see _sharing
        self.keeps_server: dict[str, bool] = {}
        self.started = time.time()
        self.not_started: dict[str, list[str]] = {}   # stage -> the modules its folder lacks

    def find_stages_not_started(self) -> None:
        """The stages whose folder lacks the code of the stage before it (grader/moving_on.py):
        their checks are not run, and say how to start the stage."""
        for stage in self.stages:
            folder = self.impl / stage
            missing = missing_modules(folder) if folder.is_dir() else []
            if missing:
                self.not_started[stage] = missing

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
        """The check as the catalog numbers and scores it (grader/catalog.py)."""
        params = getattr(item, "callspec", None)
        stage = params.params.get("stage") if params else None
        stage = stage or stage_of_module(item.module.__name__)
        declared = self.declared[(stage, item.function.__name__)]
        doc = " ".join((item.function.__doc__ or "").split())
        return Check(stage, declared.number, declared.title, declared.points, declared.needs,
                     declared.tests, declared.function, doc,
                     fresh_server=declared.fresh_server, kept=declared.kept)

    def _sort_key(self, item, position):
        check = self.checks.get(item.nodeid)
        if check is None:
            return (len(STAGES) + 1, 0, position)
        return (order(check.stage), check.number, position)

    def pytest_collection_finish(self, session):
        """Start each stage's first server and client now, all at once (programs.py § spares),
        so that a program that never starts costs its 5 s once per run, not once per stage.
        (Not for --collect-only, which runs no check.)

        The checks of a stage not started are not run at all: each is scored 0 with the
        reason (how to start the stage), and pytest shows no failure for each of them."""
        self._park_stages_not_started(session)
        order = [item.nodeid for item in session.items if item.nodeid in self.checks]
        self.spares_unwanted = self._spares_unwanted(order)
        self.shares_server, self.keeps_server = self._sharing(order)
        if session.config.option.collectonly:
            return
        for stage in self.stages if self.starts_spares else []:
            if stage in self.not_started:
                continue   # nothing of it runs
            tested = {c.tests for c in self.checks.values() if c.stage == stage}
            for script, program, start in (("chat_server.py", "server", spare_server),
                                           ("chat_client.py", "client", spare_client)):
                path = self.run_from / stage / script
                if path.is_file() and program in tested:
                    self.sandbox.keep_spare(path, start(path, self.sandbox))

    def _park_stages_not_started(self, session) -> None:
        parked = {item.nodeid for item in session.items if item.nodeid in self.checks
                  and self.checks[item.nodeid].stage in self.not_started}
        for nodeid in parked:
            check = self.checks[nodeid]
            check.status = "failed"
            check.output = not_started_message(check.stage, self.not_started[check.stage])
        session.items[:] = [item for item in session.items if item.nodeid not in parked]

    def _spares_unwanted(self, order: list[str]) -> dict[str, set[Path]]:
        """For each check (by node id, in the order they run), the programs no check
        after it starts: that check starts no spare of them (programs.py § spares), so
        the last check of each stage's server and client leaves no spare to stop unused."""
        scripts = {nodeid: self.run_from / c.stage / ("chat_%s.py" % c.tests)
                   for nodeid, c in self.checks.items()}
        every, unwanted, needed = set(scripts.values()), {}, set()
        for nodeid in reversed(order):
            unwanted[nodeid] = every - needed
            needed.add(scripts[nodeid])
        return unwanted

    def _sharing(self, order: list[str]) -> tuple[dict[str, bool], dict[str, bool]]:
        """Which server checks may be given the server of the stage's server check
        before them (serverside.py § one server for several checks): not the first,
        nor one marked fresh_server; and, for each, whether the next one may."""
        shares, keeps, previous = {}, {}, {}
        for nodeid in order:
            check = self.checks[nodeid]
            if check.tests != "server":
                continue
            shares[nodeid] = check.stage in previous and not check.fresh_server
            keeps[nodeid] = False
            if check.stage in previous:
                keeps[previous[check.stage]] = shares[nodeid]
            previous[check.stage] = nodeid
        return shares, keeps

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item):
        self.sandbox.unwanted = self.spares_unwanted.get(item.nodeid, set())
        self.sandbox.keeps_server = self.keeps_server.get(item.nodeid, False)
        check = self.checks.get(item.nodeid)
        if check is not None and check.tests == "server" and \
                not self.shares_server.get(item.nodeid, False):
            self.sandbox.discard_shared(self.run_from / check.stage / "chat_server.py")

    # --- running: a check whose prerequisite failed is not run --------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self, item):
        check = self.checks.get(item.nodeid)
        blocker = self.blocker(check) if check is not None else None
        if blocker:
            pytest.fail(blocker, pytrace=False)

    def blocker(self, check: Check) -> str | None:
        """Why `check` can't be run (checks.py: what it needs failed), or None. The one
        place where "Blocked by" is decided and worded."""
        if check.needs is None:
            return None
        if check.needs == ANSWERING:
            basic = self._basic(check.stage, "server")
            if basic is None or basic.status != "failed" or basic.heard:
                return None
            return ("Blocked by check %s (%s), which failed before the server answered "
                    "anything: fix that one first.\nThis check needs a server that answers, "
                    "so it was not run and scores 0." % (basic.label, basic.title))
        if check.needs == BASIC:
            needed = self._basic(check.stage, check.tests)
        else:
            needed = next((c for c in self.checks.values() if c.stage == check.stage
                           and c.function == check.needs), None)
        if needed is None or needed is check or needed.status != "failed":
            return None
        return ("Blocked by check %s (%s), which failed: fix that one first. This check "
                "needs it, so it was not run and scores 0." % (needed.label, needed.title))

    def _basic(self, stage: str, tests: str) -> Check | None:
        """The stage's basic check of a program: its first check of that program."""
        return min((c for c in self.checks.values() if c.stage == stage and c.tests == tests),
                   key=lambda c: c.number, default=None)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        """Title a check's failure section with its number and title ('1.3 A message
        sent one byte at a time'), the names the table and 'Blocked by' use."""
        outcome = yield
        report = outcome.get_result()
        check = self.checks.get(item.nodeid)
        if check is None:
            return
        conversation = item.funcargs.get("conversation")
        if call.when == "call" and conversation is not None:
            check.heard = conversation.messages_heard > 0
        if call.when == "call":
            item.stash[PASSED] = report.passed   # the server fixture's teardown asks
        if report.location is not None:
            path, line, _ = report.location
            report.location = (path, line, "%s %s" % (check.label, check.title))
        if report.failed and call.excinfo is not None:
            if call.excinfo.errisinstance(CheckFailed):   # the check's own explanation
                report.longrepr = str(call.excinfo.value)
            elif not call.excinfo.errisinstance((pytest.fail.Exception, pytest.skip.Exception)):
                report.longrepr = own_error(call.excinfo, conversation)

    def given_names(self, text: str) -> str:
        """`text` naming the folder given (--impl) where it names the copy the programs
        ran from (isolation.readable_copy: the folder given and the modules next to it,
        laid out the same under another folder), and the folder's files as --impl gave
        it (grader/naming.py), so that what a student reads is true."""
        text = text.replace(str(self.run_from.parent), str(self.impl.parent))
        return naming.given(text, self.impl.name, getattr(self, "spelling", None))

    def pytest_sessionstart(self, session):
        """pytest's 'short test summary' would repeat every failure below the score
        table, pushing the table off a student's screen: leave it out unless asked (-r)."""
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and session.config.option.reportchars == "fE":
            reporter.reportchars = ""

    def pytest_runtest_logreport(self, report):
        check = self.checks.get(report.nodeid)
        if check is None:
            return
        if report.failed or report.skipped:
            # The failure sections are printed at the end, from this same report.
            text = (report.longrepr[2] if isinstance(report.longrepr, tuple)
                    else report.longreprtext)
            named = self.given_names(text)
            if named != text:
                report.longrepr = ((*report.longrepr[:2], named)
                                   if isinstance(report.longrepr, tuple) else named)
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
        if self.who:
            tr.write_line("(%s)" % self.who if not self.who.startswith("WARNING")
                          else self.who, bold=self.who.startswith("WARNING"))
        total = maximum = 0
        rows = []
        width = max(len(c.title) for c in self.checks.values())
        for stage in self.stages:
            checks = sorted((c for c in self.checks.values() if c.stage == stage),
                            key=lambda c: c.number)
            if not checks:
                continue
            tr.write_line(stage)
            if stage in self.not_started:   # nothing of it ran: one line, not a list of zeros
                tr.write_line("  · not started: its %d checks are not run (`python -m grader "
                              "next` starts it)" % len(checks))
                checks = []
            for c in checks:
                mark = {"passed": "✓", "failed": "✗", "skipped": "-"}.get(c.status, "·")
                earned = c.points if c.status == "passed" else 0
                score = ("kept" if c.status != "failed" else "REGRESSION") if c.kept \
                    else "%d/%d" % (earned, c.points)
                tr.write_line("  %s %-5s %-*s %s" % (mark, c.label, width, c.title, score))
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
        self._say_which_stage(tr)
        regressions = [c.label for c in self.checks.values() if c.kept and c.status == "failed"
                       and c.stage not in self.not_started]
        if regressions:
            tr.write_line("REGRESSION: %s, %s what an earlier stage built, %s: no points "
                          "lost here, but fix %s first." % (
                              ", ".join(sorted(regressions, key=lambda n: tuple(
                                  int(p) for p in n.split(".")))),
                              "a check of" if len(regressions) == 1 else "checks of",
                              "fails" if len(regressions) == 1 else "fail",
                              "it" if len(regressions) == 1 else "them"), bold=True)
        self._recall_first_failure(tr)

    def _say_which_stage(self, tr) -> None:
        """With a stage not started, the stage the student is on: the last one started."""
        if not self.not_started:
            return
        started = [stage for stage in self.stages if stage not in self.not_started
                   and (self.impl / stage).is_dir()]
        waiting = [stage for stage in self.stages if stage in self.not_started]
        if started:
            tr.write_line("You are on stage %s. Not started yet: %s (`python -m grader next` "
                          "starts the next one from your %s)."
                          % (started[-1], ", ".join(waiting), started[-1]))

    def _recall_first_failure(self, tr) -> None:
        """Below the table, the essentials of the first failed check (what was expected,
        what came, the hint), so a student's last screen holds both."""
        failed = [c for c in sorted(self.checks.values(), key=lambda c: (order(c.stage), c.number))
                  if c.status == "failed" and not c.output.startswith(NOT_THE_STUDENTS)
                  and c.stage not in self.not_started]   # the line above the table says
        if not failed:
            return
        first = failed[0]
        tr.write_line("")
        tr.write_line("Fix first: %s %s (its whole story is above)" % (first.label, first.title),
                      bold=True)
        for line in essentials(first.output):
            tr.write_line("  " + line)
        todo = next((line for line in first.output.splitlines() if "not implemented yet" in line
                     and line.lstrip(" |").startswith("TODO")), None)
        if todo:
            tr.write_line("  " + todo.lstrip(" |"))

    def pytest_sessionfinish(self, session, exitstatus):
        self.sandbox.discard_spares()
        # As root: no program of the students' is left to race the results.
        release_user(self.sandbox.limits)
        if self.results_path:
            write_out_of_reach(self.results_path,
                               json.dumps(self.results(), indent=2, ensure_ascii=False))
        if self.classroom_path:
            write_classroom_results(self.classroom_path, classroom_results(self.results()))
        # pytest ends with five full garbage collections (to report objects that fail
        # as they are freed: none of the grader's matter); what the run made need not
        # be scanned again five times (~0.1 s of CPU).
        gc.freeze()

    def results(self) -> dict:
        """The run in Gradescope's results.json format."""
        checks = sorted(self.checks.values(), key=lambda c: (order(c.stage), c.number))
        tests = [{
            "name": "%s %s" % (c.label, c.title),
            "number": c.label,
            "score": c.points if c.status == "passed" else 0,
            "max_score": 0 if c.status == "skipped" else c.points,
            "status": "passed" if c.status == "passed" else "failed",
            "output": (c.output or "Not run.") + (KEPT if c.kept else ""),
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


KEPT = ("\n(Kept from an earlier stage: this check scores no points here, its own stage "
        "gave them; a failure means a change broke what worked before.)")
NOT_THE_STUDENTS = ("Blocked by", OWN_ERROR)   # failures that are not the first thing to fix


def own_error(excinfo, conversation) -> str:
    """What a student reads when the grader's own code failed inside a check: one plain
    line that says so (never the grader's traceback), and the conversation so far."""
    entry = excinfo.traceback[-1] if excinfo.traceback else None
    where = ""
    if entry is not None:
        where = ", in %s line %d" % (Path(str(entry.path)).name, entry.lineno + 1)
    lines = ["%s in this check (%s: %s%s). This is not a verdict on your program: the "
             "check scores 0 in this run; please tell your teacher, with this text."
             % (OWN_ERROR, excinfo.typename, excinfo.value, where)]
    if conversation is not None:
        lines += conversation.transcript()
    return "\n".join(lines)




CHECK_TIME_LIMIT = ("a program that never answers is usually stuck: an endless loop, or a "
                    "blocking call (recv, accept, input) where it should go back to select.")
CHECK_TIME_IDLE = ("your program was idle in select(), not stuck: it never sent what the check "
                   "waited for. Look at the conversation's last line the grader sent: was the "
                   "reply queued, and is the socket registered for writing while it waits?")


class CheckTimer:
    """A check that runs past CHECK_TIMEOUT fails with a sentence and the conversation
    so far, the same way on every system, and the run goes on to the score table.

    pytest-timeout stops a hung check its own way: on Linux and macOS with the stacks
    of the grader's threads, which tell a student nothing; on Windows by ending the
    whole grader at once (no table, no results file, the programs left running). So
    we set the timer ourselves, through pytest-timeout's own hook for that. When it
    rings, a timer thread stops the check's programs: their sockets and pipes close,
    so whatever the check waits on returns at once, and the check (the main thread),
    interrupted, fails with CHECK_TIME_LIMIT. A real Ctrl-C still stops the run.
    """

    def __init__(self, grader: "Grader", sandbox: Sandbox) -> None:
        self.grader = grader
        self.sandbox = sandbox
        self.lock = threading.Lock()
        self.running = None      # the check whose timer is set
        self.timer = None
        self.due = None          # the check the timer thread interrupted, until handled
        self.timed_out = None    # the last check that ran out of time
        self.handler_set = False

    def _ours(self, item) -> bool:
        return (item.nodeid in self.grader.checks
                and threading.current_thread() is threading.main_thread())

    @pytest.hookimpl(tryfirst=True)
    def pytest_timeout_set_timer(self, item, settings):
        if not self._ours(item):
            return None
        if not self.handler_set:
            signal.signal(signal.SIGINT, self.on_interrupt)
            self.handler_set = True
        with self.lock:
            self.running, self.timed_out = item, None
            self.timer = threading.Timer(settings.timeout, self.time_is_up,
                                         (item, settings.timeout))
            self.timer.daemon = True
            self.timer.start()
        return True

    @pytest.hookimpl(tryfirst=True)
    def pytest_timeout_cancel_timer(self, item):
        if not self._ours(item):
            return None
        with self.lock:
            if self.running is item:
                self.timer.cancel()
                self.running = None
        return True

    def time_is_up(self, item, seconds: float) -> None:
        """In the timer's thread: stop what the check waits on, then interrupt it."""
        with self.lock:
            if self.running is not item:
                return                      # it ended just now
            self.timed_out = self.due = item
            self.seconds = seconds
        conversation = item.funcargs.get("conversation")
        if conversation is not None:   # where they wait, while they still can answer
            whereabouts.look_before_stop(conversation)
        _thread.interrupt_main(signal.SIGINT)   # handled as soon as the check's wait ends
        self.sandbox.stop_programs_in_use("Stopped by the grader when the check ran out of time.")

    def on_interrupt(self, signum, frame):
        """SIGINT in the main thread: our timer's interruption, or a real Ctrl-C."""
        with self.lock:
            due, self.due = self.due, None
            running = self.running
        if due is None:
            raise KeyboardInterrupt
        if due is running:
            raise CheckFailed(self.explanation(due))
        # else: that check ended before its interruption arrived; nothing to stop

    def explanation(self, item) -> str:
        expected = "the check to finish within %g s" % self.seconds
        got = "it was still running after %g s, so the grader stopped it" % self.seconds
        conversation = item.funcargs.get("conversation") or Conversation()
        seen = getattr(conversation, "seen_before_stop", None)
        hint = CHECK_TIME_IDLE if whereabouts.idle(seen) else CHECK_TIME_LIMIT
        return conversation.explanation(expected, got, hint)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        """A check that ran out of time fails as such, whatever its last step raised
        when its programs were stopped under it (a closed connection, say)."""
        outcome = yield
        report = outcome.get_result()
        if self.timed_out is item and report.failed:
            report.longrepr = self.explanation(item)


# --- fixtures the checks use -------------------------------------------------

@pytest.fixture
def grader(request) -> Grader:
    return request.config.stash[GRADER]


@pytest.fixture
def stage(request) -> str:
    """The stage a check belongs to (the one declared for its module, unless parametrized)."""
    return stage_of_module(request.module.__name__)


@pytest.fixture
def stage_dir(grader, stage) -> Path:
    return grader.run_from / stage


@pytest.fixture
def conversation(request) -> Conversation:
    return attach.new_conversation(request.config)   # patient and shown live when attached


@pytest.fixture
def sandbox(request) -> Sandbox:
    """The grading's programs: their limits, who runs, the watchdog, the spares."""
    return request.config.stash[SANDBOX]


@pytest.fixture
def server(request, stage_dir, conversation, sandbox):
    """The student's server for this check: started on first use (or the one the check
    before it left, serverside.py), stopped at the end unless the next check may have it
    (attached: the one the student started, attach.py)."""
    under_test = (attach.attached_server(request.config, stage_dir, conversation, sandbox)
                  or ServerUnderTest(stage_dir, conversation, sandbox))
    yield under_test
    under_test.finish(passed=request.node.stash.get(PASSED, False))


@pytest.fixture
def another_server(stage_dir, conversation, sandbox):
    """Start more servers of the same stage (e.g. to re-bind a port); all stopped at the end."""
    started = []

    def start(port: int | None = None) -> ServerUnderTest:
        fresh = ServerUnderTest(stage_dir, conversation, sandbox)
        started.append(fresh)
        fresh.start(port)
        return fresh

    yield start
    for fresh in started:
        fresh.stop()
