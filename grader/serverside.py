"""The student's server for one check: started on a free port, waited for, connected to.

`ServerUnderTest` starts the stage's chat_server.py (programs.py: its own process
group, within the limits), waits, bounded, until it listens (or exits), and opens
scripted clients (wire.Peer) to it. Anything that starts a server under test, the
load tool included, starts it here.
"""

from __future__ import annotations

import socket
import sys
import time
import weakref
from pathlib import Path

from grader import sockdiag
from grader.holders import NOBODY, OURS, THEIRS, UNKNOWN, held_by, listening_sockets
from grader.framing import FramingError, frame, take_payloads
from grader.programs import Program, Sandbox, Spare
from grader.system import LINUX
from grader.stages import stage as declared_stage
from grader.diagnosis import OnExit
from grader.wire import QUIET, WAIT, Conversation, Peer

START_TIMEOUT = 5.0     # how long a server may take to start listening
SETTLE_TIMEOUT = 1.0    # how long a server may take to close the connections of a check
EXIT_WATCH = 0.1        # how long a server is watched after closing a leaver's socket
PROBE_TIMEOUT = 1.0     # how long the grader waits for the answer to its probe


def free_port() -> int:
    """A port the OS says is free right now (binding port 0 asks the OS)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Who listens on a server's port. The grader picks a free port and gives it to the
# server; until the server binds it, another program may: on a machine grading several
# submissions at once, another grading's scripted server (clientside.py) binds port 0
# and may be given that very port. Knocking there would hand that grading a connection
# it takes for its student's client, so on Linux the grader connects only once it has
# seen the server's own listening socket.
# The answers (OURS, THEIRS, NOBODY, UNKNOWN) and the looks at /proc are holders.py's.


def whose_listener(program: Program, port: int) -> str:
    """OURS if `program` (or a process it started) listens on `port`, THEIRS if only
    another program does, NOBODY, or UNKNOWN where the system can't tell (not Linux)."""
    if not LINUX:
        return UNKNOWN
    found_any = False
    # IPv4 first: the server was given 127.0.0.1.
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        inodes = listening_sockets(table, port)
        if inodes is None:
            return UNKNOWN   # no /proc
        found_any = found_any or bool(inodes)
        if inodes and held_by(program, inodes):
            return OURS
    return THEIRS if found_any else NOBODY


# How a server says its port was taken meanwhile: Linux and macOS ("Address already in
# use"), Windows ("[WinError 10048] Only one usage of each socket address ...").
PORT_TAKEN = (b"in use", b"10048", b"Only one usage of each socket address")


def says_port_taken(output: bytes) -> bool:
    """Whether a server's error output says its port was already taken."""
    return any(words in output for words in PORT_TAKEN)


# --- one server for several checks -------------------------------------------------
#
# Starting a server costs a Python start and the student's imports: about 40 ms of CPU
# each, and a full grading has about sixty server checks. So a check that passed may
# leave its server to the next check of its stage, when that check may share one
# (checks.py: fresh_server=False) and the server is shown to be as a fresh one would be:
#   * it runs, and the grader neither stopped it for a limit nor asked it to end;
#   * once the check's clients are gone, it holds no connection (it closed every one:
#     nothing queued for anybody, no half-read message left);
#   * a new client gets the answer a fresh server gives, the probe its stage declares
#     (grader/stages.py): an echo in stage 1, an empty name list ('NAMES') in the later
#     stages (so every name was freed);
#   * once that client is gone too, the server accepts one more, which the next check
#     gets as its first client (as it gets the connection that proved a fresh server
#     listens): so a server that dies of a client leaving is seen dead here, not in
#     the next check. Every client the grader closes is seen gone before it goes on.
# Otherwise (a failure, any doubt, a system that can't say who holds a connection) the
# server is stopped and the next check gets a fresh one, as before. A check that judges
# start-up, CPU, stalls or shutdown always gets a fresh one. What the student sees is
# the same either way: the conversation is this check's, and so is the server's output
# (what it printed when it started, then during this check: output.py, Output.hide_until_now).


def answers_as_fresh(sock: socket.socket, stage: str) -> bool:
    """Does this new client of the server get the answer a fresh server gives?"""
    question, answer = declared_stage(stage).probe   # grader/stages.py
    try:
        sock.settimeout(PROBE_TIMEOUT)
        sock.sendall(frame(question))
        received, deadline = bytearray(), time.monotonic() + PROBE_TIMEOUT
        while time.monotonic() < deadline:
            data = sock.recv(4096)
            if not data:
                return False
            received += data
            payloads = take_payloads(received)
            if payloads:
                return payloads == [answer] and not received
    except (OSError, FramingError):
        return False
    return False


# What the kernel says of a connection the server holds until it closes its end.
STILL_OPEN = (sockdiag.TCP_ESTABLISHED, sockdiag.TCP_CLOSE_WAIT)


def closed_all(program: Program, port: int, client_ports: list[int],
               within: float = SETTLE_TIMEOUT) -> bool:
    """Linux: has the server on `port` closed its end of the connections from these
    ports (ours, now closed)? Waits up to `within` seconds: it has only just seen them
    close. False if it did not, exited, or the kernel can't say."""
    waiting, deadline = set(client_ports), time.monotonic() + within
    while program.exit_status() is None:
        try:
            waiting = {client for client in waiting
                       if (sockdiag.connection(port, client) or (None,))[0] in STILL_OPEN}
        except sockdiag.Unanswered:
            return False
        if not waiting:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.002)   # a bounded look again: the kernel has no way to tell us
    return False


def accepted(program: Program, port: int, client_port: int) -> bool:
    """Linux: has the server on `port` accepted the connection from `client_port`? (The
    kernel gives the socket an inode once a program holds it.) Waits up to
    SETTLE_TIMEOUT; False if it did not, exited, or the kernel can't say."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while program.exit_status() is None:
        try:
            found = sockdiag.connection(port, client_port)
        except sockdiag.Unanswered:
            return False
        if found is not None and found[1] != 0:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.002)   # a bounded look again, as above
    return False


def only_connection(port: int, client_port: int) -> bool:
    """Linux: is the connection from `client_port` the only one open on `port`? (One
    look at every connection of the machine: it also sees any the grader did not open
    through ServerUnderTest.)"""
    found = sockdiag.sockets(socket.AF_INET, set(STILL_OPEN), port, None)
    try:
        ours = sockdiag.connection(port, client_port)
    except sockdiag.Unanswered:
        return False
    return found is not None and ours is not None and found == {"socket:[%d]" % ours[1]}


def launch_server(script: Path, port: int, sandbox: Sandbox) -> Program:
    return Program([sys.executable, str(script), "--host", "127.0.0.1", "--port", str(port)],
                   "server", sandbox)


def spare_server(script: Path, sandbox: Sandbox) -> Spare:
    port = free_port()
    return Spare(launch_server(script, port, sandbox), port)


class ServerUnderTest:
    """The student's chat server for one check, started on first use."""

    host = "127.0.0.1"   # where the checks connect (grader/attach.py: where yours listens)

    def __init__(self, stage_dir: Path, conversation: Conversation, sandbox: Sandbox,
                 spares: bool = True) -> None:
        self.stage_dir = stage_dir
        self.sandbox = sandbox     # the grading's programs (programs.py)
        self.spares = spares       # take a spare started earlier, and start the next one
        self.script = stage_dir / "chat_server.py"
        self.conv = conversation
        self.program: Program | None = None
        self.port: int | None = None
        self._spare: socket.socket | None = None   # the connection that proved readiness
        self._count = 0
        # The check's scripted clients still open (not kept alive by this: a client the
        # check drops is closed at once, as a fresh server's checks always had it).
        self._peers: weakref.WeakSet[Peer] = weakref.WeakSet()
        self._client_ports: list[int] = []   # the local port of each of its connections

    # --- starting ----------------------------------------------------------
    def start(self, port: int | None = None) -> None:
        """Start the server on a free port and wait until it accepts connections."""
        if not self.script.is_file():
            self.conv.fail("a server program at %s" % self.script,
                           "no such file",
                           "each stage folder needs chat_server.py and chat_client.py "
                           "(see docs/students.md § Running).")
        if port is None and self.spares and self._take_shared():
            return
        for attempt in range(3):
            first = port is None and attempt == 0 and self.spares
            spare = self.sandbox.take_spare(self.script) if first else None
            if spare is not None:
                self.program, self.port = spare.program, spare.port
            else:
                self.port = port or free_port()
                self.program = launch_server(self.script, self.port, self.sandbox)
            if first and self.sandbox.wants_spare(self.script):
                self.sandbox.keep_spare(self.script, spare_server(self.script, self.sandbox))
            self._show_started()
            self._spare = self._wait_until_listening(picked=port is None)
            if self._spare is not None:
                self._note_port(self._spare)
            if self._spare is None and port is None and \
                    whose_listener(self.program, self.port) == THEIRS:
                # The port was free when we picked it, but another program (another
                # grading running alongside) took it first.
                self.program.stop()
                self.conv.log("(port %d was taken by another program: trying another port)"
                              % self.port)
                continue
            if self._spare is not None:
                self.program.start_up_output = (self.program.out.count(),
                                                self.program.err.count())
                return
            if port is None and says_port_taken(self.program.stderr()) and attempt < 2:
                self.program.stop()   # someone took the port meanwhile: try another one
                continue
            break
        status = self.program.exit_status()
        if status is None:
            self.conv.waited_on = "server"
            self.conv.fail("the server accepts a connection on port %d" % self.port,
                           "it did not start listening within %.0f s" % START_TIMEOUT,
                           "does the server bind to the --host/--port it is given and call listen()? "
                           "(see docs/students.md § Running).")
        if self.program.limit_reason:
            self.conv.fail("the server starts and keeps running",
                           "the grader stopped it before it accepted a connection: it %s"
                           % self.program.limit_reason,
                           "what to look for is at the end of this check's story.")
        self.conv.fail("the server starts and keeps running",
                       "it exited with status %s before accepting a connection" % status,
                       OnExit("run it yourself: python %s --port 7777 — its error is at the "
                              "end of this check's story." % self._short_script()))

    def _show_started(self) -> None:
        """Say in the conversation that the server started, and show its output there."""
        self.conv.programs = [p for p in self.conv.programs if p.label != "server"]
        self.conv.programs.append(self.program)
        self.conv.log("(started %s --host 127.0.0.1 --port %d)" % (
            self._short_script(), self.port))

    def _take_shared(self) -> bool:
        """Take the server an earlier check left (see answers_as_fresh), if there is one
        and this check may share it; the student sees it start, as a fresh one."""
        kept = self.sandbox.take_shared(self.script)
        if kept is None:
            return False
        if kept.program.exit_status() is not None:
            kept.discard()
            return False
        self.program, self.port, self._spare = kept.program, kept.port, kept.connection
        self._note_port(self._spare)
        for stream, start in zip((self.program.out, self.program.err),
                                 self.program.start_up_output):
            stream.hide_until_now(start)
        self._show_started()
        return True

    def finish(self, passed: bool) -> None:
        """The check is over: leave the server to the next check if this one `passed`,
        the next may share it and it is shown to be as fresh; else stop it."""
        next_client = self._shown_fresh() if passed and self.spares and \
            self.sandbox.keeps_server else None
        if next_client is not None:
            self.sandbox.keep_shared(self.script, Spare(self.program, self.port,
                                                        connection=next_client))
        else:
            self.stop()

    def _shown_fresh(self) -> socket.socket | None:
        """The next check's first client, connected and accepted, if the server is shown
        to be as a fresh one would be (see answers_as_fresh); else None."""
        program = self.program
        if not LINUX or program is None or program.exit_status() is not None \
                or program.limit_note or program.asked_to_end:
            return None
        self.close_probe()
        for peer in list(self._peers):   # quietly: the check is over
            peer.sock.close()
        if closed_all(program, self.port, self._client_ports) and self._probe_is_answered():
            return self._next_client()
        return None

    def _probe_is_answered(self) -> bool:
        """A new client gets a fresh server's answer, and the server closes it when it goes."""
        try:
            sock = socket.create_connection((self.host, self.port), timeout=SETTLE_TIMEOUT)
        except OSError:
            return False
        with sock:
            client_port = sock.getsockname()[1]
            fresh = answers_as_fresh(sock, self.stage_dir.name)
        return fresh and closed_all(self.program, self.port, [client_port])

    def _next_client(self) -> socket.socket | None:
        """One more client, accepted: so the server lived on after its last client left
        (a server that dies of a client leaving dies here, not in the next check)."""
        try:
            sock = socket.create_connection((self.host, self.port), timeout=SETTLE_TIMEOUT)
        except OSError:
            return None
        client_port = sock.getsockname()[1]
        if accepted(self.program, self.port, client_port) and \
                only_connection(self.port, client_port):
            return sock
        sock.close()
        return None

    def close_probe(self) -> None:
        """Close the connection that proved the server listens (when no check uses it)."""
        if self._spare is not None:
            self._spare.close()
            self._spare = None

    def _short_script(self) -> str:
        return "%s/%s/chat_server.py" % (self.stage_dir.parent.name, self.stage_dir.name)

    def _wait_until_listening(self, picked: bool) -> socket.socket | None:
        """A connection to the server once it listens; None if it exited, did not
        listen in time, or another program listens on the port the grader `picked`
        for it (see whose_listener): then another port is tried."""
        deadline = self.program.started + START_TIMEOUT   # a spare may have started earlier
        while self.program.exit_status() is None:
            whose = whose_listener(self.program, self.port)
            if whose == THEIRS and picked:
                return None
            if whose in (OURS, UNKNOWN):   # always try at once: a spare may well listen
                try:
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
            return self._peer(sock, label)
        if self._port_taken_since_exit():
            failure = ("the connection failed: the server has exited, and its port %d is "
                       "another program's now" % self.port)
        else:
            try:
                sock = socket.create_connection((self.host, self.port),
                                                timeout=self.conv.patient(WAIT))
            except OSError as error:
                failure = "the connection failed: %s" % error
            else:
                return self._peer(sock, label)
        # Outside the except block: the report is the check's, not an exception chain.
        self.conv.fail("%s connects to the server" % label, failure,
                       "the server must keep accepting new clients at any time "
                       "(is the listening socket still in the select set?).")

    def _peer(self, sock: socket.socket, label: str) -> Peer:
        peer = Peer(sock, label, self.conv, self.program)
        self._peers.add(peer)
        self._note_port(sock)
        return peer

    def _note_port(self, sock: socket.socket) -> None:
        try:
            self._client_ports.append(sock.getsockname()[1])
        except OSError:
            pass

    def _port_taken_since_exit(self) -> bool:
        """Whether the server exited and another program (another grading's) listens on
        its port now: the connection would reach that program, not a server of ours."""
        return self.program is not None and self.program.exit_status() is not None and \
            whose_listener(self.program, self.port) == THEIRS

    def expect_running_after(self, leaver: Peer, hint: str) -> None:
        """`leaver` has just closed its connection: the server must not exit for that.
        A server that (wrongly) stops when its last client leaves exits within
        milliseconds of closing that client's socket, so it is watched EXIT_WATCH
        seconds from then (Linux: the kernel says when, closed_all); where that can't
        be told (or attached: no process to look at), or it never closes the socket,
        QUIET seconds from the leaving."""
        left = time.monotonic()
        if self.program is not None and closed_all(self.program, self.port,
                                                   [leaver.local_port], within=QUIET):
            self.expect_running(EXIT_WATCH, hint)
        else:
            self.expect_running(max(0.0, QUIET - (time.monotonic() - left)), hint)

    def expect_running(self, duration: float, hint: str) -> None:
        """The server must not exit during the next `duration` seconds."""
        status = self.program.wait_exit(duration)
        if status is not None:
            self.conv.fail("the server keeps running", self.conv.exit_note("server"),
                           OnExit(hint))

    def interrupt(self) -> None:
        self._ensure_started()
        self.conv.log("(Ctrl-C: SIGINT sent to the server)")
        self.program.interrupt()

    def stop(self) -> None:
        if self._spare is not None:
            self._spare.close()
        for peer in list(self._peers):
            peer.sock.close()
        if self.program is not None:
            self.program.stop()
