"""The grading's state and order: the checks, their statuses, blocking, sharing, spares.

One Grader per run, kept in pytest's config.stash; conftest.py's hooks hand it
pytest's items and reports, and it decides. It imports no pytest: it reads only
what pytest's objects carry (a node id, a marker, a report's outcome and text).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from grader import catalog, naming
from grader.checks import ANSWERING, BASIC
from grader.clientside import spare_client
from grader.users import release_user
from grader.moving_on import missing_modules, not_started_message
from grader.programs import Sandbox
from grader.serverside import spare_server
from grader.stages import STAGES, label, order, stage_of_module
from grader.wire import OWN_ERROR, CheckFailed


@dataclass
class Check:
    stage: str
    number: int
    title: str
    points: int                 # what it earns here: 0 for a kept check (catalog.py)
    needs: str | None           # a test function's name, BASIC, ANSWERING or None
    tests: str                  # "server" or "client"
    function: str               # its test function's name
    doc: str
    fresh_server: bool = False  # never given an earlier check's server (checks.py)
    kept: bool = False          # checks what an earlier stage built: no points here
    status: str = "not run"     # passed, failed, skipped
    output: str = ""
    heard: bool = False         # the program under test answered something during it

    @property
    def label(self) -> str:
        return label(self.stage, self.number)


class Grader:
    """Collects the checks, enforces their dependencies, and keeps the score."""

    def __init__(self, impl: Path, stages: list[str], results_path: Path | None,
                 classroom_path: Path | None = None) -> None:
        self.impl = impl
        self.run_from = impl      # where the programs are started from (a copy, if need be)
        self.who = ""             # who the programs run as, when the grader runs as root
        self.sandbox: Sandbox | None = None   # the programs (set in pytest_configure)
        self.stages = stages
        self.results_path = results_path
        self.classroom_path = classroom_path
        self.checks: dict[str, Check] = {}       # by pytest node id
        self.declared = {(c.stage, c.function): c for c in catalog.declared()}
        self.starts_spares = True   # False: attached (attach.py), nothing is started ahead
        self.spares_unwanted: dict[str, set[Path]] = {}   # see _spares_unwanted
        self.shares_server: dict[str, bool] = {}   # see _sharing
        self.keeps_server: dict[str, bool] = {}
        self.started = time.time()
        self.not_started: dict[str, list[str]] = {}   # stage -> the modules its folder lacks

    def find_stages_not_started(self) -> None:
        """The stages whose folder lacks the code of the stage before it (grader/moving_on.py):
        their checks are not run, and say how to start the stage."""
        for stage in self.stages:
            folder = self.impl / stage
            missing = missing_modules(folder) if folder.is_dir() else []
            if missing:
                self.not_started[stage] = missing

    # --- collection: find the checks, keep the chosen stages, order them ----
    def collect(self, items: list) -> tuple[list, list]:
        """The items to run, in order (the checks by stage and number, then any other
        test), and the checks left out (of a stage not chosen)."""
        keep, drop = [], []
        for item in items:
            marker = item.get_closest_marker("check")
            if marker is None:
                keep.append(item)
                continue
            check = self._check_of(item, marker)
            if check.stage not in self.stages:
                drop.append(item)
                continue
            self.checks[item.nodeid] = check
            keep.append(item)
        order = {id(i): n for n, i in enumerate(keep)}
        keep.sort(key=lambda i: self._sort_key(i, order[id(i)]))
        return keep, drop

    def deselected(self, items) -> None:
        """Checks left out (by -k, or by --stage) are neither run nor scored."""
        for item in items:
            self.checks.pop(item.nodeid, None)

    def _check_of(self, item, marker) -> Check:
        """The check as the catalog numbers and scores it (grader/catalog.py)."""
        params = getattr(item, "callspec", None)
        stage = params.params.get("stage") if params else None
        stage = stage or stage_of_module(item.module.__name__)
        declared = self.declared[(stage, item.function.__name__)]
        doc = " ".join((item.function.__doc__ or "").split())
        return Check(stage, declared.number, declared.title, declared.points, declared.needs,
                     declared.tests, declared.function, doc,
                     fresh_server=declared.fresh_server, kept=declared.kept)

    def _sort_key(self, item, position):
        check = self.checks.get(item.nodeid)
        if check is None:
            return (len(STAGES) + 1, 0, position)
        return (order(check.stage), check.number, position)

    def plan(self, items: list, runs: bool) -> None:
        """Once the checks to run are known (`items`, in their order): start each stage's
        first server and client now, all at once (programs.py § spares), so that a program
        that never starts costs its 5 s once per run, not once per stage. (Not when
        nothing `runs`: --collect-only.)

        The checks of a stage not started are not run at all: each is scored 0 with the
        reason (how to start the stage), and pytest shows no failure for each of them."""
        self._park_stages_not_started(items)
        order = [item.nodeid for item in items if item.nodeid in self.checks]
        self.spares_unwanted = self._spares_unwanted(order)
        self.shares_server, self.keeps_server = self._sharing(order)
        if not runs:
            return
        for stage in self.stages if self.starts_spares else []:
            if stage in self.not_started:
                continue   # nothing of it runs
            tested = {c.tests for c in self.checks.values() if c.stage == stage}
            for script, program, start in (("chat_server.py", "server", spare_server),
                                           ("chat_client.py", "client", spare_client)):
                path = self.run_from / stage / script
                if path.is_file() and program in tested:
                    self.sandbox.keep_spare(path, start(path, self.sandbox))

    def _park_stages_not_started(self, items: list) -> None:
        parked = {item.nodeid for item in items if item.nodeid in self.checks
                  and self.checks[item.nodeid].stage in self.not_started}
        for nodeid in parked:
            check = self.checks[nodeid]
            check.status = "failed"
            check.output = not_started_message(check.stage, self.not_started[check.stage])
        items[:] = [item for item in items if item.nodeid not in parked]

    def _spares_unwanted(self, order: list[str]) -> dict[str, set[Path]]:
        """For each check (by node id, in the order they run), the programs no check
        after it starts: that check starts no spare of them (programs.py § spares), so
        the last check of each stage's server and client leaves no spare to stop unused."""
        scripts = {nodeid: self.run_from / c.stage / ("chat_%s.py" % c.tests)
                   for nodeid, c in self.checks.items()}
        every, unwanted, needed = set(scripts.values()), {}, set()
        for nodeid in reversed(order):
            unwanted[nodeid] = every - needed
            needed.add(scripts[nodeid])
        return unwanted

    def _sharing(self, order: list[str]) -> tuple[dict[str, bool], dict[str, bool]]:
        """Which server checks may be given the server of the stage's server check
        before them (serverside.py § one server for several checks): not the first,
        nor one marked fresh_server; and, for each, whether the next one may."""
        shares, keeps, previous = {}, {}, {}
        for nodeid in order:
            check = self.checks[nodeid]
            if check.tests != "server":
                continue
            shares[nodeid] = check.stage in previous and not check.fresh_server
            keeps[nodeid] = False
            if check.stage in previous:
                keeps[previous[check.stage]] = shares[nodeid]
            previous[check.stage] = nodeid
        return shares, keeps

    def before(self, nodeid: str) -> None:
        """Before a check: which spares it leaves unstarted, whether its server may be kept
        for the next check, and whether it may have the one the check before it left."""
        self.sandbox.unwanted = self.spares_unwanted.get(nodeid, set())
        self.sandbox.keeps_server = self.keeps_server.get(nodeid, False)
        check = self.checks.get(nodeid)
        if check is not None and check.tests == "server" and \
                not self.shares_server.get(nodeid, False):
            self.sandbox.discard_shared(self.run_from / check.stage / "chat_server.py")

    # --- running: a check whose prerequisite failed is not run --------------
    def blocker(self, check: Check) -> str | None:
        """Why `check` can't be run (checks.py: what it needs failed), or None. The one
        place where "Blocked by" is decided and worded."""
        if check.needs is None:
            return None
        if check.needs == ANSWERING:
            basic = self._basic(check.stage, "server")
            if basic is None or basic.status != "failed" or basic.heard:
                return None
            return ("Blocked by check %s (%s), which failed before the server answered "
                    "anything: fix that one first.\nThis check needs a server that answers, "
                    "so it was not run and scores 0." % (basic.label, basic.title))
        if check.needs == BASIC:
            needed = self._basic(check.stage, check.tests)
        else:
            needed = next((c for c in self.checks.values() if c.stage == check.stage
                           and c.function == check.needs), None)
        if needed is None or needed is check or needed.status != "failed":
            return None
        return ("Blocked by check %s (%s), which failed: fix that one first. This check "
                "needs it, so it was not run and scores 0." % (needed.label, needed.title))

    def _basic(self, stage: str, tests: str) -> Check | None:
        """The stage's basic check of a program: its first check of that program."""
        return min((c for c in self.checks.values() if c.stage == stage and c.tests == tests),
                   key=lambda c: c.number, default=None)

    def reported(self, item, call, report, pytests_own: bool) -> None:
        """Title a check's failure section with its number and title ('1.3 A message
        sent one byte at a time'), the names the table and 'Blocked by' use; a failure
        tells the check's own explanation, or, unless it is `pytests_own` (pytest.fail,
        pytest.skip), the grader's own error, as such."""
        check = self.checks[item.nodeid]
        conversation = item.funcargs.get("conversation")
        if call.when == "call" and conversation is not None:
            check.heard = conversation.messages_heard > 0
        if report.location is not None:
            path, line, _ = report.location
            report.location = (path, line, "%s %s" % (check.label, check.title))
        if report.failed and call.excinfo is not None:
            if call.excinfo.errisinstance(CheckFailed):   # the check's own explanation
                report.longrepr = str(call.excinfo.value)
            elif not pytests_own:
                report.longrepr = own_error(call.excinfo, conversation)

    def given_names(self, text: str) -> str:
        """`text` naming the folder given (--impl) where it names the copy the programs
        ran from (isolation.readable_copy: the folder given and the modules next to it,
        laid out the same under another folder), and the folder's files as --impl gave
        it (grader/naming.py), so that what a student reads is true."""
        text = text.replace(str(self.run_from.parent), str(self.impl.parent))
        return naming.given(text, self.impl.name, getattr(self, "spelling", None))

    def record(self, report) -> None:
        """A check's status and output, from each of its reports (setup, call, teardown)."""
        check = self.checks.get(report.nodeid)
        if check is None:
            return
        if report.failed or report.skipped:
            # The failure sections are printed at the end, from this same report.
            text = (report.longrepr[2] if isinstance(report.longrepr, tuple)
                    else report.longreprtext)
            named = self.given_names(text)
            if named != text:
                report.longrepr = ((*report.longrepr[:2], named)
                                   if isinstance(report.longrepr, tuple) else named)
        if report.failed:
            check.status = "failed"
            check.output = (check.output + "\n" + report.longreprtext).strip()
        elif report.skipped and check.status != "failed":
            check.status = "skipped"
            check.output = "Skipped: %s" % report.longrepr[2] if isinstance(
                report.longrepr, tuple) else "Skipped."
        elif report.when == "call" and check.status == "not run":
            check.status = "passed"
            check.output = "Passed. " + check.doc if check.doc else "Passed."

    def finish(self) -> None:
        """The run is over: the spares are stopped, and (as root) the programs' user is
        released, so no program of the students' is left to race the results."""
        self.sandbox.discard_spares()
        release_user(self.sandbox.limits)


def own_error(excinfo, conversation) -> str:
    """What a student reads when the grader's own code failed inside a check: one plain
    line that says so (never the grader's traceback), and the conversation so far."""
    entry = excinfo.traceback[-1] if excinfo.traceback else None
    where = ""
    if entry is not None:
        where = ", in %s line %d" % (Path(str(entry.path)).name, entry.lineno + 1)
    lines = ["%s in this check (%s: %s%s). This is not a verdict on your program: the "
             "check scores 0 in this run; please tell your teacher, with this text."
             % (OWN_ERROR, excinfo.typename, excinfo.value, where)]
    if conversation is not None:
        lines += conversation.transcript()
    return "\n".join(lines)
