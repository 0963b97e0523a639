"""One mistake costs only the checks about it.

Each fault below (planted in tests/impls/faulty, one CHATKIT_FAULT switch each,
where a student makes it) breaks ONE behaviour. Graded by the real grader on
all four stages, it must still be caught (the checks named fail), and it may
fail at most the stated number of checks and lose at most the stated points
over the whole grade: a check that merely passes through the broken behaviour
on its way to something else (asking GET_NAMES to see who holds a name,
expecting a refusal, saying EXIT to leave) must not fail because of it.

The bounds are the count of the checks whose behaviour the fault breaks: one
for a spacing mistake in NAMES (stage 2 judges the format), one per stage for a
mistake every stage repeats (the word ERROR is judged once in each stage that
introduces errors: 1.7, 2.11, 3.5).
"""

from collections import namedtuple

import pytest

from gradekit import IMPLS, grade_many, unexplained_failures
from verdicts import compare

FAULTY = IMPLS / "faulty"
WORKERS = 3

Bound = namedtuple("Bound", "fault checks points catches why")

BOUNDS = [
    Bound("names_space_after_each", 1, 1, ["2.9"],
          "'NAMES alice bob ' (a space after each name): only the format check"),
    Bound("names_unsorted", 1, 2, ["2.8"],
          "NAMES in the order taken: only the order check"),
    Bound("exit_keeps_connection", 2, 3, ["4.1", "4.12"],
          "BYE without the close: the close check, and the commands sent after EXIT, which "
          "a server that keeps reading still answers"),
    Bound("error_misspelt", 3, 5, ["1.7", "2.11", "3.5"],
          "'EROR' for 'ERROR': the one check of the word in each stage that introduces errors"),
    Bound("name_kept_after_close", 1, 2, ["4.5"],
          "a client that closes keeps its name: only the check about that"),
    Bound("text_stripped", 2, 3, ["3.2", "4.10"],
          "MSG text stripped: the exact-text check, and stage 4's messaging regression"),
    Bound("decode_each_chunk", 3, 3, ["2.17", "3.16", "4.14"],
          "each recv() chunk decoded: the split-character check of each stage that decodes"),
    Bound("taken_name_lowercase_error", 1, 2, ["2.11"],
          "'error: name taken' for one refusal: only stage 2's check of the word"),
    Bound("self_message_capitalised_error", 1, 1, ["3.5"],
          "'Error …' for a MSG to oneself: only stage 3's check of the word"),
    Bound("header_int_lenient", 1, 2, ["1.7"],
          "int() alone reads the header: only the bad-header check"),
    Bound("validates_only_renames", 1, 1, ["2.18"],
          "a first NAME is not validated: the word check does not count it again"),
]
BY_FAULT = {bound.fault: bound for bound in BOUNDS}


@pytest.fixture(scope="module")
def graded():
    """Every fault graded on all four stages, three gradings at a time."""
    jobs = [(FAULTY, (), {"CHATKIT_FAULT": bound.fault}) for bound in BOUNDS]
    return dict(zip(BY_FAULT, grade_many(jobs, workers=WORKERS)))


def lost_points(grade) -> int:
    return grade.max_score - grade.score


def test_bounds_are_planted():
    source = (FAULTY / "faulty_chat.py").read_text(encoding="utf-8")
    for bound in BOUNDS:
        assert 'FAULT == "%s"' % bound.fault in source or 'FAULT != "%s"' % bound.fault in source, \
            bound.fault
        assert len(bound.catches) <= bound.checks, bound


@pytest.mark.parametrize("fault", list(BY_FAULT))
def test_one_mistake_costs_only_its_own_checks(graded, fault):
    bound = BY_FAULT[fault]
    grade = graded[fault]
    failed = grade.failed()
    outputs = "\n\n".join("%s: %s" % (n, grade.output_of(n)[:4000]) for n in failed)
    assert set(bound.catches) <= set(failed), (
        "%s (%s) is no longer caught: expected %s to fail; failed: %s\n%s"
        % (fault, bound.why, ", ".join(bound.catches), ", ".join(failed) or "none", outputs))
    assert len(failed) <= bound.checks and lost_points(grade) <= bound.points, (
        "%s (%s) costs %d checks and %d points, more than its bound of %d checks and %d "
        "points; failed: %s\n%s" % (fault, bound.why, len(failed), lost_points(grade),
                                    bound.checks, bound.points, ", ".join(failed), outputs))
    unexplained = unexplained_failures(grade)
    assert not unexplained, "\n\n".join(unexplained)


def test_each_mistake_fails_the_same_checks_as_before(graded):
    """Each fault fails exactly the checks, over all four stages, that
    tests/verdicts.json stores for it, from the gradings above (tests/verdicts.py)."""
    problems = compare("tests/test_proportional.py",
                       {fault: grade.failed() for fault, grade in graded.items()},
                       shown=lambda fault, check: graded[fault].output_of(check))
    assert not problems, "\n".join(problems)


def test_measurements(graded, report):
    report("one mistake, its cost over all four stages (checks failed, points lost / bound):")
    for bound in BOUNDS:
        grade = graded[bound.fault]
        report("  %-24s %2d checks (≤%d)  %2d/%d points (≤%d)  %s" % (
            bound.fault, len(grade.failed()), bound.checks, lost_points(grade),
            grade.max_score, bound.points, " ".join(grade.failed())))
    assert all(grade.status == 1 for grade in graded.values())   # each lost points, and said so
