"""alice's flood: many MSGs to one recipient, written in the background while her replies are read.

Checks 10, 13 and 14 of stage 3 (grader/test_3_messaging.py) load a server with it:
a thread writes on alice's socket, made non-blocking, and reads her replies; the
check reads what came of it on its own thread, once the flood has ended, and words
it (the hints are the check's). An error of the flood's own (anything but the
connection's end) is the grader's: wait() and stop() raise it in the check's thread,
where the grader (grading.py) tells it as its own error, never as a flood that stopped
short for the check to judge the server by.
"""

from __future__ import annotations

import bisect
import selectors
import threading
import time

from grader.framing import frame
from grader.wire import FrameReader, is_refusal, show

FLOOD_TEXT = 1000       # each message holds this many bytes of text
FLOOD_LIMIT = 10.0      # checks 10, 13, 14: how long the server may take to answer a flood


class Flood:
    """alice's background sender (checks 10, 13, 14): many MSGs to one recipient, and her replies.

    It runs in its own thread, on alice's socket made non-blocking, so the grader
    itself never blocks: it writes when the socket is writable and reads whenever
    replies arrive (a server may stop reading a client that leaves its own replies
    unread, so alice must read hers). With a `window`, it writes at most that many
    bytes ahead of the replies, so that it can stop soon after a refusal
    (`stop_on_refusal`). It stops when every message it wrote in whole has had its
    reply, when the connection ends, on stop(), or after FLOOD_LIMIT seconds, or on
    an error of its own (kept, and raised by wait() and stop()). It never fails the
    check itself: the check reads its results on the main thread.
    """

    def __init__(self, peer, recipient: str, count: int, window: int | None = None,
                 stop_on_refusal: bool = False) -> None:
        self.peer = peer
        self.sock = peer.sock
        self.recipient = recipient
        self.count = count
        self.messages = [frame(self.payload(i)) for i in range(count)]
        self.ends = []                  # where each message ends in the data
        position = 0
        for message in self.messages:
            position += len(message)
            self.ends.append(position)
        self.data = memoryview(b"".join(self.messages))
        self.window = window
        self.stop_on_refusal = stop_on_refusal
        self.written = 0
        self.end = len(self.data)       # where writing stops: the end, or after a refusal
                                        # the end of the message being written
        self.replies = 0
        self.sent_replies = 0           # 'SENT <recipient>', all of them before any refusal
        self.refusals = 0
        self.unexpected = None          # the first reply that is neither SENT nor a refusal
        self.first = None               # the first reply, and the last one
        self.last = None
        self.ending = ""                # why it stopped before all the replies came
        self.error: Exception | None = None   # an error of its own: the grader's, raised by stop()
        self.limit = peer.conv.patient(FLOOD_LIMIT)   # longer for a server at a breakpoint
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def payload(self, i: int) -> str:
        return "MSG %s %05d%s" % (self.recipient, i, "x" * (FLOOD_TEXT - 5))

    @staticmethod
    def push(i: int) -> bytes:
        """What the recipient receives for message i."""
        return ("FROM alice %05d%s" % (i, "x" * (FLOOD_TEXT - 5))).encode("ascii")

    def megabytes(self, messages: int) -> float:
        return len(frame(self.push(0))) * messages / 1e6

    def start(self) -> None:
        self._thread.start()

    def wait(self) -> None:
        self.done.wait(self.limit + 1)
        self.stop()

    def stop(self) -> None:
        """Stop the flood; raise here, in the check's thread, an error its thread hit."""
        self._stop.set()
        self._thread.join(2.0)
        if self.error is not None:
            raise self.error

    def _may_write(self) -> bool:
        if self.written >= self.end:
            return False
        answered = self.ends[self.replies - 1] if self.replies else 0
        return self.window is None or self.written - answered < self.window

    def _run(self) -> None:
        reader = FrameReader()
        deadline = time.monotonic() + self.limit
        self.sock.setblocking(False)
        selector = selectors.DefaultSelector()
        selector.register(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        wanted = selectors.EVENT_READ | selectors.EVENT_WRITE
        try:
            while not self._stop.is_set():
                if self.replies >= bisect.bisect_right(self.ends, self.end):
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    self.ending = "timeout"
                    return
                events_now = selectors.EVENT_READ | (
                    selectors.EVENT_WRITE if self._may_write() else 0)
                if events_now != wanted:
                    selector.modify(self.sock, events_now)
                    wanted = events_now
                for _, events in selector.select(min(left, 0.1)):
                    if events & selectors.EVENT_WRITE and self._may_write():
                        try:
                            count = self.sock.send(
                                self.data[self.written:min(self.end, self.written + 65536)])
                            self.written += count
                            self.peer.count_sent(count)
                        except BlockingIOError:
                            pass
                        except OSError:
                            self.ending = "closed"
                            return
                    if events & selectors.EVENT_READ:
                        try:
                            chunk = self.sock.recv(65536)
                        except BlockingIOError:
                            continue
                        except OSError:
                            chunk = b""
                        if not chunk:
                            self.ending = "closed"
                            return
                        reader.feed(chunk)
                        if not self._take_replies(reader):
                            return
        except Exception as error:   # the grader's own: never counts as a short flood
            self.error = error
        finally:
            selector.close()
            self.done.set()

    def _take_replies(self, reader: FrameReader) -> bool:
        while True:
            try:
                payload = reader.next_payload()
            except ValueError:
                self.ending = "garbage"
                return False
            if payload is None:
                return True
            self.replies += 1
            if self.first is None:
                self.first = payload
            self.last = payload
            if payload == b"SENT " + self.recipient.encode() and not self.refusals:
                self.sent_replies += 1
            elif is_refusal(payload):
                self.refusals += 1
                if self.stop_on_refusal and self.end == len(self.data):
                    # Finish the message being written (the socket goes on being used),
                    # then write no more.
                    self.end = self.ends[bisect.bisect_left(self.ends, self.written)]
            elif self.unexpected is None:
                self.unexpected = payload

    def summary(self) -> str:
        """One transcript line: what alice got back."""
        text = "alice    ← server  %d replies: %d × 'SENT %s'" % (
            self.replies, self.sent_replies, self.recipient)
        if self.refusals:
            text += ", then %d refusals (the first: %s)" % (self.refusals, show(self.last)
                                                            if self.refusals == 1 else
                                                            "'ERROR …'")
        return text
