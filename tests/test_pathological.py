"""The grader survives pathological student programs.

Every misbehaviour of tests/impls/pathological (chosen by CHATKIT_PATHOLOGY) is
graded on all four stages by the real grader, three gradings at a time. Then:
each grading ended in bounded time; the misbehaving program scores zero on its
checks while the other (reference) program scores full marks; the basic check
says clearly what went wrong; the chatty and slow programs, otherwise correct,
score full marks; the grader never crashes; and nothing is left running.
"""

import os
import re
import subprocess
import sys
import time

import pytest

from gradekit import (IMPLS, LINUX, STAGES, grade_many, left_running, processes_mentioning, started_by,
                      wait_until)

PATHOLOGICAL = IMPLS / "pathological"
MARK = "pathological/"   # in the command line of every program (and child) it starts, from
                         # the kit, the tests' self-contained copy, or the grader's copy
# In the environment of every process this run's gradings start (the grader passes its
# environment on): another copy of the kit's tests on the same machine is not ours.
RUN_MARKER = ("CHATKIT_PATHOLOGICAL_RUN", str(os.getpid()))

# name: the phrases the basic check's output must hold, for every stage (None: full marks).
# The basic check is N.1 for a server, N.20 for a client.
PATHOLOGIES = {
    "server-never-listens": ["it did not start listening within 5 s",
                             "does the server bind to the --host/--port"],
    "server-exits": ["it exited with status 3 before accepting a connection"],
    "server-import-crash": ["it exited with status 1 before accepting a connection",
                            "standard error", "Traceback (most recent call last)",
                            "ModuleNotFoundError: No module named 'protocl'"],
    "server-silent": ["nothing within 2.0 s (timed out waiting)"],
    "server-spin": ["it did not start listening within 5 s"],
    "server-spin-listening": ["nothing within 2.0 s"],
    "server-ignores-sigterm": ["nothing within 2.0 s"],
    "server-forks": ["it exited with status 0 before accepting a connection"],
    "server-garbage": ["bytes that are not a valid message header"],
    "server-chatty": None,
    "server-slow-start": None,
    "client-never-connects": ["no connection within 5 s",
                              "the client must connect at start"],
    "client-exits": ["it exited with status 3 without connecting"],
    "client-import-crash": ["it exited with status 1 without connecting",
                            "standard error", "Traceback (most recent call last)",
                            "ModuleNotFoundError: No module named 'protocl'"],
    "client-silent": ["Expected: client → server  'hello'",
                      "nothing within 2.0 s (timed out waiting)"],
    "client-spin": ["nothing within 2.0 s"],
    "client-ignores-sigterm": ["nothing within 2.0 s"],
    "client-forks": ["it exited with status 0 without connecting"],
    "client-garbage": ["bytes that are not a valid message header"],
    "client-chatty": None,
}
FULL_MARKS = [name for name, phrases in PATHOLOGIES.items() if phrases is None]
ZERO = [name for name, phrases in PATHOLOGIES.items() if phrases is not None]

# Seconds: one grading (all four stages, 95 checks) of a misbehaving program. Alone, a
# silent client's takes ~16 s (four 2 s waits, the rest blocked) and the reference's ~9 s;
# here three gradings share two cores, so the bound leaves room for that.
PATHOLOGY_LIMIT = 45.0
# The otherwise-correct ones take what the reference takes, plus their own slowness.
FULL_MARKS_LIMIT = {"server-chatty": 45.0, "client-chatty": 45.0, "server-slow-start": 60.0}
# The slow starter costs 1.5 s per server started, so it is graded on stage 1 only: that
# proves the point (15 fresh servers, each slow) without a minute per stage.
ONLY_STAGES = {"server-slow-start": ["1_echo"]}
TOTAL_LIMIT = 240.0      # seconds: all of them, three at a time
LEFTOVER_POLL = 3.0      # seconds: the last kills may take a moment to land
GRADER_FRAME = re.compile(r"grader[/\\]\w+\.py:\d+")   # a traceback through the grader's code


def is_server_check(number: str) -> bool:
    return int(number.split(".")[1]) < 20


def basic_check(name: str, stage: str) -> str:
    return "%s.%d" % (stage[0], 1 if name.startswith("server-") else 20)


def stages_of(name: str) -> list[str]:
    return ONLY_STAGES.get(name, STAGES)


def stage_options(name: str) -> tuple:
    return tuple(arg for stage in ONLY_STAGES.get(name, []) for arg in ("--stage", stage))


@pytest.fixture(scope="module")
def gradings(report):
    """Every pathology graded on all four stages, three gradings at a time."""
    started = time.monotonic()
    marker, value = RUN_MARKER
    runs = grade_many([(PATHOLOGICAL, stage_options(name), {"CHATKIT_PATHOLOGY": name, marker: value})
                       for name in PATHOLOGIES], workers=3)
    total = time.monotonic() - started
    by_name = dict(zip(PATHOLOGIES, runs))
    report("grader wall time per pathology (all four stages):")
    for name, run in by_name.items():
        report("  %-24s %5.1f s  %3d/%d" % (name, run.seconds, run.score, run.max_score))
    report("  %-24s %5.1f s  (3 at a time)" % ("total", total))
    return by_name, total


@pytest.fixture
def runs(gradings):
    return gradings[0]


@pytest.mark.parametrize("name", list(PATHOLOGIES))
def test_grading_finishes_in_bounded_time(runs, name, record_property):
    run = runs[name]
    record_property("grader_seconds", round(run.seconds, 2))
    limit = FULL_MARKS_LIMIT.get(name, PATHOLOGY_LIMIT)
    assert run.seconds <= limit, "grading %s took %.1f s (limit %.0f s)" % (name, run.seconds, limit)
    assert {t["tags"][0] for t in run.tests()} == set(stages_of(name)), "not every stage was graded"


def test_all_gradings_finish_in_bounded_time(gradings, record_property):
    record_property("grader_seconds_total", round(gradings[1], 2))
    assert gradings[1] <= TOTAL_LIMIT


@pytest.mark.parametrize("name", ZERO)
def test_misbehaving_program_scores_zero(runs, name):
    """Its own checks all fail; the other program is the reference and passes all of its."""
    run = runs[name]
    server_side = name.startswith("server-")
    for stage in STAGES:
        ours = [t for t in run.tests(stage) if is_server_check(t["number"]) == server_side]
        theirs = [t for t in run.tests(stage) if is_server_check(t["number"]) != server_side]
        assert ours, "%s: no %s checks in %s" % (name, "server" if server_side else "client", stage)
        scored = {t["number"]: t["score"] for t in ours if t["status"] != "failed" or t["score"]}
        assert not scored, "%s scored points in %s: %s" % (name, stage, scored)
        lost = {t["number"]: t["output"][:800] for t in theirs if t["status"] != "passed"}
        assert not lost, "%s: the reference %s lost checks:\n%s" % (
            name, "client" if server_side else "server", lost)
    assert run.status == 1, "the grader's exit status: %s" % run.status


@pytest.mark.parametrize("name", ZERO)
def test_basic_check_explains_the_failure(runs, name):
    run = runs[name]
    for stage in STAGES:
        number = basic_check(name, stage)
        assert number in [t["number"] for t in run.tests(stage)], "no check %s yet" % number
        output = run.output_of(number)
        for phrase in ["Expected:", "Got:", "Hint:"] + PATHOLOGIES[name]:
            assert phrase in output, "%s, check %s: %r missing from:\n%s" % (
                name, number, phrase, output)
        assert "Blocked by" not in output
        # The other checks of that program say which check blocked them, and run nothing.
        for test in run.tests(stage):
            if is_server_check(test["number"]) == name.startswith("server-") \
                    and test["number"] != number:
                assert "Blocked by check" in test["output"], (number, test)


@pytest.mark.parametrize("name", FULL_MARKS)
def test_otherwise_correct_program_scores_full_marks(runs, name):
    run = runs[name]
    lost = {n: run.output_of(n)[:800] for n in run.failed()}
    assert not lost, "%s lost checks:\n%s" % (name, lost)
    assert run.score == run.max_score > 0
    assert run.status == 0


@pytest.mark.parametrize("name", list(PATHOLOGIES))
def test_grader_does_not_crash(runs, name):
    """No internal error, and every failure is a check's own message, not a grader traceback."""
    run = runs[name]
    assert "INTERNALERROR" not in run.output, run.output[-3000:]
    assert run.status in (0, 1), "grader exit status %s:\n%s" % (run.status, run.output[-3000:])
    for test in run.tests():
        assert not GRADER_FRAME.search(test["output"]), (
            "check %s failed inside the grader's code:\n%s" % (test["number"], test["output"]))
    assert "+ Timeout +" not in run.output, "a check hit pytest-timeout's safety net"


def ours(process: str) -> bool:
    """Whether a process was started by this module's gradings (gradekit.started_by)."""
    return started_by(process, "%s=%s" % RUN_MARKER)


@pytest.mark.skipif(not LINUX, reason="reads /proc (Linux)")
def test_another_runs_processes_are_not_counted():
    """A process of another copy of these tests (the same mark in its command line,
    not our marker in its environment) is not ours; one with our marker is."""
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)", MARK]
    theirs_env = {k: v for k, v in os.environ.items() if k != RUN_MARKER[0]}
    theirs = subprocess.Popen(sleeper, env=theirs_env)
    mine = subprocess.Popen(sleeper, env=dict(os.environ, **{RUN_MARKER[0]: RUN_MARKER[1]}))
    try:
        def both_listed():
            # A child lists its own command line only once it has exec'd: until then
            # /proc shows the parent's. So wait (bounded) for both to have done so.
            found = {int(line.split(":", 1)[0]): line for line in processes_mentioning(MARK)}
            return found if theirs.pid in found and mine.pid in found else None
        listed = wait_until(both_listed, timeout=10) or {
            int(line.split(":", 1)[0]): line for line in processes_mentioning(MARK)}
        assert theirs.pid in listed and mine.pid in listed, listed
        assert not ours(listed[theirs.pid])
        assert ours(listed[mine.pid])
    finally:
        for sleeping in (theirs, mine):
            sleeping.kill()
            sleeping.wait(5)


def test_no_process_left_behind(gradings):
    """Nothing started from impls/pathological (programs, forked children) outlives grading.
    Only this run's processes count: another copy of the kit's tests may be running."""
    left = left_running(lambda: [p for p in processes_mentioning(MARK) if ours(p)],
                        timeout=LEFTOVER_POLL)
    assert left == [], "still running after all gradings:\n" + "\n".join(left)
