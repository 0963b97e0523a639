"""A student's program as a real process: started, held to its limits, always stopped.

Every program gets its own process group and session (on Windows, a console of
its own, with no window), so teardown can stop it together with anything it
started, and Ctrl-C reaches it alone; every wait is bounded. What it prints
goes through pipes that the grader drains at once (output.py). The limits
(limits.py) apply from its start; a program stopped by one gets a `limit_note`
that its check's failure shows (`describe`): which limit, and what to look for.

Also here: the Sandbox (one grading's programs) and spares (the next check's
program, started early). The processes of a program: processes.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from grader.limits import (HARD_LIMITS, OUTPUT_PER_BYTE_SENT, Limits, configure,
                           hard_limits_variable, set_hard_limits, size)
from grader.output import TAIL_BYTES, Output
from grader.system import POSIX, press_ctrl_c, signal_group
from grader.system.windows import Job, end_tree
from grader.users import release_user
from grader.watchdog import MARKER, Watchdog, kill_if_ours
from grader.whereabouts import Listener

STARTUP = str(Path(__file__).resolve().parent / "startup")   # see startup/sitecustomize.py
STOP_GRACE = 0.5        # SIGTERM, then this long, then SIGKILL
DYING_GRACE = 0.2       # how long a failure report waits for a crashing program to end


_serial = iter(range(1, 1 << 62))


class Sandbox:
    """One grading's programs: its limits, the programs running, the watchdog that
    holds them to the limits, and the spares (the next checks' programs, started
    early). conftest.py keeps the grading's own in pytest's config.stash; the load
    tool makes one of its own. Every Program belongs to one."""

    def __init__(self, settings: Limits) -> None:
        configure(settings)   # what the limits ask of the grader's own process
        self.limits = settings
        self.running: set[Program] = set()   # started and not yet stopped
        self.watchdog = Watchdog(settings)
        self.spares: dict = {}
        self.unwanted: set = set()   # keys (scripts) no check to come starts: no spare for them
        self.keeps_server = False    # the next server check may share this check's server
        self.whereabouts = Listener()   # where programs say where they are (whereabouts.py)

    def wants_spare(self, key) -> bool:
        """Whether a check to come may start `key`, so a spare of it is worth starting."""
        return key not in self.unwanted

    def take_spare(self, key) -> "Spare | None":
        """The program started ahead for `key` (a script path), or None."""
        return self.spares.pop(key, None)

    def keep_spare(self, key, spare: "Spare") -> None:
        old = self.spares.pop(key, None)
        if old is not None:
            old.discard()
        self.spares[key] = spare

    # A server a passed check left for the next one (serverside.py) waits with the
    # spares, so that it is stopped with them (and is not a program "in use").
    def take_shared(self, script) -> "Spare | None":
        return self.spares.pop(("shared", script), None)

    def keep_shared(self, script, server: "Spare") -> None:
        self.keep_spare(("shared", script), server)

    def discard_shared(self, script) -> None:
        """Stop the server kept for `script`'s next check (a check that wants a fresh
        one is next: two idle servers would be one too many)."""
        kept = self.take_shared(script)
        if kept is not None:
            kept.discard()

    def discard_spares(self) -> None:
        """Stop every spare nobody took (the grader calls this at the end of the run).

        All at once: a program that ignores SIGTERM costs its STOP_GRACE once, not once
        each."""
        spares = list(self.spares.values())
        self.spares.clear()
        stop_all(spare.program for spare in spares)
        for spare in spares:
            spare.close_sockets()

    def stop_programs_in_use(self, why: str) -> None:
        """Stop every program a check is using (not the spares), saying `why` in its
        failure report: a check that ran out of time then stops waiting on them."""
        spares = {spare.program for spare in list(self.spares.values())}
        in_use = [program for program in list(self.running) if program not in spares]
        for program in in_use:
            program.limit_note = program.limit_note or why
        stop_all(in_use)

    def stop_everything(self) -> None:
        """The safety net: stop every program still running (end of run, Ctrl-C,
        SIGTERM), and any process any of them started that is still alive, wherever it
        went; then the grading's own user, if it has one, is ended and freed."""
        stop_all(list(self.running))
        self.watchdog.sweep(b"%d-" % os.getpid())
        release_user(self.limits)


class Program:
    """One started program: its process, its output, its limits, how to stop it."""

    def __init__(self, argv: list[str], label: str, sandbox: Sandbox, stdin: bool = False,
                 cwd=None) -> None:
        self.label = label
        self.sandbox = sandbox
        self.limits = limits = sandbox.limits
        if argv and argv[0] == sys.executable:
            # A Python the programs' user can run; -b: it warns where bytes are compared
            # with a str, a comparison never true (diagnosis.py names that line).
            argv = [limits.python, "-b"] + argv[1:]
        self.argv = argv
        self.token = "%d-%d" % (os.getpid(), next(_serial))
        self.started = time.monotonic()
        self.limit_note = ""          # set when the grader stopped it for a limit
        self.limit_reason = ""        # ... and that note's first words, for a 'Got:' line
        self.asked_to_end = False     # the grader asked it to end (Ctrl-C, end of input, BYE)
        self.pids: set[int] = set()   # its processes that the watchdog knows of
        self.processes = 1            # how many were alive at the last look
        self.peak_memory = 0          # the most resident memory seen at a look
        self.pss, self.pss_due = 0, 0.0   # the watchdog's last proportional measure
        self.sent = 0                 # bytes the grader has sent it (see OUTPUT_PER_BYTE_SENT)
        self.start_up_output = (0, 0)  # a server: what it had printed once it listened
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8",
                   PYTHONDONTWRITEBYTECODE="1")
        # Line endings typed into it read the same on every system (startup/sitecustomize.py).
        copy = limits.copy   # a copy the programs' own user can read (isolation.py)
        startup = (str(copy.parent / ".startup") if copy is not None else
                   str(limits.startup) if limits.startup is not None else STARTUP)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [startup, env.get("PYTHONPATH")]))
        env[MARKER] = self.token
        env[HARD_LIMITS] = hard_limits_variable(limits)   # taken at its start (sitecustomize)
        if limits.written is not None:   # a folder of the grading's own to write in (files.py)
            scratch = str(limits.written.scratch)
            env.update(TMPDIR=scratch, TEMP=scratch, TMP=scratch)
            cwd = cwd or scratch
        env.update(sandbox.whereabouts.environment(self))   # it can say where it is
        extra = {"start_new_session": True} if POSIX else {
            "creationflags": subprocess.CREATE_NO_WINDOW}   # a console of its own: interrupt()
        if limits.uid is not None:
            extra.update(user=limits.uid, group=limits.gid, extra_groups=[])
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env, **extra)
        self.pids.add(self.proc.pid)
        set_hard_limits(self.proc.pid, limits)
        # Windows: a job object holds it and all it starts (see system/windows.py)
        self.job = None if POSIX else Job.holding(self.proc._handle, limits.processes)
        self.out = Output(self.proc.stdout, self._check_output)
        self.err = Output(self.proc.stderr, self._check_output)
        sandbox.running.add(self)
        sandbox.watchdog.watch(self)

    # --- output ------------------------------------------------------------
    def was_sent(self, count: int) -> None:
        """The grader sent it `count` more bytes: it may print that much more."""
        self.sent += count

    def output_allowed(self) -> int:
        """How much it may print by now: --output-limit, plus OUTPUT_PER_BYTE_SENT for
        each byte the grader has sent it."""
        return self.limits.output + OUTPUT_PER_BYTE_SENT * self.sent

    def _check_output(self) -> None:
        if self.limits.output and self.out.total + self.err.total > self.output_allowed():
            self.stop_for_limit(
                "printed more than %s (standard output and error together) while the grader "
                "had sent it only %s: the grader's limit is %s, plus %d bytes for each byte "
                "it sends (--output-limit)" % (size(self.output_allowed()), size(self.sent),
                                               size(self.limits.output), OUTPUT_PER_BYTE_SENT),
                "is there a print inside the select loop, or in a loop that never waits? "
                "Print a line when something happens (a client connects, a message "
                "arrives), not on every turn of a loop.")

    def printed(self) -> int:
        """How many bytes it has printed so far, standard output and error together."""
        return self.out.count() + self.err.count()

    def stdout(self) -> bytes:
        """What is kept of its standard output (all of it, unless it printed a lot), less
        what a shared server printed during earlier checks."""
        return self.out.shown()

    def stderr(self) -> bytes:
        return self.err.shown()

    def stdout_since(self, offset: int) -> tuple[int, bytes]:
        """Its standard output after `offset` (counted from its first byte), as far
        as it is kept: (where the bytes returned start, the bytes)."""
        return self.out.since(offset)

    def stdout_count(self) -> int:
        """How many bytes of standard output have arrived so far."""
        return self.out.total

    def wait_stdout_past(self, count: int, timeout: float) -> None:
        """Wait until more than `count` bytes of standard output have arrived (or its
        end), at most `timeout` seconds."""
        self.out.wait_past(count, timeout)

    # --- status ------------------------------------------------------------
    def exit_status(self):
        """The exit status, or None while it runs."""
        return self.proc.poll()

    def wait_exit(self, timeout: float):
        """Wait up to `timeout` seconds; the exit status, or None if still running."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def describe(self) -> str:
        """What a failure report should say about this program."""
        # A program that just crashed may still be on its way out: give it a moment,
        # so the report can say it exited (and show the traceback it printed).
        status = self.wait_exit(DYING_GRACE)
        out, err = self.out.tail(), self.err.tail()
        lines = []
        if self.limit_note:
            lines.append(self.limit_note)
        elif status is None and not err.strip():
            return ""
        elif status is not None:
            lines.append("The %s exited with status %s%s." % (self.label, status,
                                                              _signal_note(status, self.limits)))
        if b"MemoryError" in self.stderr()[-TAIL_BYTES:]:
            lines.append("(MemoryError: the system refused it more memory. Does it keep "
                         "everything it receives?)")
        for name, text in (("standard output", out), ("standard error", err)):
            if text.strip():
                lines.append("The %s's %s (the end of it):" % (self.label, name))
                lines.extend("    | " + line[:300] for line in text.rstrip().splitlines()[-25:])
        return "\n".join(lines)

    # --- stopping ------------------------------------------------------------
    def stop_for_limit(self, what: str, hint: str) -> None:
        """Stop it at once (SIGKILL, everything it started), saying which limit and why."""
        if self.limit_note:
            return
        self.limit_reason = what
        self.limit_note = "Stopped by the grader: the %s %s.\n    What to look for: %s" % (
            self.label, what, hint)
        self._kill_all()

    def _kill_all(self) -> None:
        """SIGKILL its process group, and every process of it found elsewhere. Windows:
        end its job (every process it started), or without one, its tree."""
        if not POSIX:
            if self.job is not None:
                self.job.end()
            else:
                end_tree(self.proc.pid)
            return
        self._signal_group(signal.SIGKILL)
        for pid in list(self.pids):
            kill_if_ours(pid, lambda token: token == self.token.encode())

    def interrupt(self) -> None:
        """Press Ctrl-C: SIGINT to the whole process group, as a terminal does. On
        Windows, the Ctrl-C event of its console (system/windows.py: press_ctrl_c)."""
        self.asked_to_end = True
        if POSIX:
            self._signal_group(signal.SIGINT)
        else:
            press_ctrl_c(self.proc.pid)

    def _signal_group(self, sig) -> None:
        signal_group(self.proc.pid, sig)

    def stop(self) -> None:
        """Stop the program and everything it started, no matter what."""
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        if POSIX:
            self._signal_group(signal.SIGTERM)
            self.wait_exit(STOP_GRACE)
            # Even if the program itself is gone, a child it forked may not be; and
            # one that left the process group is found by the watchdog.
            self.sandbox.watchdog.discover()
        self._kill_all()
        if self.wait_exit(5.0) is None:
            self.proc.kill()
            self.wait_exit(5.0)
        self.sandbox.running.discard(self)
        self.sandbox.watchdog.forget(self)
        self.sandbox.whereabouts.forget(self)


def _signal_note(status: int, limits: Limits) -> str:
    """' (killed by SIGKILL)' for a negative status; what SIGXFSZ means."""
    if status >= 0:
        return ""
    try:
        name = signal.Signals(-status).name
    except ValueError:
        return ""
    if name == "SIGXFSZ":
        return (" (killed by SIGXFSZ: it wrote a file larger than the grader allows, %s; "
                "a log file written in a loop?)" % size(limits.output))
    return " (killed by %s)" % name


def stop_all(programs) -> None:
    """Stop several programs at once: one that ignores SIGTERM costs STOP_GRACE once."""
    stoppers = [threading.Thread(target=program.stop) for program in programs]
    for stopper in stoppers:
        stopper.start()
    for stopper in stoppers:
        stopper.join()


# --- spares: the next check's program, started while this one runs ---------------
#
# Starting Python takes ~0.1 s, and the grader starts a fresh program for every
# check. So when a check starts a program, the grader also starts a spare copy
# for the next check of the same stage (and at the start of the run, one for
# each stage's first check). A spare gets no input and no connection before its
# own check takes it: every check still meets a fresh program. Its time limit
# to start counts from when it was started.


@dataclass
class Spare:
    """A program started ahead of its check, with the port it uses."""
    program: Program
    port: int
    listener: socket.socket | None = None   # a client's spare: the grader's listening socket
    connection: socket.socket | None = None   # a shared server's: a client it accepted

    def discard(self) -> None:
        self.program.stop()
        self.close_sockets()

    def close_sockets(self) -> None:
        for sock in (self.listener, self.connection):
            if sock is not None:
                sock.close()
