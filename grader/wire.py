"""The grader's own side of the wire: framing, scripted clients, transcripts.

The grader never imports the student's protocol.py: a student who breaks the
framing there must be caught, not agreed with. So this module frames and
unframes by itself (docs/students.md § Framing), and keeps a transcript of everything
that crossed the wire so a failing check can show the whole conversation.

This is the lowest layer: it imports nothing of the grader's above framing.py and
sockdiag.py. How a failure is told in full (where a program is, why it exited)
is grader/failure.py's, whose Conversation the checks are given: the wire calls
it back through the methods its own Conversation defines plainly (explanation,
told_exit, on_send, on_message).
"""

from __future__ import annotations

import re
import socket
import struct
import time

from grader import sockdiag
from grader.framing import HEADER_SIZE, frame, payload_length


WAIT = 2.0          # how long we wait for a reply before calling it missing
QUIET = 0.3         # how long "nothing arrives" must hold to count as silence
TRANSCRIPT_LINES = 40
DYING_GRACE = 0.2   # a connection just closed: how long to wait to see whether the program died
HEADER_PAUSE = 0.02  # send_bytewise: the longest wait for a header byte to be read ...
BYTE_PAUSE = 0.002   # ... and for a payload byte
READ_LOOK = 0.0005   # wait_until_read: how often the kernel is asked again


def show(data: bytes | str, limit: int = 70) -> str:
    """A payload as a student can read it: quoted, escaped, shortened."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    text = data.decode("utf-8", "backslashreplace")
    text = "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode()
                   for c in text)
    if len(text) > limit:
        return "'%s…' (%d bytes)" % (text[:limit], len(data))
    return "'%s'" % text


def with_bytes(note: str | None, data: bytes | str) -> str:
    """A transcript's words for what was sent: the note, and the bytes themselves unless
    the note shows them (a note alone, such as "bad header 'abcd'", would hide the rest)."""
    shown = show(data)
    if not note:
        return shown
    return note if shown in note else "%s (the bytes: %s)" % (note, shown)


def is_error(payload: bytes) -> bool:
    """Is this the reply 'ERROR <reason>' (or 'ERROR' alone), word for word?"""
    return payload.split(b" ", 1)[0] == b"ERROR"


def is_refusal(payload: bytes) -> bool:
    """Does this reply plainly mean 'refused'? Its first word is ERROR, spelt or cased
    a little differently ('Error:', 'EROR', 'ERR'); never a success reply."""
    words = payload.split(None, 1)
    word = re.sub(rb"[^A-Za-z]", b"", words[0]).upper() if words else b""
    return word.startswith(b"ERR") or (len(word) >= 3 and edit_distance(word, b"ERROR") <= 2)


OWN_ERROR = "The grader hit an error of its own"   # how a bug of the grader's reads


def essentials(output: str, limit: int = 8) -> list[str]:
    """The Expected/Got/Hint lines of a failure (or its first lines if it has none)."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Expected:")), None)
    if start is None:
        return lines[:limit]
    kept = []
    for line in lines[start:]:
        if line.startswith("The ") and ("standard" in line or "exited" in line):
            break   # the program's output follows: above, in the full story
        kept.append(line)
    return kept[:limit]


def error_word_hint(reply: bytes) -> str:
    """The hint for a refusal whose first word is not exactly ERROR."""
    return ("the reply must begin with the word ERROR exactly as written: capital letters, "
            "then a space and the reason (docs/students.md § The protocol). This reply starts with %s."
            % show(reply.split(None, 1)[0]))


def edit_distance(a: bytes, b: bytes) -> int:
    """Levenshtein distance: insertions, deletions and substitutions."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return row[-1]


class CheckFailed(AssertionError):
    """A check failed: its text is the whole explanation (the conversation, Expected,
    Got, Hint), shown to the student as it is, with no traceback (grading.py)."""


class Conversation:
    """Everything said in one check, and the way a check fails."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.programs: list = []   # processes whose output helps explain a failure
        self.messages_heard = 0    # whole messages received from the program under test
        self.patience = 1.0        # waits for what must come are this many times longer
                                   # (grader/attach.py: a server at a breakpoint)
        self.waited_on = None      # the program a check waited on in vain: asked where it is
        self.seen_before_stop = None   # where a program was when the check ran out of time

    def patient(self, seconds: float) -> float:
        """How long to wait for something that must come (a reply, a close), where a
        normal grading waits `seconds`. Never for a silence: nothing-must-come waits
        keep their length, or an attached run would sit minutes on every one."""
        return seconds * self.patience

    def program(self, label: str):
        """The program labelled `label` ("server", "client") in this check, if one started."""
        for program in reversed(self.programs):
            if program.label == label:
                return program
        return None

    def exit_note(self, label: str, grace: float = 0.0) -> str:
        """'the server exited with status 1' if that program has ended (waiting at most
        `grace` seconds for it to), else ''. Said first when a connection closed or went
        quiet, because then the cause is the program's end, not the protocol."""
        program = self.program(label)
        if program is None:
            return ""
        status = program.wait_exit(grace) if grace else program.exit_status()
        if status is None:
            return ""
        return self.told_exit(program, status)

    def told_exit(self, program, status: int) -> str:
        """How a program that has ended is told: here its status (failure.py tells more)."""
        return "the %s exited with status %s" % (program.label, status)

    def on_send(self, label: str, data: bytes) -> None:
        """Scripted client `label` is sending `data` (failure.py notes an EXIT)."""

    def on_message(self, payload: bytes) -> None:
        """A whole message came from the program under test (failure.py notes a stand-in's)."""
        self.messages_heard += 1

    def log(self, line: str) -> None:
        self.lines.append(line)

    def transcript(self) -> list[str]:
        """'The conversation so far:' and its last lines (none if nothing was said)."""
        if not self.lines:
            return []
        shown = self.lines[-TRANSCRIPT_LINES:]
        skipped = len(self.lines) - len(shown)
        parts = ["The conversation so far:"]
        if skipped:
            parts.append("    … (%d earlier lines)" % skipped)
        return parts + ["    " + line for line in shown]

    def fail(self, expected: str, got: str, hint) -> None:
        """Stop the check with the conversation, what we wanted, what came, and a hint."""
        raise CheckFailed(self.explanation(expected, got, hint))

    def explanation(self, expected: str, got: str, hint) -> str:
        """The conversation, what we wanted, what came, and a hint (failure.py tells more).

        `hint` is a sentence, or a function that returns one: a hint that depends on
        what happened meanwhile (e.g. on another thread's findings) is made only now."""
        if callable(hint):
            hint = hint()
        return "\n".join(self.told(expected, got, [], hint))

    def told(self, expected: str, got: str, where: list[str], hint) -> list[str]:
        """A failure's lines: the conversation, Expected, Got, the Where lines, Hint."""
        parts = self.transcript()
        parts.append("Expected: " + expected)
        parts.append("Got:      " + got)
        parts.extend(where)
        if hint:
            parts.append("Hint:     " + hint)
        return parts


class FrameReader:
    """Bytes in, complete payloads out (the grader's own decoder)."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def next_payload(self):
        """The next complete payload, None if incomplete; raises ValueError on a bad header."""
        if len(self.buffer) < HEADER_SIZE:
            return None
        end = HEADER_SIZE + payload_length(self.buffer[:HEADER_SIZE])   # FramingError
        if len(self.buffer) < end:
            return None
        payload, self.buffer = self.buffer[HEADER_SIZE:end], self.buffer[end:]
        return payload


# What one read from a peer can turn out to be.
MESSAGE, CLOSED, TIMEOUT, GARBAGE = "message", "closed", "timeout", "garbage"


class Peer:
    """One scripted client connected to the server under test."""

    program_label = "server"   # the program at the other end of this connection

    def __init__(self, sock: socket.socket, label: str, conversation: Conversation,
                 program=None) -> None:
        self.sock = sock
        self.label = label
        self.conv = conversation
        self.program = program     # the program at the other end, if the grader started it
        self.reader = FrameReader()
        self.closed = False
        try:
            self.local_port = sock.getsockname()[1]   # the connection's port at this end
        except (OSError, IndexError):
            self.local_port = 0

    # --- sending -----------------------------------------------------------
    def send(self, payload: bytes | str, note: str | None = None, log: bool = True) -> None:
        """Send one framed message (log=False: leave it out of the transcript)."""
        if log:
            self._log_out(with_bytes(note, payload))
        self._sendall(frame(payload))

    def send_raw(self, data: bytes, note: str | None = None) -> None:
        """Send bytes exactly as given (a piece of a message, a bad header...)."""
        self._log_out(with_bytes(note, data) if note else "raw bytes " + show(data))
        self._sendall(data)

    def send_bytewise(self, payload: bytes | str) -> None:
        """Send one framed message one byte at a time, each byte its own write.

        After each byte the grader waits until the server has read it, so each byte
        is a read of its own: the server reads half a header (a server that assumes
        recv(4) returns 4 bytes must get the chance to fail).
        """
        data = frame(payload)
        self._log_out("%s, one byte at a time" % show(payload))
        for i in range(len(data)):
            self._sendall(data[i:i + 1])
            self.wait_until_read(HEADER_PAUSE if i < HEADER_SIZE else BYTE_PAUSE)

    def wait_until_read(self, most: float) -> None:
        """Wait until the program at the other end has read every byte sent to it,
        `most` seconds at most, so that what is sent next comes to it as a read of its
        own. Linux says when (sockdiag.unread) for a connection on 127.0.0.1: then
        this takes a fraction of a millisecond. Elsewhere the whole `most` is waited,
        a pause long enough for a program that is not kept from running."""
        deadline = time.monotonic() + most
        while time.monotonic() < deadline:
            left = self._unread()
            if left is None:
                break
            if left == 0:
                return
            time.sleep(READ_LOOK)
        time.sleep(max(0.0, deadline - time.monotonic()))

    def _unread(self) -> int | None:
        """How many bytes sent the other end has not read yet; None if the kernel
        can't tell (not Linux, not a connection on 127.0.0.1)."""
        try:
            here, there = self.sock.getsockname()[:2], self.sock.getpeername()[:2]
            if here[0] != "127.0.0.1" or there[0] != "127.0.0.1":
                return None
            return sockdiag.unread(here[1], there[1])
        except (OSError, sockdiag.Unanswered):
            return None

    def _log_out(self, text: str) -> None:
        self.conv.log("%-8s → server  %s" % (self.label, text))

    def count_sent(self, count: int) -> None:
        """Tell the program at the other end that it was sent `count` bytes (it may print
        in proportion to what it is sent: the output limit stops runaways only)."""
        if self.program is not None:
            self.program.was_sent(count)

    def _sendall(self, data: bytes) -> None:
        self.count_sent(len(data))
        self.conv.on_send(self.label, data)
        self.sock.settimeout(self.conv.patient(WAIT))
        try:
            self.sock.sendall(data)
            return
        except socket.timeout:
            problem = None
        except OSError as error:
            problem = error
        # Failing here, outside the except clause, keeps pytest from printing the
        # socket's exception chain in front of the report.
        self._send_failed(problem)

    def _send_failed(self, error) -> None:
        died = self.conv.exit_note("server", DYING_GRACE)
        if error is None:
            self.conv.waited_on = "server"
            self.conv.fail("the server to read what %s sent" % self.label,
                           died or "the send did not finish within %.0f s: the server "
                                   "stopped reading" % self.conv.patient(WAIT),
                           "is the server stuck somewhere (a blocking call, an endless loop)?")
        self.conv.fail("%s's message reaches the server" % self.label,
                       "%sthe connection failed: %s" % (died + "; " if died else "", error),
                       "the server crashed: its error is at the end of this check's story."
                       if died else
                       "the server closed this connection while the client was still "
                       "sending to it.")

    # --- receiving ---------------------------------------------------------
    def read_event(self, timeout: float = WAIT, quiet: bool = False):
        """Wait for the next message; return (kind, payload) with kind one of
        MESSAGE, CLOSED, TIMEOUT, GARBAGE. Never raises, never waits past timeout
        (stretched by the conversation's patience unless this is a wait for
        silence, `quiet`)."""
        deadline = time.monotonic() + (timeout if quiet else self.conv.patient(timeout))
        while True:
            try:
                payload = self.reader.next_payload()
            except ValueError:
                return GARBAGE, self.reader.buffer[:40]
            if payload is not None:
                self.conv.on_message(payload)
                return MESSAGE, payload
            if self.closed:
                return CLOSED, None
            left = deadline - time.monotonic()
            if left <= 0:
                return TIMEOUT, None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return TIMEOUT, None
            except OSError:
                data = b""
            if not data:
                self.closed = True
            self.reader.feed(data)

    # How the transcript words things; the scripted server (clientside.py) rewords them.
    def heard(self, text: str) -> str:
        """A message that reached us: 'alice    ← server  'HELLO alice''."""
        return "%-8s ← server  %s" % (self.label, text)

    def they_closed(self) -> str:
        return "the server closed %s's connection" % self.label

    def connection(self) -> str:
        return "%s's connection" % self.label

    def describe_event(self, kind: str, payload, timeout: float = WAIT) -> str:
        if kind == MESSAGE:
            return self.heard(show(payload))
        if kind == GARBAGE:
            if payload[:HEADER_SIZE].isdigit():   # 4 digits, yet a bad header: over 1024
                return ("a message whose header announces %d bytes, more than the 1024 a "
                        "message may hold: %s" % (int(payload[:HEADER_SIZE]), show(payload)))
            return ("bytes that are not a valid message header (4 digits, at most 1024): %s"
                    % show(payload))
        # Nothing came, or the connection closed: if the program has died, that is the news.
        died = self.conv.exit_note(self.program_label, DYING_GRACE if kind == CLOSED else 0)
        if kind == CLOSED:
            return "%s; %s closed with it" % (died, self.connection()) if died \
                else self.they_closed()
        what = "nothing within %.1f s (timed out waiting)" % self.conv.patient(timeout)
        self.conv.waited_on = self.program_label
        return "%s; %s" % (died, what) if died else what

    def receive(self, what: str, hint: str, timeout: float = WAIT) -> bytes:
        """The next payload; fail with `what` as the expectation if none comes."""
        kind, payload = self.read_event(timeout)
        if kind != MESSAGE:
            self.conv.fail(self.heard(what), self.describe_event(kind, payload, timeout), hint)
        self.conv.log(self.heard(show(payload)))
        return payload

    def expect(self, expected: bytes | str, hint: str, timeout: float = WAIT) -> None:
        """The next message must be exactly `expected`."""
        if isinstance(expected, str):
            expected = expected.encode("utf-8")
        kind, payload = self.read_event(timeout)
        if kind == MESSAGE and payload == expected:
            self.conv.log(self.heard(show(payload)))
            return
        self.conv.fail(self.heard(show(expected)), self.describe_event(kind, payload, timeout),
                       hint)

    def expect_error(self, hint: str, timeout: float = WAIT, exact: bool = False) -> bytes:
        """The next message must refuse what was asked: an ERROR reply.

        Only one check per stage judges the word itself (exact=True): elsewhere a
        reply whose first word is a near miss ('EROR', 'Error:') counts as the
        refusal it plainly is, so one misspelt word costs one check per stage, not
        every check that expects a refusal. Whether the refusal changed nothing is
        judged by the server's state (GET_NAMES, a later exchange), not by the word.
        """
        kind, payload = self.read_event(timeout)
        if kind == MESSAGE and (is_error(payload) or (not exact and is_refusal(payload))):
            self.conv.log(self.heard(show(payload)))
            return payload
        if kind == MESSAGE and is_refusal(payload):
            hint = error_word_hint(payload)
        self.conv.fail(self.heard("'ERROR <reason>'"), self.describe_event(kind, payload, timeout),
                       hint)

    def refusal_says_error(self, payload: bytes | str, note: str | None = None) -> None:
        """Send `payload`, which the contract refuses; if the reply refuses it, its first
        word must be ERROR, word for word.

        Only the word is judged here (each stage's one check of the word goes through
        every refusal the stage introduces): a reply that is no refusal, or no reply,
        is the business of the check about that behaviour, so it costs nothing here.
        """
        self.send(payload, note=note)
        kind, reply = self.read_event()
        if kind == MESSAGE and is_refusal(reply) and not is_error(reply):
            self.conv.fail(self.heard("'ERROR <reason>'"), self.describe_event(kind, reply),
                           error_word_hint(reply))
        if kind == MESSAGE:
            self.conv.log(self.heard(show(reply)))
        else:
            self.conv.log("%-8s (no reply to judge here: another check judges that)"
                          % self.label)

    def expect_closed(self, hint: str, timeout: float = WAIT) -> None:
        """The other side must close this connection (and send nothing more)."""
        kind, payload = self.read_event(timeout)
        if kind == CLOSED:
            self.conv.log(self.they_closed())
            return
        self.conv.fail(self.they_closed(), self.describe_event(kind, payload, timeout), hint)

    def expect_end(self, hint: str) -> str:
        """Nothing more may arrive: the server closes the connection, or stays silent
        for QUIET seconds. For checks that judge what comes (or not) before the end,
        not the close itself (that has its own check). Returns CLOSED or TIMEOUT."""
        kind, payload = self.read_event(QUIET, quiet=True)
        if kind == CLOSED:
            self.conv.log(self.they_closed())
        if kind == TIMEOUT:
            self.conv.log("%-8s receives nothing more (within %.1f s)" % (self.label, QUIET))
        if kind in (CLOSED, TIMEOUT):
            return kind
        self.conv.fail("nothing more for %s: the server closes the connection, or sends "
                       "nothing else" % self.label, self.describe_event(kind, payload), hint)

    # --- leaving -----------------------------------------------------------
    def close(self, note: str = "closes its connection") -> None:
        self.conv.log("%-8s %s" % (self.label, note))
        self.sock.close()

    def shut_sending_side(self) -> None:
        """Close only the sending half (shutdown(SHUT_WR)): the server's recv() returns
        b'', while this end can still read what the server does next."""
        self.conv.log("%-8s closes its sending side (shutdown(SHUT_WR)), and goes on "
                      "listening" % self.label)
        self.sock.shutdown(socket.SHUT_WR)

    def reset(self) -> None:
        """Vanish abruptly: close with SO_LINGER 0, which sends a TCP reset."""
        self.conv.log("%-8s vanishes (connection reset)" % self.label)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
