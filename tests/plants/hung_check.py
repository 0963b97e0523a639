"""A pytest plugin that makes one check hang, for tests/test_grader.py.

Loaded with `-p hung_check` (tests/plants on PYTHONPATH): check 1.2, after its
own exchange, waits without any bound for the server to say something it never
says, as a check would whose bounded waits all ran late. Its time limit is cut to
HANG_LIMIT seconds. The student must read that the check ran out of time, with the
conversation so far; the run must go on to the score table and the results file,
and leave no program running, on every system (the grader stops it the same way
everywhere).
"""

import functools
import socket

import pytest

HANG_LIMIT = 3   # seconds


def hang_after(check):
    @functools.wraps(check)
    def hung(**fixtures):
        check(**fixtures)
        waiting = socket.create_connection(("127.0.0.1", fixtures["server"].port))
        waiting.settimeout(None)
        waiting.recv(1)    # no bound: returns only when the server is gone
    return hung


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    for item in items:
        if item.name == "test_echo_is_byte_exact":
            item.obj = hang_after(item.obj)
            item.add_marker(pytest.mark.timeout(HANG_LIMIT), append=False)
