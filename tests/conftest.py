"""What the kit's own tests measure, shown at the end of every run (CI's log included).

A test calls report("...") with a number worth keeping (a wall time, the
mutation score); pytest prints all of them in a last section, "chat kit
measurements", whether the tests passed or not.
"""

import pytest

MEASUREMENTS: list[str] = []


@pytest.fixture(scope="session")
def report():
    """report(line): show `line` in the run's closing summary."""
    return MEASUREMENTS.append


def pytest_terminal_summary(terminalreporter):
    if MEASUREMENTS:
        terminalreporter.section("chat kit measurements")
        for line in MEASUREMENTS:
            terminalreporter.write_line(line)
