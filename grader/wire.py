"""The grader's own side of the wire: framing, scripted clients, transcripts.

The grader never imports the student's protocol.py: a student who breaks the
framing there must be caught, not agreed with. So this module frames and
unframes by itself (SPEC section 3), and keeps a transcript of everything that
crossed the wire so a failing check can show the whole conversation.
"""

from __future__ import annotations

import socket
import struct
import time

import pytest

HEADER_SIZE = 4
MAX_PAYLOAD = 1024
WAIT = 2.0          # how long we wait for a reply before calling it missing
QUIET = 0.3         # how long "nothing arrives" must hold to count as silence
TRANSCRIPT_LINES = 40
HEADER_PAUSE = 0.02  # send_bytewise: the pause after each header byte ...
BYTE_PAUSE = 0.002   # ... and after each payload byte


def frame(payload: bytes | str) -> bytes:
    """Header (4 ASCII digits: the length in bytes) followed by the payload."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return b"%04d" % len(payload) + payload


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


class Conversation:
    """Everything said in one check, and the way a check fails."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.programs: list = []   # processes whose output helps explain a failure

    def log(self, line: str) -> None:
        self.lines.append(line)

    def fail(self, expected: str, got: str, hint: str) -> None:
        """Stop the check with the conversation, what we wanted, what came, and a hint."""
        parts = []
        if self.lines:
            shown = self.lines[-TRANSCRIPT_LINES:]
            skipped = len(self.lines) - len(shown)
            parts.append("The conversation so far:")
            if skipped:
                parts.append("    … (%d earlier lines)" % skipped)
            parts.extend("    " + line for line in shown)
        parts.append("Expected: " + expected)
        parts.append("Got:      " + got)
        if hint:
            parts.append("Hint:     " + hint)
        for program in self.programs:
            report = program.describe()
            if report:
                parts.append(report)
        pytest.fail("\n".join(parts), pytrace=False)


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
        header = self.buffer[:HEADER_SIZE]
        if not all(48 <= b <= 57 for b in header) or int(header) > MAX_PAYLOAD:
            raise ValueError(header)
        end = HEADER_SIZE + int(header)
        if len(self.buffer) < end:
            return None
        payload, self.buffer = self.buffer[HEADER_SIZE:end], self.buffer[end:]
        return payload


# What one read from a peer can turn out to be.
MESSAGE, CLOSED, TIMEOUT, GARBAGE = "message", "closed", "timeout", "garbage"


class Peer:
    """One scripted client connected to the server under test."""

    def __init__(self, sock: socket.socket, label: str, conversation: Conversation) -> None:
        self.sock = sock
        self.label = label
        self.conv = conversation
        self.reader = FrameReader()
        self.closed = False

    # --- sending -----------------------------------------------------------
    def send(self, payload: bytes | str, note: str | None = None, log: bool = True) -> None:
        """Send one framed message (log=False: leave it out of the transcript)."""
        if log:
            self._log_out(note or show(payload))
        self._sendall(frame(payload))

    def send_raw(self, data: bytes, note: str | None = None) -> None:
        """Send bytes exactly as given (a piece of a message, a bad header...)."""
        self._log_out(note or "raw bytes " + show(data))
        self._sendall(data)

    def send_bytewise(self, payload: bytes | str) -> None:
        """Send one framed message one byte at a time, each byte its own write.

        The pauses are the point, not a synchronisation: they make each byte its
        own TCP segment, and give the server time to read half a header (a
        server that assumes recv(4) returns 4 bytes must get the chance to fail).
        """
        data = frame(payload)
        self._log_out("%s, one byte at a time" % show(payload))
        for i in range(len(data)):
            self._sendall(data[i:i + 1])
            time.sleep(HEADER_PAUSE if i < HEADER_SIZE else BYTE_PAUSE)

    def _log_out(self, text: str) -> None:
        self.conv.log("%-8s → server  %s" % (self.label, text))

    def _sendall(self, data: bytes) -> None:
        self.sock.settimeout(WAIT)
        try:
            self.sock.sendall(data)
        except socket.timeout:
            self.conv.fail("the server to read what %s sent" % self.label,
                           "the send did not finish within %.0f s: the server stopped reading" % WAIT,
                           "is the server stuck somewhere (a blocking call, an endless loop)?")
        except OSError as error:
            self.conv.fail("to send to the server", "the connection failed: %s" % error,
                           "the server closed this connection unexpectedly.")

    # --- receiving ---------------------------------------------------------
    def read_event(self, timeout: float = WAIT):
        """Wait for the next message; return (kind, payload) with kind one of
        MESSAGE, CLOSED, TIMEOUT, GARBAGE. Never raises, never waits past timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                payload = self.reader.next_payload()
            except ValueError:
                return GARBAGE, self.reader.buffer[:40]
            if payload is not None:
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

    def nothing_heard(self) -> str:
        return "%s receives nothing" % self.label

    def describe_event(self, kind: str, payload, timeout: float = WAIT) -> str:
        if kind == MESSAGE:
            return self.heard(show(payload))
        if kind == CLOSED:
            return self.they_closed()
        if kind == TIMEOUT:
            return "nothing within %.1f s (timed out waiting)" % timeout
        return ("bytes that are not a valid message header (4 digits, at most 1024): %s"
                % show(payload))

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

    def expect_error(self, hint: str, timeout: float = WAIT) -> None:
        """The next message must be an ERROR reply (only the word ERROR is checked)."""
        kind, payload = self.read_event(timeout)
        if kind == MESSAGE and payload.split(b" ", 1)[0] == b"ERROR":
            self.conv.log(self.heard(show(payload)))
            return
        self.conv.fail(self.heard("'ERROR <reason>'"), self.describe_event(kind, payload, timeout),
                       hint)

    def expect_closed(self, hint: str, timeout: float = WAIT) -> None:
        """The other side must close this connection (and send nothing more)."""
        kind, payload = self.read_event(timeout)
        if kind == CLOSED:
            self.conv.log(self.they_closed())
            return
        self.conv.fail(self.they_closed(), self.describe_event(kind, payload, timeout), hint)

    def expect_silence(self, hint: str, duration: float = QUIET) -> None:
        """Nothing may arrive for `duration` seconds."""
        kind, payload = self.read_event(duration)
        if kind == TIMEOUT:
            return
        self.conv.fail(self.nothing_heard(), self.describe_event(kind, payload, duration), hint)

    # --- leaving -----------------------------------------------------------
    def close(self, note: str = "closes its connection") -> None:
        self.conv.log("%-8s %s" % (self.label, note))
        self.sock.close()

    def reset(self) -> None:
        """Vanish abruptly: close with SO_LINGER 0, which sends a TCP reset."""
        self.conv.log("%-8s vanishes (connection reset)" % self.label)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
