"""What the kit's own tests measure, shown at the end of every run (CI's log included).

A test calls report("...") with a number worth keeping (a wall time, the
mutation score); pytest prints all of them in a last section, "chat kit
measurements", whether the tests passed or not. The section ends with the wall
time of each test file (set-up, test and teardown), longest first: CI must
stay under 15 minutes, and this says where they go.
"""

import sys
from collections import defaultdict

import pytest

MEASUREMENTS: list[str] = []
SECONDS_PER_FILE: dict[str, float] = defaultdict(float)
# Seconds the longest of the kit's tests may take (pytest-timeout): a guard against a
# hang, never a measure. The longest, test_mutants' 85 gradings, takes 145 s on Linux
# (2 cores); elsewhere starting programs costs more (under Wine, 4 times as much), and
# nothing has been measured on a Windows or macOS machine yet.
SAFETY_NET = 600 if sys.platform.startswith("linux") else 1800


def pytest_configure(config):
    # gradekit.stage_maximum reads the grader's @check marks: known here too.
    config.addinivalue_line("markers", "check(number, title, points, needs): a grader check")


def pytest_collection_modifyitems(items):
    """The outer safety net for the kit's own tests. (It is set here, not in
    pyproject.toml, so that a student's `pytest grader` shows no timeout banner;
    each grader check has its own 30 s limit, see grader/timer.py.)"""
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(SAFETY_NET))


@pytest.fixture(scope="session")
def report():
    """report(line): show `line` in the run's closing summary."""
    return MEASUREMENTS.append


def pytest_runtest_logreport(report):
    SECONDS_PER_FILE[report.nodeid.split("::")[0]] += report.duration


def pytest_terminal_summary(terminalreporter):
    if MEASUREMENTS or SECONDS_PER_FILE:
        terminalreporter.section("chat kit measurements")
        for line in MEASUREMENTS:
            terminalreporter.write_line(line)
        files = sorted(SECONDS_PER_FILE.items(), key=lambda item: -item[1])
        total = sum(SECONDS_PER_FILE.values())
        terminalreporter.write_line("wall time per test file (%.0f s in all): %s" % (
            total, ", ".join("%s %.0f s" % (name.rsplit("/", 1)[-1], seconds)
                             for name, seconds in files)))
