"""How a check is declared: its number, its title, its points, what it tests and needs.

    @check(3, "Renaming releases the old name", points=2)
    def test_rename_releases_old_name(server): ...

    @check(13, "A reader that lags behind gets every message", needs=test_slow_reader)
    @check(11, "Naming still works", needs=ANSWERING)
    @check(21, "Client frames non-ASCII text", tests="client")
    @check(12, "The idle server uses little CPU", fresh_server=True)
    @check(11, "Naming still works", kept=True)

The number is local to the stage (the stage is the one whose declaration names
the module, grader/stages.py, or comes from a `stage` parameter), so this is
check 2.3 in test_2_naming.py. Numbers are unique within a stage; client checks
declare 20, 21, ... and follow the stage's server checks (grader/catalog.py).
`tests` says which program the check judges: "server" (the default) or "client".

A check earns its points in the stage that builds what it checks. `kept=True`
says it checks what an earlier stage built (naming, in stage 3): it runs, and a
failure shows as a regression, but it scores no points here. A check that runs
in several stages is kept in all but the first (grader/catalog.py).

Like check50's dependencies, a check `needs` another check of its stage, named
by its test function, which must run before it (an unknown or later one stops the
grader before it starts); if that one failed, this one fails at once with "Blocked
by …" instead of waiting out its own timeouts. By default a check needs the
stage's basic check of its program (its first server check, or its first client check);
`needs=None` needs nothing; `needs=ANSWERING` needs only a server that answers:
it is blocked when the stage's basic check failed before the server answered
anything at all. The grader (grading.py, Grader.blocker) is the one place that
decides, and words, "Blocked by".

A server check may be given the server of the check before it, when that one passed
and left the server as a fresh one would be (serverside.py § one server for several
checks). `fresh_server=True` says the check always gets a server of its own: it judges
the server's start-up, its CPU, how it stalls or how it ends. A stage's first server
check always gets one.
"""

import pytest

BASIC = "<the stage's basic check>"
ANSWERING = "<a server that answers>"


def check(number: int, title: str, points: int = 1, needs=BASIC, tests: str = "server",
          fresh_server: bool = False, kept: bool = False):
    """Mark a test function as a scored check of the grader."""
    if tests not in ("server", "client"):
        raise ValueError("check %d: tests= is 'server' or 'client', not %r" % (number, tests))
    if callable(needs):
        needs = needs.__name__   # by reference: the check whose test function this is
    return pytest.mark.check(number=number, title=title, points=points, needs=needs,
                             tests=tests, fresh_server=fresh_server, kept=kept)
