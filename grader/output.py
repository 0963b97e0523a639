"""A program's output: drained from its pipes at once, every byte counted, the end kept.

A program that prints megabytes never blocks on an undrained pipe, and never fills
the disk (no file): the grader counts every byte and keeps only the end of each
stream (KEEP_BYTES), which a failure shows (TAIL_BYTES of it).
"""

from __future__ import annotations

import os
import select
import threading
import time

from grader.system import POSIX, bytes_waiting

TAIL_BYTES = 3000       # how much of a program's output a failure shows
KEEP_BYTES = 512 * 1024  # how much of each output stream is kept (its end)
READ_SIZE = 65536       # one read from a program's output pipe
WINDOWS_POLL = 0.005    # Windows: how often an empty output pipe is looked at again
WINDOWS_FLOWING = 0.05  # ... but at once for this long after it last held bytes


class Output:
    """One output stream of a program (a pipe): every byte counted, the last ones kept.

    A thread of its own drains the pipe as soon as something arrives, so the program
    never blocks on a full pipe. Reads happen under a lock, and whoever looks at the
    output first takes what is waiting in the pipe (`take`): so, as with a file,
    what the program wrote before you look is there when you look.

    Offsets count from the program's first byte, so a reader can ask for "what
    came after offset N" however much was dropped meanwhile."""

    def __init__(self, pipe, on_more) -> None:
        self.pipe = pipe
        self.fd = pipe.fileno()
        self.on_more = on_more       # called after new bytes arrived (the output limit)
        self.lock = threading.Lock()
        self.grew = threading.Condition(self.lock)   # notified when bytes or the end arrive
        self.total = 0               # bytes received in all
        self.start = 0               # the offset of kept[0]
        self.kept = bytearray()
        self.hidden = (0, 0)         # offsets not shown: a shared server's earlier checks
        self.ended = False           # the pipe reached its end (every writer is gone)
        if POSIX:
            os.set_blocking(self.fd, False)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        if POSIX:
            poller = select.poll()   # not select(): it fails on descriptors past 1024
            poller.register(self.fd, select.POLLIN)
        last_bytes = 0.0
        while not self.ended:
            if POSIX:
                poller.poll()        # readable: bytes, or the end
            elif bytes_waiting(self.fd) == 0:
                # Windows can't wait for a pipe: look again. While output flows, look
                # again at once: a pipe there holds about 4 KB, and a program printing
                # waits for it to be emptied (5 ms a look would allow it 800 KB/s).
                flowing = time.monotonic() - last_bytes < WINDOWS_FLOWING
                time.sleep(0 if flowing else WINDOWS_POLL)
                continue
            self.take()
            last_bytes = time.monotonic()
        self.pipe.close()   # here only: never while this thread may still wait on it

    def take(self) -> None:
        """Read whatever waits in the pipe, without blocking."""
        grew = False
        with self.lock:
            for _ in range(64):      # a pipe holds 64 kB: a few reads empty it
                if self.ended:
                    break
                try:
                    if POSIX:
                        data = os.read(self.fd, READ_SIZE)
                    else:
                        waiting = bytes_waiting(self.fd)
                        data = os.read(self.fd, min(waiting, READ_SIZE)) if waiting > 0 else (
                            None if waiting == 0 else b"")
                except BlockingIOError:
                    data = None
                except OSError:
                    data = b""
                if data is None:
                    break
                if not data:
                    self.ended = True
                    break
                self._keep(data)
                grew = True
            if grew or self.ended:
                self.grew.notify_all()
        if grew:
            self.on_more()

    def wait_past(self, total: int, timeout: float) -> None:
        """Wait until more than `total` bytes have arrived in all, or the end, at most
        `timeout` seconds (the drain thread wakes the waiter: no polling)."""
        with self.lock:
            self.grew.wait_for(lambda: self.total > total or self.ended, timeout)

    def _keep(self, data: bytes) -> None:
        self.kept += data
        self.total += len(data)
        if len(self.kept) > 2 * KEEP_BYTES:   # trim in big steps: cheap on average
            drop = len(self.kept) - KEEP_BYTES
            del self.kept[:drop]
            self.start += drop

    def since(self, offset: int) -> tuple[int, bytes]:
        """(where the returned bytes start, the kept bytes from `offset` on)."""
        self.take()
        with self.lock:
            at = max(offset, self.start)
            return at, bytes(self.kept[at - self.start:])

    def count(self) -> int:
        self.take()
        return self.total

    def hide_until_now(self, start: int) -> None:
        """Leave out of what is shown everything from offset `start` to now: a server
        shared between checks (serverside.py) shows each check what it printed when it
        started and during that check, as a fresh one would."""
        self.hidden = (start, self.count())

    def shown(self) -> bytes:
        """The kept bytes, less the hidden ones."""
        self.take()
        with self.lock:
            start, end = (max(0, offset - self.start) for offset in self.hidden)
            return bytes(self.kept[:start] + self.kept[end:])

    def tail(self, limit: int = TAIL_BYTES) -> str:
        """The last `limit` bytes shown, as text ('…' first when there was more)."""
        shown = self.shown()
        data = shown[-limit:]
        more = self.total - (self.hidden[1] - self.hidden[0]) > len(data)
        text = data.decode("utf-8", "replace")
        return ("…" + text) if more else text
