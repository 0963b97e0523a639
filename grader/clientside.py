"""The grader as a scripted server, for the checks of the student's chat_client.py.

Here the roles turn around: the grader listens (on 127.0.0.1, a port the OS
picks), starts the student's client as a real process pointed at that port,
types lines into the client's standard input, reads what the client sends with
its own framing code (grader/wire.py, never the student's protocol.py), pushes
messages to it, and watches what it prints (its standard output).

    client = ClientUnderTest(stage_dir, conversation, sandbox)
    link = client.start()          # the client is running and connected
    client.type("hello")           # the user types a line
    link.expect("hello", hint=...) # the client sent it, framed
    link.send("FROM alice hi")     # the server pushes a message
    client.expect_printed("FROM alice hi", hint=...)
    client.stop()                  # always, at teardown

Every wait is bounded, and every failure goes through Conversation.fail, so it
shows the conversation, what was expected, what came, a hint, and the client's
exit status and output.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

from grader import diagnosis, sockdiag
from grader.processes import reading_input
from grader.programs import Program, Sandbox, Spare
from grader.framing import frame
from grader.holders import NOBODY, OURS, THEIRS, UNKNOWN, established_sockets, held_by
from grader.diagnosis import OnExit
from grader.stages import stage
from grader.system import LINUX
from grader.wire import DYING_GRACE, WAIT, Conversation, Peer, show

CONNECT_TIMEOUT = 5.0   # how long the client may take to start and connect
PRINT_WAIT = 2.0        # how long a received message may take to show on the screen
                        # (a correct client takes milliseconds; 1 s once failed a correct
                        # client on a loaded CI machine, and a wrong one never prints at all)
POLL = 0.01             # how often a silent client is looked at again (has it exited?)
INPUT_LOOK = 0.002      # how often, while it starts, whether it waits for input yet
STRAY_WAIT = 1.0        # a connection whose other end is gone: how long to wait for another
PRINTING_CONNECT = 20.0  # a client still printing its start-up may take this long to connect
PRINT_QUIET = 0.5       # ... as long as its output grew within this many seconds
TRACEBACK = b"Traceback (most recent call last)"
# What CPython says when it exits while a daemon thread holds the stdin lock.
STDIN_LOCK_CRASH = b"could not acquire lock for <_io.BufferedReader name='<stdin>'>"


class ClientLink(Peer):
    """The grader's end of the client's connection: the scripted server."""

    program_label = "client"

    def __init__(self, sock: socket.socket, conversation: Conversation, program=None) -> None:
        super().__init__(sock, "client", conversation, program)

    # --- the scripted server talks -----------------------------------------
    def _log_out(self, text: str) -> None:
        self.conv.log("server → client  %s" % text)

    def send_many(self, payloads: list[str]) -> None:
        """Several framed messages in a single write (so one recv may get them all)."""
        self._log_out("%s in one write" % ", ".join(show(p) for p in payloads))
        self._sendall(b"".join(frame(p) for p in payloads))

    def send_pieces(self, pieces: list[bytes], pause: float) -> None:
        """One message in several writes, each its own read: the next piece is sent once
        the client has read the last (or after `pause` seconds, see Peer.wait_until_read)."""
        for number, piece in enumerate(pieces):
            if number:
                self.wait_until_read(pause)   # so that each piece is its own read
            self._log_out("%s (piece %d of %d)" % (show(piece), number + 1, len(pieces)))
            self._sendall(piece)

    def _send_failed(self, error) -> None:
        died = self.conv.exit_note("client", DYING_GRACE)
        if error is None:
            self.conv.waited_on = "client"
            self.conv.fail("the client to read what the server sent",
                           died or "the send did not finish within %.0f s: the client stopped "
                                   "reading" % WAIT,
                           "the client must keep receiving from the socket all the time "
                           "(docs/students.md § The client).")
        self.conv.fail("the client receives what the server sends",
                       "%sthe connection failed: %s" % (died + "; " if died else "", error),
                       "the client crashed: its error is at the end of this check's story."
                       if died else
                       "the client closed its connection while the server was still sending "
                       "to it.")

    def say_bye(self) -> None:
        """What a stage 4 server does after EXIT: reply BYE, then close the connection.
        A client that already left is not blamed here (other checks judge that)."""
        self.sock.settimeout(WAIT)
        try:
            self.count_sent(len(frame("BYE")))
            self.sock.sendall(frame("BYE"))
            self._log_out("'BYE'")
        except OSError:
            self._log_out("'BYE' (not delivered: the client had already closed the connection)")
        self.close()

    def close(self, note: str = "the server closes the connection") -> None:
        self.conv.log(note)
        if self.program is not None:
            self.program.asked_to_end = True   # the client should end now (with BYE, or 1)
        try:
            self.sock.close()
        except OSError:
            pass

    # --- the scripted server listens (Peer's expect methods, reworded) --------
    def heard(self, text: str) -> str:
        return "client → server  %s" % text

    def they_closed(self) -> str:
        return "the client closed the connection"

    def connection(self) -> str:
        return "its connection"


def spare_client(script: Path, sandbox: Sandbox) -> Spare:
    """Listen on a port the OS picks, and start the client pointed at it."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    program = Program([sys.executable, str(script), "--host", "127.0.0.1", "--port", str(port)],
                      "client", sandbox, stdin=True)
    return Spare(program, port, listener)


def whose_connection(program: Program, sock: socket.socket) -> str:
    """Who holds the other end of a connection the grader accepted (Linux): OURS (the
    client program, or a process it started), THEIRS (another program), NOBODY (that
    end is closed already), or UNKNOWN where the system can't tell."""
    if not LINUX:
        return UNKNOWN
    try:
        (peer_host, peer_port), (host, port) = sock.getpeername()[:2], sock.getsockname()[:2]
    except OSError:
        return NOBODY   # reset already
    if peer_host == host == "127.0.0.1":   # the kernel finds one connection by its ports
        try:
            found_one = sockdiag.connection(peer_port, port)
        except sockdiag.Unanswered:
            pass
        else:
            if found_one is None or found_one[0] != sockdiag.TCP_ESTABLISHED:
                return NOBODY
            return OURS if held_by(program, {"socket:[%d]" % found_one[1]}) else THEIRS
    found, tables = set(), 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):   # a client may connect from IPv6
        sockets = established_sockets(table, peer_port, port)
        if sockets is not None:
            found |= sockets
            tables += 1
    if not tables:
        return UNKNOWN
    if not found:
        return NOBODY
    return OURS if held_by(program, found) else THEIRS


class ClientUnderTest:
    """The student's chat client for one check, and the scripted server it talks to."""

    def __init__(self, stage_dir: Path, conversation: Conversation, sandbox: Sandbox) -> None:
        self.stage_dir = stage_dir
        self.sandbox = sandbox     # the grading's programs (programs.py)
        self.script = stage_dir / "chat_client.py"
        self.conv = conversation
        self.program: Program | None = None
        self.link: ClientLink | None = None
        self._listener: socket.socket | None = None
        self._matched_at: int | None = None   # where the last matched stdout line starts
        self._scan_from = 0                   # stdout before this offset has been searched
        self._skip_line = False               # the line at _scan_from was matched already

    # --- starting ----------------------------------------------------------
    def start(self) -> ClientLink:
        """Listen, start the client pointed at us, and wait (bounded) until it connects."""
        if not self.script.is_file():
            self.conv.fail("a client program at %s" % self.script, "no such file",
                           "each stage folder needs chat_server.py and chat_client.py "
                           "(see docs/students.md § Running).")
        spare = self.sandbox.take_spare(self.script) or spare_client(self.script, self.sandbox)
        # The next check's client, started now (programs.py § spares).
        if self.sandbox.wants_spare(self.script):
            self.sandbox.keep_spare(self.script, spare_client(self.script, self.sandbox))
        self.program, self._listener, port = spare.program, spare.listener, spare.port
        self.conv.programs.append(self.program)
        self.conv.log("(the grader plays the server on 127.0.0.1:%d and starts "
                      "%s/%s/chat_client.py --host 127.0.0.1 --port %d)"
                      % (port, self.stage_dir.parent.name, self.stage_dir.name, port))
        self.link = ClientLink(self._accept(port), self.conv, self.program)
        self.conv.log("client connects")
        return self.link

    def wait_until_reading_input(self, most: float) -> None:
        """Wait until the client waits for the user to type (a thread blocked reading
        standard input: processes.reading_input), `most` seconds at most. Where the system
        can't tell, the user simply types nothing for `most` seconds."""
        deadline = time.monotonic() + most
        while time.monotonic() < deadline:
            reading = reading_input(self.program)
            if reading is None:
                break
            if reading:
                return
            time.sleep(INPUT_LOOK)
        time.sleep(max(0.0, deadline - time.monotonic()))

    def _printed(self) -> int:
        """How many bytes the client has printed so far (both streams)."""
        return sum(getattr(getattr(self.program, name, None), "total", 0)
                   for name in ("out", "err"))

    def _accept(self, port: int) -> socket.socket:
        """The client's connection. Not any connection: on a machine grading several
        submissions at once, another grading's program may knock on this port (see
        serverside.whose_listener), and that is not the client."""
        deadline = self.program.started + CONNECT_TIMEOUT   # a spare may have started earlier
        closed = None   # a connection whose other end is already gone: the client's, or not
        self._listener.settimeout(0.05)
        printed, grew_at = self._printed(), time.monotonic()
        while True:
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                sock = None
            whose = whose_connection(self.program, sock) if sock is not None else None
            if whose in (OURS, UNKNOWN):
                if closed is not None:
                    closed.close()
                sock.settimeout(WAIT)
                return sock
            if whose == THEIRS:
                sock.close()
            elif whose == NOBODY:   # keep it, in case no other comes: then it was the client's
                if closed is not None:
                    closed.close()
                closed = sock
                deadline = max(deadline, time.monotonic() + STRAY_WAIT)
            status = self.program.exit_status()
            now = time.monotonic()
            if self._printed() != printed:
                printed, grew_at = self._printed(), now
            # Late: past the deadline, unless it is still printing its start-up (busy, not
            # stuck: a long log before connecting), for a bounded while.
            late = now >= deadline and not (now - grew_at < PRINT_QUIET
                                             and now < self.program.started + PRINTING_CONNECT)
            if (status is not None or late) and closed is not None:
                closed.settimeout(WAIT)
                return closed   # the client connected and closed: the check judges that
            if status is not None:
                self.conv.fail("the client connects to 127.0.0.1:%d" % port,
                               "it exited with status %s without connecting" % status,
                               OnExit("the client must connect to the --host and --port given "
                                      "on its command line (argparse; defaults 127.0.0.1 and "
                                      "7777). Its error is at the end of this check's story "
                                      "(docs/students.md § Running)."))
            if late:
                self.conv.waited_on = "client"
                self.conv.fail("the client connects to 127.0.0.1:%d" % port,
                               "no connection within %.0f s" % CONNECT_TIMEOUT,
                               "the client must connect at start, to the --host and --port it is "
                               "given (argparse; defaults 127.0.0.1 and 7777) (docs/students.md § Running).")

    # --- the user at the keyboard ------------------------------------------
    def type(self, line: str, note: str | None = None, ending: str = "\n") -> None:
        """Type one line into the client's standard input, with its line ending
        (Enter gives "\\n"; a Windows console gives "\\r\\n" to a program reading bytes)."""
        if note is None:
            note = show(line) + (" (an empty line)" if line == "" else "")
        if ending != "\n":
            note += " ending in %s" % ending.encode("unicode_escape").decode()
        self.conv.log("you type %s" % note)
        if line == "EXIT" and stage(self.stage_dir.name).client_says_exit:
            self.program.asked_to_end = True   # it may leave now (after BYE)
        self._write((line + ending).encode("utf-8"))

    def _write(self, data: bytes) -> None:
        try:
            self.program.was_sent(len(data))
            self.program.proc.stdin.write(data)
            self.program.proc.stdin.flush()
            return
        except (OSError, ValueError):
            pass
        # Failing outside the except clause keeps the exception chain out of the report.
        died = self.conv.exit_note("client", DYING_GRACE)
        self.conv.fail("the client reads what you type",
                       "its standard input is closed" + (": " + died if died else ""),
                       "the client must keep reading lines until the input ends "
                       "(docs/students.md § The client).")

    def end_input(self) -> None:
        """End of input, as Ctrl-D (Ctrl-Z Enter on Windows) does: stdin is closed."""
        self.conv.log("you end the input (Ctrl-D: standard input closed)")
        self.program.asked_to_end = True
        try:
            self.program.proc.stdin.close()
        except OSError:
            pass

    # --- the screen ----------------------------------------------------------
    def expect_printed(self, text: str, hint: str, within: float = PRINT_WAIT) -> bytes:
        """Wait (bounded) until the client prints a line containing `text`, after the
        line matched last time (so successive calls also check order and separate lines)."""
        within = self.conv.patient(within)   # longer for a client at a breakpoint
        deadline = time.monotonic() + within
        while True:
            exited = self.program.exit_status() is not None   # before reading: no output lost
            seen = self.program.stdout_count()                # ... nor any wake-up
            line = self._find_line(text.encode("utf-8"))
            if line is not None:
                self.conv.log("client prints %s" % show(line))
                return line
            if exited or time.monotonic() >= deadline:
                break
            self.program.wait_stdout_past(seen, POLL)   # at once when it prints more
        self.conv.waited_on = "client"
        self.conv.fail("the client prints a line containing %s" % show(text),
                       self._printed_so_far(within), hint)

    def _find_line(self, target: bytes) -> bytes | None:
        """The first line at or after the scan position (skipping the line matched last
        time) that contains `target`. Complete lines never change, so each is looked at
        once: a client that prints megabytes is not re-read on every poll."""
        base, data = self.program.stdout_since(self._scan_from)
        pos = 0
        if self._skip_line and base == self._scan_from:   # the line matched last time starts at `base`
            end = data.find(b"\n")
            if end < 0:
                return None             # ... and has not even ended yet
            pos = end + 1
        while True:
            end = data.find(b"\n", pos)
            line = data[pos:] if end < 0 else data[pos:end]
            if target in line:
                self._scan_from, self._skip_line = base + pos, True
                self._matched_at = base + pos
                return line.rstrip(b"\r")
            if end < 0:                 # an unfinished line: look at it again next time
                self._scan_from, self._skip_line = base + pos, False
                return None
            pos = end + 1

    def _printed_so_far(self, within: float) -> str:
        after = self._matched_at is not None
        data = self.program.stdout_since(self._matched_at or 0)[1]
        if after:
            end = data.find(b"\n")
            data = b"" if end < 0 else data[end + 1:]
        lines = data.decode("utf-8", "replace").splitlines()
        status = self.program.exit_status()
        how = ("it exited (status %s)" % status) if status is not None else (
            "nothing matching within %.1f s" % within)
        if not lines:
            return "%s; it printed nothing%s" % (
                how, " after the line for the message before" if after else "")
        return "%s; %s:\n%s" % (
            how, "after the line for the message before, it printed" if after
            else "its standard output so far",
            "\n".join("    | " + line[:200] for line in lines[-15:]))

    def output_size(self) -> int:
        """How much the client has written so far, standard output and error together."""
        return self.program.printed()

    # --- the process -------------------------------------------------------
    def expect_exit(self, allowed: tuple[int, ...], within: float, hint: str) -> int:
        """The client must exit within `within` seconds, with one of the `allowed` statuses."""
        wanted = " or ".join(str(s) for s in allowed)
        within = self.conv.patient(within)   # longer for a client at a breakpoint
        status = self.program.wait_exit(within)
        if status is None:
            self.conv.waited_on = "client"
            self.conv.fail("the client exits with status %s" % wanted,
                           "it was still running %.0f s later" % within, hint)
        if status not in allowed:
            got = "it " + diagnosis.exited_with(self.program, status)
            if STDIN_LOCK_CRASH in self.program.stderr():
                hint = ("Python crashed while exiting, because a daemon thread was still blocked "
                        "reading standard input, and Python's shutdown could not take the "
                        "lock that thread holds. Flush your output, then end with "
                        "os._exit(status): it exits at once, without that shutdown.")
            self.conv.fail("the client exits with status %s" % wanted, got, hint)
        self.conv.log("client exits with status %s" % status)
        return status

    def expect_running(self, hint: str) -> None:
        status = self.program.exit_status()
        if status is not None:
            self.conv.fail("the client keeps running", self.conv.exit_note("client"),
                           OnExit(hint))

    def expect_no_traceback(self, hint: str) -> None:
        """Neither output may hold a Python traceback."""
        for name, data in (("standard error", self.program.stderr()),
                           ("standard output", self.program.stdout())):
            at = data.find(TRACEBACK)
            if at >= 0:
                trace = data[at:].decode("utf-8", "replace").rstrip().splitlines()[-12:]
                self.conv.fail("no traceback: the client ends cleanly",
                               "a traceback on its %s:\n%s" % (
                                   name, "\n".join("    | " + line for line in trace)), hint)

    def stop(self) -> None:
        """Stop the client (and its process group), and close the grader's sockets."""
        if self.program is not None:
            self.program.stop()
        for sock in (self.link.sock if self.link else None, self._listener):
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass
