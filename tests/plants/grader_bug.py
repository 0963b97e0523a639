"""A pytest plugin that plants a bug in the grader itself, for tests/test_grader.py.

Loaded with `-p grader_bug` (tests/plants on PYTHONPATH): every check that takes a
name through grader.chat.named() then hits a TypeError inside the grader, as a
real bug of the grader would. The student must read one plain line saying so,
never the grader's traceback, and the run must go on to the score table.
"""


def broken_named(server, name, label=None):
    server.connect(name).send("NAME " + name)   # a conversation so far, then the bug
    return "a" + len   # a TypeError, raised inside the grader's own code


def pytest_collection_modifyitems(items):
    for item in items:
        if hasattr(item.module, "named"):
            item.module.named = broken_named
