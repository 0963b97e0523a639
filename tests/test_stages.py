"""The stages are declared once, and the checks by name: what reads the declarations.

* grader/stages.py declares each stage; how a command line names a stage, the
  check labels and the stages' order come from it.
* grader/catalog.py reads the @check marks: numbers (client checks after the
  server checks, however many there are), points (a kept check earns none), and
  the declarations' problems, which stop the grader before it runs (a `needs=`
  naming an unknown check, or one that runs later; two checks with one number).
  Shown both on made-up declarations and on a copy of the kit's grader whose
  check module gets a wrong check, run as a teacher would run it.
* The docs state no total the catalog does not give.
"""

import re
import shutil
import subprocess
import sys

import pytest

from gradekit import KIT, STAGES

sys.path.insert(0, str(KIT))
from grader import catalog  # noqa: E402
from grader.checks import BASIC  # noqa: E402
from grader.stages import DECLARED, label, stages_named  # noqa: E402

FIRST = DECLARED[0].folder


def declared(number, function, needs=BASIC, tests="server", stage=FIRST, points=1):
    return catalog.Declared(stage, number, "a check", points, points, False, needs, tests,
                            function, False)


def test_the_kits_checks_are_declared_rightly():
    assert catalog.problems() == []


def test_a_stage_is_named_by_its_folder_number_or_name():
    for stage in DECLARED:
        for name in (stage.folder, str(stage.number), stage.name):
            assert stages_named([name]) == [stage.folder]
    assert stages_named([",".join(reversed(STAGES))]) == STAGES   # in the course's order
    with pytest.raises(ValueError, match="no such stage"):
        stages_named(["0_nothing"])


def test_labels_come_from_the_declared_numbers():
    for stage in DECLARED:
        assert label(stage.folder, 7) == "%d.7" % stage.number


def test_problems_name_the_wrong_declarations():
    found = [declared(1, "test_first"),
             declared(2, "test_second", needs="test_third"),   # later
             declared(3, "test_third", needs="test_nowhere"),   # unknown
             declared(3, "test_twin")]                          # the same number
    lines = catalog.problems(found)
    assert len(lines) == 3, lines
    assert any("needs test_third, which is check %s" % label(FIRST, 3) in line
               and "only a check that runs before it" in line for line in lines), lines
    assert any("needs test_nowhere, which is not a check of stage %s" % FIRST in line
               for line in lines), lines
    assert any("test_third and test_twin both have that number" in line for line in lines)


def test_every_stage_earns_points_and_kept_checks_earn_none():
    checks = catalog.declared()
    for stage in STAGES:
        assert catalog.stage_maximum(stage)[0] > 0, stage
    kept = [c for c in checks if c.kept]
    assert kept and all(c.points == 0 and c.declared_points > 0 for c in kept)
    # A check that runs in several stages (the client checks: one function, a stage
    # parameter) earns its points in the first of them only.
    by_function = {}
    for check in (c for c in checks if c.tests == "client"):
        by_function.setdefault(check.function, []).append(check)
    shared = [runs for runs in by_function.values() if len(runs) > 1]
    assert shared
    for runs in shared:
        first, *later = sorted(runs, key=lambda c: STAGES.index(c.stage))
        assert all(c.kept for c in later), [c.label for c in later]


# --- on a copy of the kit's grader, as a teacher changes it ----------------------------

@pytest.fixture
def kit_copy(tmp_path):
    """The grader and what it needs to run, copied: the copy's check modules may change."""
    for name in ("grader", "protocol.py", "pyproject.toml"):
        source = KIT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / name)
    return tmp_path


def add_to_first_stage(kit, code):
    module = kit / "grader" / (DECLARED[0].checks + ".py")
    module.write_text(module.read_text(encoding="utf-8") + "\n\n" + code, encoding="utf-8")


def collect(kit):
    return subprocess.run([sys.executable, "-m", "pytest", "grader", "--impl",
                           str(KIT / "solutions"), "--collect-only", "-q",
                           "-p", "no:cacheprovider"],
                          cwd=kit, capture_output=True, text=True, timeout=120)


def test_a_check_that_needs_an_unknown_check_stops_the_grader(kit_copy):
    add_to_first_stage(kit_copy, '''
@check(18, "A check a teacher adds", needs="test_no_such_check")
def test_teachers_check(server):
    pass
''')
    done = collect(kit_copy)
    assert done.returncode == 4, done.stdout + done.stderr   # pytest's usage error
    assert ("check %s (test_teachers_check) needs test_no_such_check, which is not a check "
            "of stage %s" % (label(FIRST, 18), FIRST)) in done.stderr, done.stderr


def test_a_check_that_needs_a_later_check_stops_the_grader(kit_copy):
    add_to_first_stage(kit_copy, '''
@check(18, "A check a teacher adds", needs="test_later")
def test_teachers_check(server):
    pass


@check(19, "Another one")
def test_later(server):
    pass
''')
    done = collect(kit_copy)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "a check can need only a check that runs before it" in done.stderr, done.stderr


def test_client_checks_follow_a_stage_with_many_server_checks(kit_copy):
    """Server checks 20 and 21 in a stage: its client checks become N.30 on, and the
    grader runs the stage with every label its own."""
    add_to_first_stage(kit_copy, '''
@check(20, "A twentieth server check")
def test_twentieth(server):
    pass


@check(21, "A twenty-first", needs=test_twentieth)
def test_twenty_first(server):
    pass
''')
    done = subprocess.run(
        [sys.executable, "-c", "from grader import catalog\n"
         "print(catalog.problems())\n"
         "print(' '.join(c.label + ':' + c.tests for c in catalog.declared()"
         " if c.stage == %r))" % FIRST],
        cwd=kit_copy, capture_output=True, text=True, timeout=60)
    problems, labels = done.stdout.splitlines()
    assert problems == "[]", done.stdout + done.stderr
    pairs = [pair.split(":") for pair in labels.split()]
    server = [int(n.split(".")[1]) for n, tests in pairs if tests == "server"]
    client = [int(n.split(".")[1]) for n, tests in pairs if tests == "client"]
    assert {20, 21} <= set(server) and min(client) == 30, labels
    assert len({n for n, _ in pairs}) == len(pairs), labels
    listed = collect(kit_copy)
    assert listed.returncode == 0, listed.stdout + listed.stderr


def test_the_classroom_workflow_has_a_step_per_declared_stage():
    """classroom/classroom.yml is what the handout makes of it for every stage declared:
    one grading step and one reporter line each (a teacher's own stage gets its own)."""
    from grader.teach.handout import WORKFLOW, workflow_for
    text = WORKFLOW.read_text(encoding="utf-8")
    assert workflow_for(text, [stage.number for stage in DECLARED]) == text
    for stage in DECLARED:
        assert "- name: Stage %d (%s)\n      id: stage%d\n" % (
            stage.number, stage.title, stage.number) in text


# --- the docs --------------------------------------------------------------------------

DOCS = [KIT / "README.md", *sorted((KIT / "docs").glob("*.md"))]
FRACTION = re.compile(r"(?<![\d.])(\d+)/(\d+)(?![\d.])")


def totals():
    """Every total a doc may state: a stage's, or the whole course's."""
    points = [catalog.stage_maximum(stage)[0] for stage in STAGES]
    return set(points) | {sum(points)}


def test_the_docs_state_only_the_totals_the_grader_gives():
    """A score a doc shows ('27/27', 'n/87') is out of a stage's or the course's total as
    the grader declares it now: a new check or stage changes the catalog, and this test
    names every figure that went stale."""
    allowed, stale = totals(), []
    for doc in DOCS:
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            for got, out_of in FRACTION.findall(line):
                if int(out_of) >= 10 and int(got) <= int(out_of) and int(out_of) not in allowed:
                    stale.append("%s:%d: %s/%s" % (doc.name, number, got, out_of))
    assert not stale, "figures no grading gives now (totals: %s):\n%s" % (
        sorted(allowed), "\n".join(stale))
