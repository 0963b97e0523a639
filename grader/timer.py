"""The per-check time limit: a check that runs too long fails with a sentence, on every system.

Built on pytest-timeout's own hooks (requirements.txt): without it no check would
have a time limit, so the grader refuses to run (NO_TIMEOUT).
"""

from __future__ import annotations

import _thread
import signal
import threading

import pytest

from grader import whereabouts
from grader.failure import Conversation
from grader.grading import Grader
from grader.programs import Sandbox
from grader.wire import CheckFailed

CHECK_TIMEOUT = 30   # pytest-timeout's outer safety net for one check, in seconds
NO_TIMEOUT = ("the grader needs pytest-timeout (each check's time limit; without it a check "
              "that hangs hangs the grading): python -m pip install -r requirements.txt")


def require_timeout(config) -> None:
    """Refuse, in one usage line that names the fix, to grade without pytest-timeout
    (not installed, or left out with -p no:timeout): pytest itself would only warn of
    an unknown mark, and a check that hangs would hang the grading."""
    if not config.pluginmanager.hasplugin("timeout"):
        raise pytest.UsageError(NO_TIMEOUT)


def time_limit():
    """The mark that gives a check its time limit (pytest-timeout reads it)."""
    return pytest.mark.timeout(CHECK_TIMEOUT)

CHECK_TIME_LIMIT = ("a program that never answers is usually stuck: an endless loop, or a "
                    "blocking call (recv, accept, input) where it should go back to select.")
CHECK_TIME_IDLE = ("your program was idle in select(), not stuck: it never sent what the check "
                   "waited for. Look at the conversation's last line the grader sent: was the "
                   "reply queued, and is the socket registered for writing while it waits?")


class CheckTimer:
    """A check that runs past CHECK_TIMEOUT fails with a sentence and the conversation
    so far, the same way on every system, and the run goes on to the score table.

    pytest-timeout stops a hung check its own way: on Linux and macOS with the stacks
    of the grader's threads, which tell a student nothing; on Windows by ending the
    whole grader at once (no table, no results file, the programs left running). So
    we set the timer ourselves, through pytest-timeout's own hook for that. When it
    rings, a timer thread stops the check's programs: their sockets and pipes close,
    so whatever the check waits on returns at once, and the check (the main thread),
    interrupted, fails with CHECK_TIME_LIMIT. A real Ctrl-C still stops the run.
    """

    def __init__(self, grader: Grader, sandbox: Sandbox) -> None:
        self.grader = grader
        self.sandbox = sandbox
        self.lock = threading.Lock()
        self.running = None      # the check whose timer is set
        self.timer = None
        self.due = None          # the check the timer thread interrupted, until handled
        self.timed_out = None    # the last check that ran out of time
        self.handler_set = False

    def _ours(self, item) -> bool:
        return (item.nodeid in self.grader.checks
                and threading.current_thread() is threading.main_thread())

    @pytest.hookimpl(tryfirst=True)
    def pytest_timeout_set_timer(self, item, settings):
        if not self._ours(item):
            return None
        if not self.handler_set:
            signal.signal(signal.SIGINT, self.on_interrupt)
            self.handler_set = True
        with self.lock:
            self.running, self.timed_out = item, None
            self.timer = threading.Timer(settings.timeout, self.time_is_up,
                                         (item, settings.timeout))
            self.timer.daemon = True
            self.timer.start()
        return True

    @pytest.hookimpl(tryfirst=True)
    def pytest_timeout_cancel_timer(self, item):
        if not self._ours(item):
            return None
        with self.lock:
            if self.running is item:
                self.timer.cancel()
                self.running = None
        return True

    def time_is_up(self, item, seconds: float) -> None:
        """In the timer's thread: stop what the check waits on, then interrupt it."""
        with self.lock:
            if self.running is not item:
                return                      # it ended just now
            self.timed_out = self.due = item
            self.seconds = seconds
        conversation = item.funcargs.get("conversation")
        if conversation is not None:   # where they wait, while they still can answer
            whereabouts.look_before_stop(conversation)
        _thread.interrupt_main(signal.SIGINT)   # handled as soon as the check's wait ends
        self.sandbox.stop_programs_in_use("Stopped by the grader when the check ran out of time.")

    def on_interrupt(self, signum, frame):
        """SIGINT in the main thread: our timer's interruption, or a real Ctrl-C."""
        with self.lock:
            due, self.due = self.due, None
            running = self.running
        if due is None:
            raise KeyboardInterrupt
        if due is running:
            raise CheckFailed(self.explanation(due))
        # else: that check ended before its interruption arrived; nothing to stop

    def explanation(self, item) -> str:
        expected = "the check to finish within %g s" % self.seconds
        got = "it was still running after %g s, so the grader stopped it" % self.seconds
        conversation = item.funcargs.get("conversation") or Conversation()
        seen = getattr(conversation, "seen_before_stop", None)
        hint = CHECK_TIME_IDLE if whereabouts.idle(seen) else CHECK_TIME_LIMIT
        return conversation.explanation(expected, got, hint)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        """A check that ran out of time fails as such, whatever its last step raised
        when its programs were stopped under it (a closed connection, say)."""
        outcome = yield
        report = outcome.get_result()
        if self.timed_out is item and report.failed:
            report.longrepr = self.explanation(item)
