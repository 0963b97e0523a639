"""The skeletons in stages/: they run, and they leave each stage's new work to the student.

A stage's folder in stages/ holds only what the stage adds: its chat_server.py
and chat_client.py, and its modules, whose new capability is cut out and
replaced by numbered TODOs, each with a stand-in that keeps the program running.
It holds no answer of an earlier stage: a student starts it from their own
stage before (`python -m grader next`). So the kit as unpacked has stage 1 to
do and stages 2 to 4 not started; and each later skeleton is graded here as a
student who finished the stage before it meets it: started from the solution
of the stage before, as `python -m grader next --from` does. Graded (the real
grader, `pytest grader`, judged by its results.json), every skeleton must start,
listen and never crash; it scores zero in every stage (a stage's points reward
what its TODOs build) and passes its kept checks (what it carries over from
earlier stages); and the first check a student meets says "not implemented".
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

from gradekit import KIT, STAGES, grade, started_skeletons

sys.path.insert(0, str(KIT))
from grader import catalog  # noqa: E402
from grader.moving_on import missing_modules  # noqa: E402

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
def started(tmp_path_factory):
    """The skeletons as a student meets each: stage 1 as unpacked, every later stage
    started from the solution of the stage before it (gradekit.started_skeletons)."""
    impl = started_skeletons(tmp_path_factory.mktemp("started"))
    for stage in STAGES:
        assert missing_modules(impl / stage) == [], stage
    return impl


@pytest.fixture(scope="module")
def graded(started):
    """All four skeletons graded once, each with the stages before it done."""
    return grade(started, limit=2 * GRADING_LIMIT)


@pytest.fixture(scope="module")
def unpacked():
    """The kit's stages/ graded as a student does right after unpacking the kit."""
    return grade(STAGES_DIR, limit=2 * GRADING_LIMIT)


def test_the_kit_as_unpacked_starts_at_stage_1(unpacked):
    """Stage 1 is there to do; stages 2 to 4 are not started, each of their checks says
    how to start them, and the grader says which stage the student is on."""
    assert unpacked.score == 0 and unpacked.max_score > 0
    first, *later = STAGES
    assert missing_modules(STAGES_DIR / first) == []
    assert "You are on stage %s." % first in unpacked.output, unpacked.output[-2000:]
    for stage in later:
        assert missing_modules(STAGES_DIR / stage), stage
        tests = unpacked.tests(stage)
        assert tests and all("is not started" in t["output"] and "python -m grader next"
                             in t["output"] for t in tests), stage
        assert "  · not started: its %d checks are not run" % len(tests) in unpacked.output


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_folder_holds_no_answer_of_an_earlier_stage(stage):
    """What a stage builds on is the student's own: its folder in the kit holds only
    its own programs and the modules it adds, none of an earlier stage's solution."""
    earlier = {path.name for before in STAGES[:STAGES.index(stage)]
               for path in (SOLUTIONS / before).glob("*.py")} - set(PROGRAMS)
    own = {path.name for path in (STAGES_DIR / stage).glob("*.py")}
    assert not own & earlier, "stages/%s holds %s" % (stage, sorted(own & earlier))


def python_files():
    return [(stage, path.name) for stage in STAGES
            for path in sorted((STAGES_DIR / stage).glob("*.py"))]


@pytest.mark.parametrize("stage, name", python_files())
def test_skeleton_compiles(stage, name, tmp_path):
    py_compile.compile(str(STAGES_DIR / stage / name), cfile=str(tmp_path / "out.pyc"),
                       doraise=True)


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("stage", STAGES)
def test_skeleton_runs_from_its_own_folder(started, stage, program):
    """`import protocol` must work from inside the stage folder too (docs/students.md § Running)."""
    done = subprocess.run([sys.executable, program, "--help"], cwd=started / stage,
                          env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("stage", STAGES)
def test_skeleton_runs_next_to_protocol(started, stage, program, tmp_path):
    """A hand-in of the stage folders plus protocol.py in one folder finds protocol.py
    (and todo.py, the stand-ins' helper)."""
    shutil.copytree(started / stage, tmp_path / stage)
    for name in ("protocol.py", "todo.py"):
        shutil.copy(KIT / name, tmp_path / name)
    done = subprocess.run([sys.executable, str(tmp_path / stage / program), "--help"],
                          cwd=tmp_path, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("stage", STAGES)
def test_skeleton_refuses_a_port_out_of_range_in_one_line(started, stage, program):
    done = subprocess.run([sys.executable, str(started / stage / program), "--port", "99999"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert [line for line in done.stderr.splitlines() if "error:" in line] == [
        "%s: error: argument --port: 99999 is not a port number (0 to 65535)" % program]


def todo_numbers(path):
    text = path.read_text(encoding="utf-8")
    return [int(k) for k in re.findall(r"^\s*# TODO \d+\.(\d+)\b", text, re.MULTILINE)]


@pytest.mark.parametrize("stage", STAGES)
def test_todos_come_in_reading_order(stage):
    """Within a stage, each file's TODO numbers run in file order, and each file's TODOs
    follow on from the last file's: a student reads them 1, 2, 3 ... file by file."""
    per_file = [numbers for numbers in (todo_numbers(path) for path in
                                        sorted((STAGES_DIR / stage).glob("*.py"))) if numbers]
    seen = [n for numbers in sorted(per_file) for n in numbers]
    assert seen and seen == sorted(seen), "%s: TODOs in the order %s" % (stage, per_file)


@pytest.mark.parametrize("stage", STAGES)
def test_todos_are_numbered_for_their_stage_and_point_to_the_readme(stage):
    """'# TODO 2.1: ...' blocks: numbered within their stage, each naming a section of docs/students.md."""
    numbers = set()
    for program in sorted(path.name for path in (STAGES_DIR / stage).glob("*.py")):
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


@pytest.mark.parametrize("stage, name", python_files())
def test_a_file_without_todos_is_the_solutions_own(stage, name):
    """A skeleton's file with no TODO (a stage's chat_server.py from stage 2 on, say) is
    the solution's, byte for byte: the skeleton differs only where the student works."""
    if not todo_numbers(STAGES_DIR / stage / name):
        assert filecmp.cmp(STAGES_DIR / stage / name, SOLUTIONS / stage / name, shallow=False)


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
