"""The skeletons in stages/: they run, and they leave each stage's new work to the student.

A stage's skeleton is its solution with the stage's new capability cut out and
replaced by numbered TODOs, each with a stand-in that keeps the program running.
Graded as handed out (the real grader, `pytest grader`, judged by its
results.json), every skeleton must start, listen and never crash; it scores
zero in every stage (a stage's points reward what its TODOs build) and passes
its kept checks (what it carries over from earlier stages); and the first check
a student meets says "not implemented".
"""

import filecmp
import itertools
import os
import py_compile
import re
import shutil
import subprocess
import sys

import pytest

from gradekit import KIT, STAGES, grade

sys.path.insert(0, str(KIT))
from grader import catalog  # noqa: E402

STAGES_DIR = KIT / "stages"
SOLUTIONS = KIT / "solutions"
PROGRAMS = ["chat_server.py", "chat_client.py"]
GRADING_LIMIT = 60   # seconds: grading all four skeletons must take at most this

# What each skeleton leaves to the student is what its stage earns points for: the checks
# the grader does not declare kept (grader/catalog.py). The kept checks are what a skeleton
# carries over from the stages before it (the client in stages 2-3, naming and messaging
# in stage 4, clients that vanish), and they must all pass.
DECLARED = {c.label: c for c in catalog.declared()}


# Checks in which the skeleton's server is stopped on purpose (Ctrl-C, check 4.8): its exit
# and the traceback of the TODO not done yet are that check's own report, not a crash.
STOPPED_ON_PURPOSE = {"4.8"}

NOT_IMPLEMENTED = "not implemented"          # what every skeleton's stand-ins say
SERVER_DID_NOT_RUN = ["exited with status", "did not start listening"]
GRADER_CRASH = [
    "Traceback",                             # a Python traceback, the grader's or a program's
    "INTERNALERROR",                         # pytest itself failed
    re.compile(r"grader[\\/]\w+\.py:\d+"),   # pytest's report of an exception in a check
]


def is_new(stage, test):
    """A check of what the stage's own TODOs build: it earns points in this stage."""
    return not DECLARED[test["number"]].kept


def is_server_check(test):
    return DECLARED[test["number"]].tests == "server"


def first_checks_met(stage, tests):
    """The first new check of each program: what a student runs into first."""
    firsts = []
    for program in ("server", "client"):
        group = [t for t in tests if is_new(stage, t) and DECLARED[t["number"]].tests == program]
        if group:
            firsts.append(min(group, key=lambda t: DECLARED[t["number"]].number))
    return firsts


@pytest.fixture(scope="module")
def graded():
    """All four skeletons graded once, as a student would right after unpacking the kit."""
    return grade(STAGES_DIR, limit=2 * GRADING_LIMIT)


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("stage", STAGES)
def test_skeleton_compiles(stage, program, tmp_path):
    py_compile.compile(str(STAGES_DIR / stage / program), cfile=str(tmp_path / "out.pyc"),
                       doraise=True)


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("stage", STAGES)
def test_skeleton_runs_from_its_own_folder(stage, program):
    """`import protocol` must work from inside the stage folder too (docs/students.md § Running)."""
    done = subprocess.run([sys.executable, program, "--help"], cwd=STAGES_DIR / stage,
                          env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("stage", STAGES)
def test_skeleton_runs_next_to_protocol(stage, program, tmp_path):
    """A hand-in of the stage folders plus protocol.py in one folder finds protocol.py."""
    shutil.copytree(STAGES_DIR / stage, tmp_path / stage)
    shutil.copy(KIT / "protocol.py", tmp_path / "protocol.py")
    done = subprocess.run([sys.executable, str(tmp_path / stage / program), "--help"],
                          cwd=tmp_path, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("stage", STAGES)
def test_skeleton_refuses_a_port_out_of_range_in_one_line(stage, program):
    done = subprocess.run([sys.executable, str(STAGES_DIR / stage / program), "--port", "99999"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert [line for line in done.stderr.splitlines() if "error:" in line] == [
        "%s: error: argument --port: 99999 is not a port number (0 to 65535)" % program]


@pytest.mark.parametrize("stage", STAGES)
def test_todos_come_in_reading_order(stage):
    """Within a stage, TODO numbers run in file order, the server's first, then the
    client's (a TODO in two places, "also in ...", may come twice)."""
    seen = []
    for program in PROGRAMS:
        text = (STAGES_DIR / stage / program).read_text(encoding="utf-8")
        seen += [int(k) for k in re.findall(r"^\s*# TODO \d+\.(\d+)\b", text, re.MULTILINE)]
    assert seen and seen == sorted(seen), "%s: TODOs in the order %s" % (stage, seen)


@pytest.mark.parametrize("stage", STAGES)
def test_todos_are_numbered_for_their_stage_and_point_to_the_readme(stage):
    """'# TODO 2.1: ...' blocks: numbered within their stage, each naming a section of docs/students.md."""
    numbers = set()
    for program in PROGRAMS:
        lines = (STAGES_DIR / stage / program).read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            todo = re.match(r"\s*# TODO (\d+)\.(\d+)\b", line)
            if not todo:
                continue
            block = [line] + list(itertools.takewhile(
                lambda following: re.match(r"\s*#   ", following), lines[i + 1:]))
            assert todo.group(1) == stage[0], "%s:%d: %s" % (program, i + 1, line)
            assert "docs/students.md §" in " ".join(block), "%s:%d: %s" % (program, i + 1, line)
            numbers.add(int(todo.group(2)))
    assert numbers and numbers == set(range(1, len(numbers) + 1)), sorted(numbers)  # 1, 2, ...


@pytest.mark.parametrize("stage", ["2_naming", "3_messaging"])
def test_stages_without_client_work_hand_out_the_complete_client(stage):
    assert filecmp.cmp(STAGES_DIR / stage / "chat_client.py",
                       SOLUTIONS / stage / "chat_client.py", shallow=False)


def test_grading_the_skeletons_is_bounded(graded, report):
    report("grader wall time on the skeletons: %.1f s" % graded.seconds)
    assert graded.seconds <= GRADING_LIMIT, "grading the skeletons took %.1f s" % graded.seconds
    assert graded.status != 0   # checks failed, and the grader says so
    assert {t["tags"][0] for t in graded.tests()} == set(STAGES)


@pytest.mark.parametrize("stage", STAGES)
def test_an_untouched_skeleton_scores_nothing(graded, stage):
    """Every point of a stage rewards what its TODOs build: the skeleton, with the stages
    before it done, scores 0 of a maximum that is not 0."""
    tests = graded.tests(stage)
    assert any(is_new(stage, t) for t in tests), "%s has no check of its own" % stage
    assert sum(t["max_score"] for t in tests) > 0
    scored = {t["number"]: t["score"] for t in tests if t["score"]}
    assert not scored, "the %s skeleton scores on checks left to the student: %s" % (stage, scored)


@pytest.mark.parametrize("stage", STAGES)
def test_carried_over_checks_pass(graded, stage):
    """What a skeleton keeps from earlier stages works: its kept checks all pass (and a
    kept check is worth no points: it checks an earlier stage's work)."""
    carried = [t for t in graded.tests(stage) if not is_new(stage, t)]
    assert all(t["max_score"] == 0 for t in carried), carried
    failed = {t["number"]: t["output"][:800] for t in carried if t["status"] != "passed"}
    assert not failed, "the %s skeleton fails checks it should pass: %s" % (stage, failed)


def test_later_stages_keep_the_client_checks(graded):
    """The client checks every stage runs earn their points in the first stage only."""
    for stage in STAGES[1:]:
        assert any(not is_new(stage, t) and not is_server_check(t)
                   for t in graded.tests(stage)), stage


@pytest.mark.parametrize("stage", STAGES)
def test_failures_come_from_checks_not_crashes(graded, stage):
    """Every failure is a check's own report (or 'blocked'), never a crash of the grader
    or of the skeleton."""
    assert "INTERNALERROR" not in graded.output
    for test in graded.tests(stage):
        if test["status"] != "failed" or test["max_score"] == 0:   # max 0: skipped here
            continue
        output = test["output"]
        assert output.startswith("Blocked by check") or (
            "Expected:" in output and "Got:" in output), (test["number"], output)
        if test["number"] in STOPPED_ON_PURPOSE:
            continue
        for crash in GRADER_CRASH:
            found = crash.search(output) if isinstance(crash, re.Pattern) else crash in output
            assert not found, "%s: %s" % (test["number"], output)


@pytest.mark.parametrize("stage", STAGES)
def test_first_checks_say_not_implemented(graded, stage):
    """The check a student meets first shows the stand-in's 'not implemented' (in the reply
    or on the program's standard error), and the server did start and keep running."""
    for test in first_checks_met(stage, graded.tests(stage)):
        output = test["output"]
        assert NOT_IMPLEMENTED in output, (test["number"], output)
        if is_server_check(test):
            for words in SERVER_DID_NOT_RUN:
                assert words not in output, (test["number"], output)


@pytest.mark.parametrize("stage", STAGES)
def test_servers_never_stop(graded, stage):
    for test in graded.tests(stage):
        if is_server_check(test) and test["number"] not in STOPPED_ON_PURPOSE:
            for words in SERVER_DID_NOT_RUN:
                assert words not in test["output"], (test["number"], test["output"])
