"""What the kit's own tests measure, shown at the end of every run (CI's log included).

A test calls report("...") with a number worth keeping (a wall time, the
mutation score); pytest prints all of them in a last section, "chat kit
measurements", whether the tests passed or not.
"""

import pytest

MEASUREMENTS: list[str] = []
SAFETY_NET = 600   # seconds: the most any one of the kit's tests may take (pytest-timeout)


def pytest_configure(config):
    # gradekit.stage_maximum reads the grader's @check marks: known here too.
    config.addinivalue_line("markers", "check(number, title, points, needs): a grader check")


def pytest_collection_modifyitems(items):
    """The outer safety net for the kit's own tests. (It is set here, not in
    pyproject.toml, so that a student's `pytest grader` shows no timeout banner;
    each grader check has its own 30 s limit, see grader/conftest.py.)"""
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(SAFETY_NET))


@pytest.fixture(scope="session")
def report():
    """report(line): show `line` in the run's closing summary."""
    return MEASUREMENTS.append


def pytest_terminal_summary(terminalreporter):
    if MEASUREMENTS:
        terminalreporter.section("chat kit measurements")
        for line in MEASUREMENTS:
            terminalreporter.write_line(line)
