"""Run a student's program as a real process, and always stop it again.

Every program gets its own process group, so teardown can stop it together
with anything it started; its output goes to files (never an undrained pipe, so
a program that prints megabytes cannot block), and every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from grader.wire import WAIT, Conversation, Peer

POSIX = os.name == "posix"
START_TIMEOUT = 5.0     # how long a server may take to start listening
STOP_GRACE = 0.5        # SIGTERM, then this long, then SIGKILL
DYING_GRACE = 0.2       # how long a failure report waits for a crashing program to end
TAIL_BYTES = 3000       # how much of a program's output a failure shows


def free_port() -> int:
    """A port the OS says is free right now (binding port 0 asks the OS)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tail(path: Path, limit: int = TAIL_BYTES) -> str:
    """The last `limit` bytes of a file, as text."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    return ("…" + text) if size > limit else text


RUNNING: set = set()   # every Program started and not yet stopped (see stop_everything)


class Program:
    """One started program: its process, its output files, how to stop it."""

    def __init__(self, argv: list[str], label: str, stdin: bool = False, cwd=None) -> None:
        self.label = label
        self.argv = argv
        self.started = time.monotonic()
        self.folder = Path(tempfile.mkdtemp(prefix="chatkit-"))
        self.stdout_path = self.folder / "stdout"
        self.stderr_path = self.folder / "stderr"
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8",
                   PYTHONDONTWRITEBYTECODE="1")
        group = {"start_new_session": True} if POSIX else {
            "creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=out, stderr=err, cwd=cwd, env=env, **group)
        RUNNING.add(self)

    def exit_status(self):
        """The exit status, or None while it runs."""
        return self.proc.poll()

    def wait_exit(self, timeout: float):
        """Wait up to `timeout` seconds; the exit status, or None if still running."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stdout(self) -> bytes:
        return self.stdout_path.read_bytes() if self.stdout_path.exists() else b""

    def stderr(self) -> bytes:
        return self.stderr_path.read_bytes() if self.stderr_path.exists() else b""

    def describe(self) -> str:
        """What a failure report should say about this program."""
        # A program that just crashed may still be on its way out: give it a moment,
        # so the report can say it exited (and show the traceback it printed).
        status = self.wait_exit(DYING_GRACE)
        out, err = tail(self.stdout_path), tail(self.stderr_path)
        if status is None and not err.strip():
            return ""
        lines = []
        if status is not None:
            lines.append("The %s exited with status %s." % (self.label, status))
        for name, text in (("standard output", out), ("standard error", err)):
            if text.strip():
                lines.append("The %s's %s (the end of it):" % (self.label, name))
                lines.extend("    | " + line for line in text.rstrip().splitlines()[-25:])
        return "\n".join(lines)

    def interrupt(self) -> None:
        """Press Ctrl-C: SIGINT to the whole process group, as a terminal does."""
        if POSIX:
            self._signal_group(signal.SIGINT)
        else:
            self.proc.send_signal(signal.CTRL_BREAK_EVENT)

    def _signal_group(self, sig) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self) -> None:
        """Stop the program and everything in its process group, no matter what."""
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        if POSIX:
            self._signal_group(signal.SIGTERM)
            self.wait_exit(STOP_GRACE)
            # Even if the program itself is gone, a child it forked may not be.
            self._signal_group(signal.SIGKILL)
        else:
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(self.proc.pid)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if self.wait_exit(5.0) is None:
            self.proc.kill()
            self.wait_exit(5.0)
        shutil.rmtree(self.folder, ignore_errors=True)
        RUNNING.discard(self)


def stop_all(programs) -> None:
    """Stop several programs at once: one that ignores SIGTERM costs STOP_GRACE once."""
    stoppers = [threading.Thread(target=program.stop) for program in programs]
    for stopper in stoppers:
        stopper.start()
    for stopper in stoppers:
        stopper.join()


def stop_everything() -> None:
    """The safety net: stop every program still running (end of run, Ctrl-C, SIGTERM)."""
    stop_all(list(RUNNING))


# --- spares: the next check's program, started while this one runs ---------------
#
# Starting Python takes ~0.1 s, and the grader starts a fresh program for every
# check. So when a check starts a program, the grader also starts a spare copy
# for the next check of the same stage (and at the start of the run, one for
# each stage's first check). A spare gets no input and no connection before its
# own check takes it: every check still meets a fresh program. Its time limit
# to start counts from when it was started.
_spares: dict = {}


@dataclass
class Spare:
    """A program started ahead of its check, with the port it uses."""
    program: Program
    port: int
    listener: socket.socket | None = None   # a client's spare: the grader's listening socket

    def discard(self) -> None:
        self.program.stop()
        if self.listener is not None:
            self.listener.close()


def take_spare(key) -> Spare | None:
    """The program started ahead for `key` (a script path), or None."""
    return _spares.pop(key, None)


def keep_spare(key, spare: Spare) -> None:
    old = _spares.pop(key, None)
    if old is not None:
        old.discard()
    _spares[key] = spare


def discard_spares() -> None:
    """Stop every spare nobody took (the grader calls this at the end of the run).

    All at once: a program that ignores SIGTERM costs its STOP_GRACE once, not once each."""
    spares = list(_spares.values())
    _spares.clear()
    stop_all(spare.program for spare in spares)
    for spare in spares:
        if spare.listener is not None:
            spare.listener.close()


def listens(program: Program, port: int) -> bool:
    """Is it `program` (or a process it started) that listens on `port`?

    Linux tells, through /proc; elsewhere we can't, and trust that it is.
    """
    pid = program.proc.pid
    found_any = False
    # IPv4 first: reading a table costs ~5 ms, and the server was given 127.0.0.1.
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        inodes = listening_sockets(table, port)
        if inodes is None:
            return True   # no /proc: we can't tell
        found_any = found_any or bool(inodes)
        if inodes and (holds(pid, inodes) or
                       any(holds(member, inodes) for member in session_members(pid))):
            return True
    return not found_any   # nobody listens there any more: let the check find out


def holds(pid: int, sockets: set[str]) -> bool:
    """Has process `pid` one of these sockets open?"""
    try:
        return any(os.readlink(fd) in sockets for fd in (Path("/proc") / str(pid) / "fd").iterdir())
    except OSError:
        return False


def listening_sockets(table: str, port: int) -> set[str] | None:
    """Linux: the sockets of one /proc table listening on `port`, as /proc names them
    ('socket:[1234]'); None without /proc."""
    try:
        lines = Path(table).read_text().splitlines()[1:]
    except OSError:
        return None
    found = set()
    for line in lines:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:   # 0A: LISTEN
            found.add("socket:[%s]" % fields[9])
    return found


def session_members(session: int) -> list[int]:
    """Every other process in the program's session (the ones it started)."""
    members = []
    for entry in Path("/proc").iterdir():
        try:
            # /proc/PID/stat: "pid (name) state ppid pgrp session ..."
            if entry.name.isdigit() and int(entry.name) != session and \
                    int((entry / "stat").read_text().rsplit(")", 1)[1].split()[3]) == session:
                members.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return members


def launch_server(script: Path, port: int) -> Program:
    return Program([sys.executable, str(script), "--host", "127.0.0.1", "--port", str(port)],
                   "server")


def spare_server(script: Path) -> Spare:
    port = free_port()
    return Spare(launch_server(script, port), port)


class ServerUnderTest:
    """The student's chat server for one check, started on first use."""

    def __init__(self, stage_dir: Path, conversation: Conversation) -> None:
        self.stage_dir = stage_dir
        self.script = stage_dir / "chat_server.py"
        self.conv = conversation
        self.program: Program | None = None
        self.port: int | None = None
        self._spare: socket.socket | None = None   # the connection that proved readiness
        self._count = 0

    # --- starting ----------------------------------------------------------
    def start(self, port: int | None = None) -> None:
        """Start the server on a free port and wait until it accepts connections."""
        if not self.script.is_file():
            self.conv.fail("a server program at %s" % self.script,
                           "no such file",
                           "each stage folder needs chat_server.py and chat_client.py "
                           "(see README § Layout).")
        for attempt in range(3):
            spare = take_spare(self.script) if port is None and attempt == 0 else None
            if spare is not None:
                self.program, self.port = spare.program, spare.port
            else:
                self.port = port or free_port()
                self.program = launch_server(self.script, self.port)
            if port is None and attempt == 0:
                keep_spare(self.script, spare_server(self.script))   # for the next check
            self.conv.programs = [p for p in self.conv.programs if p.label != "server"]
            self.conv.programs.append(self.program)
            self.conv.log("(started %s --host 127.0.0.1 --port %d)" % (
                self._short_script(), self.port))
            self._spare = self._wait_until_listening()
            if self._spare is not None and port is None and not listens(self.program, self.port):
                # The port was free when we picked it, but another program (another
                # grading running alongside) took it first: that is whom we reached.
                self._spare.close()
                self._spare = None
                self.program.stop()
                self.conv.log("(port %d was taken by another program: trying another port)"
                              % self.port)
                continue
            if self._spare is not None:
                return
            if port is None and b"in use" in self.program.stderr() and attempt < 2:
                self.program.stop()   # someone took the port meanwhile: try another one
                continue
            break
        status = self.program.exit_status()
        if status is None:
            self.conv.fail("the server accepts a connection on port %d" % self.port,
                           "it did not start listening within %.0f s" % START_TIMEOUT,
                           "does the server bind to the --host/--port it is given and call listen()? "
                           "(see README § Running).")
        self.conv.fail("the server starts and keeps running",
                       "it exited with status %s before accepting a connection" % status,
                       "run it yourself: python %s --port 7777 — its error is below." % self._short_script())

    def _short_script(self) -> str:
        return "%s/%s/chat_server.py" % (self.stage_dir.parent.name, self.stage_dir.name)

    def _wait_until_listening(self) -> socket.socket | None:
        deadline = self.program.started + START_TIMEOUT   # a spare may have started earlier
        while self.program.exit_status() is None:
            try:   # always try once: a spare started long ago may well be listening
                return socket.create_connection(("127.0.0.1", self.port), timeout=0.5)
            except OSError:
                pass
            if time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        return None

    def _ensure_started(self) -> None:
        if self.program is None:
            self.start()

    # --- talking to it -----------------------------------------------------
    def connect(self, label: str | None = None) -> Peer:
        """A new scripted client connected to the server."""
        peer = self._open(label)
        self.conv.log("%-8s connects" % peer.label)
        return peer

    def connect_many(self, count: int, prefix: str = "c") -> list[Peer]:
        """Several clients at once, logged as one line."""
        self.conv.log("(%d clients connect: %s1 … %s%d)" % (count, prefix, prefix, count))
        return [self._open("%s%d" % (prefix, i + 1)) for i in range(count)]

    def _open(self, label: str | None) -> Peer:
        self._ensure_started()
        self._count += 1
        label = label or "client%d" % self._count
        if self._spare is not None:
            sock, self._spare = self._spare, None
            return Peer(sock, label, self.conv)
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=WAIT)
        except OSError as error:
            self.conv.fail("%s connects to the server" % label,
                           "the connection failed: %s" % error,
                           "the server must keep accepting new clients at any time "
                           "(is the listening socket still in the select set?).")
        return Peer(sock, label, self.conv)

    def expect_running(self, duration: float, hint: str) -> None:
        """The server must not exit during the next `duration` seconds."""
        status = self.program.wait_exit(duration)
        if status is not None:
            self.conv.fail("the server keeps running",
                           "it exited with status %s" % status, hint)

    def interrupt(self) -> None:
        self._ensure_started()
        self.conv.log("(Ctrl-C: SIGINT sent to the server)")
        self.program.interrupt()

    def stop(self) -> None:
        if self._spare is not None:
            self._spare.close()
        if self.program is not None:
            self.program.stop()
