"""The grader as a pytest plugin: its hooks and the checks' fixtures, each handing its job on.

    pytest grader                          grade stages/ (your work)
    pytest grader --impl solutions         grade any implementation directory
    pytest grader --stage 2                only stage 2 (also: 2_naming, naming)
    pytest grader --results results.json   also write Gradescope's results.json
    pytest grader --classroom-results FILE  also write GitHub Classroom's (grader/classroom.py)
    pytest grader --check 1.9              only check 1.9 (by its number)
    pytest grader --check 1.9 --attach 7777  check 1.9 against the server YOU started
                                           (in your debugger): grader/attach.py

Each check is a test function marked with @check (grader/checks.py), which
carries its number, title and points. This module is the plugin's face: pytest's
hooks and the checks' fixtures, each handing its work to the room that does it:

    options.py   the options, checked before any grading
    grading.py   the checks, their order, statuses, blocking, sharing plan, spares
    report.py    the score table, the lines below it, results.json
    timer.py     each check's time limit (pytest-timeout)
    signals.py   the grader's own process: Ctrl-C, SIGTERM
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from grader import attach, catalog, naming, options
from grader.grading import Grader
from grader.programs import Sandbox
from grader.report import score_table, write_results
from grader.serverside import ServerUnderTest
from grader.signals import set_up_signals
from grader.stages import stage_of_module
from grader.system import speak_utf8_off_the_console
from grader.timer import CheckTimer, require_timeout, time_limit
from grader.failure import Conversation

KIT_ROOT = Path(__file__).resolve().parent.parent
PASSED = pytest.StashKey[bool]()   # a check's own call passed (set before its teardown)
GRADER = pytest.StashKey[Grader]()       # the checks, their statuses, the score
SANDBOX = pytest.StashKey[Sandbox]()     # the programs: limits, running, watchdog, spares
GRADING: list[Grader] = []   # the run's Grader again, for pytest_runtest_logreport:
                             # pytest hands that hook the report alone


def pytest_addoption(parser):
    options.add_options(parser)


def pytest_configure(config):
    speak_utf8_off_the_console()
    config.addinivalue_line(
        "markers", "check(number, title, points, needs): a scored check of the chat kit grader")
    if GRADER in config.stash:
        return
    require_timeout(config)   # no check would have a time limit (timer.py)
    impl = options.implementation(config.getoption("--impl"), KIT_ROOT / "stages")
    wrong = catalog.problems()
    if wrong:   # a teacher's new check or stage: said now, not found out as a silent pass
        raise pytest.UsageError("the grader's checks are declared wrongly:\n  "
                                + "\n  ".join(wrong))
    grader = Grader(impl, options.parse_stages(config.getoption("--stage")),
                    options.results_path(config.getoption("--results")),
                    options.results_path(config.getoption("--classroom-results"),
                                         "--classroom-results"))
    grader.spelling = naming.spelled(config.getoption("--impl"))   # its files, as given
    grader.find_stages_not_started()
    grader.sandbox = config.stash[SANDBOX] = Sandbox(options.set_limits(config, grader))
    set_up_signals(grader.sandbox.stop_everything)
    config.stash[GRADER] = grader          # the run's state: the checks and their scores
    GRADING[:] = [grader]
    attach.configure(config, grader)       # --check; a check against your own server
    config.pluginmanager.register(CheckTimer(grader, grader.sandbox), "chatkit-check-timer")


def pytest_unconfigure(config):
    sandbox = config.stash.get(SANDBOX, None)
    if sandbox is not None:
        sandbox.stop_everything()   # normally nothing is left by now; after Ctrl-C there may be
    GRADING.clear()   # the run is over: a run in the same process starts with none


# --- collection: the checks of the chosen stages, in their order (grading.py) ---------

def pytest_collection_modifyitems(config, items):
    grader = config.stash[GRADER]
    keep, drop = grader.collect(items)
    for item in keep:
        if item.nodeid in grader.checks:
            item.add_marker(time_limit())
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep


def pytest_deselected(items):
    if items:
        items[0].config.stash[GRADER].deselected(items)


def pytest_collection_finish(session):
    session.config.stash[GRADER].plan(session.items, runs=not session.config.option.collectonly)


def pytest_sessionstart(session):
    """pytest's 'short test summary' would repeat every failure below the score
    table, pushing the table off a student's screen: leave it out unless asked (-r)."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and session.config.option.reportchars == "fE":
        reporter.reportchars = ""


# --- running: each check, blocked, reported and recorded (grading.py) -----------------

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item.config.stash[GRADER].before(item.nodeid)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    grader = item.config.stash[GRADER]
    check = grader.checks.get(item.nodeid)
    blocker = grader.blocker(check) if check is not None else None
    if blocker:
        pytest.fail(blocker, pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    grader = item.config.stash[GRADER]
    if item.nodeid in grader.checks:
        if call.when == "call":
            item.stash[PASSED] = report.passed   # the server fixture's teardown asks
        pytests_own = call.excinfo is not None and call.excinfo.errisinstance(
            (pytest.fail.Exception, pytest.skip.Exception))   # not the grader's own error
        grader.reported(item, call, report, pytests_own)


def pytest_runtest_logreport(report):
    """After every other plugin has made the report (timer.py's says 'ran out of time')."""
    if GRADING:
        GRADING[-1].record(report)


# --- the end: the score table, results.json (report.py) ---------------------------------

def pytest_terminal_summary(terminalreporter):
    score_table(terminalreporter.config.stash[GRADER], terminalreporter)


def pytest_sessionfinish(session):
    grader = session.config.stash[GRADER]
    grader.finish()          # no program of the students' is left to race the results
    write_results(grader)
    # pytest ends with five full garbage collections (to report objects that fail
    # as they are freed: none of the grader's matter); what the run made need not
    # be scanned again five times (~0.1 s of CPU).
    gc.freeze()


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
