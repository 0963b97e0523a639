"""The watchdog: every program's memory and processes, and what they wrote, looked
at every PERIOD seconds; a program past a limit is stopped (Linux: /proc).

Each process of a program carries MARKER in its environment (programs.py sets it):
that is how the watchdog finds a program's children wherever they went, and how
kill_if_ours makes sure a pid is still ours before it signals it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback

from grader import files as written_files
from grader.limits import Limits, size
from grader.system import LINUX

MARKER = "CHATKIT_PROGRAM"   # environment variable: which Program a process belongs to


class Watchdog:
    """Every PERIOD seconds: find the processes of our programs, measure them, stop
    the ones past a limit. Linux only (/proc); elsewhere it does nothing.

    Cheap by design (~0.2 ms a look): it lists /proc, reads the environment of
    processes it has not seen before only (that is how it finds a program's
    children, wherever they went), and the memory of our programs' processes."""

    PERIOD = 0.05       # seconds between two looks
    FAST_PERIOD = 0.005  # ... while a program has more than one process (it may be forking),
                         # or files fill the disk fast (files.py)
    PSS_PERIOD = 0.2    # seconds between two reads of a many-process program's PSS

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.lock = threading.Lock()
        self.by_token: dict = {}   # marker -> its Program (programs.py)
        self.seen: set[int] = set()
        self.thread: threading.Thread | None = None
        self.wake = threading.Event()
        self.summing = threading.Lock()   # held while a thread adds the files up (files.py)
        self.looks = 0          # how many looks so far (a test can wait for the next ones)
        self.troubles: list[str] = []   # what made looks fail, once each (see say)
        self.page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self.available = LINUX

    def watch(self, program) -> None:
        if not self.available:
            return
        with self.lock:
            self.by_token[program.token.encode()] = program
            self.wake.set()
            if self.thread is None:
                self.seen = self._pids()
                self.thread = threading.Thread(target=self._run, name="chatkit-watchdog",
                                               daemon=True)
                self.thread.start()

    def forget(self, program) -> None:
        with self.lock:
            self.by_token.pop(program.token.encode(), None)

    def _run(self) -> None:
        busy = False
        while True:
            if not self.by_token:
                self.wake.wait()     # nothing to watch: sleep until a program starts
                self.wake.clear()
            time.sleep(self.FAST_PERIOD if busy else self.PERIOD)
            try:
                busy = self.look()
            except Exception as error:   # never let the watchdog die of one odd /proc entry
                self.say(error)
                busy = False
            self.looks += 1

    def say(self, error: BaseException) -> None:
        """A look (or a sum) that failed: kept in `troubles`, for the grader to show, and
        said on standard error with its traceback, once for each distinct failure (a
        look that fails may fail again every PERIOD)."""
        text = "".join(traceback.format_exception_only(type(error), error)).strip()
        if text in self.troubles:
            return
        self.troubles.append(text)
        print("The grader's watchdog hit an error of its own (the limits on memory, "
              "processes and files may not hold while it lasts):\n%s"
              % "".join(traceback.format_exception(error)).rstrip(), file=sys.stderr, flush=True)

    @staticmethod
    def _pids() -> set[int]:
        return {int(name) for name in os.listdir("/proc") if name.isdigit()}

    def discover(self) -> None:
        """Give the processes that appeared since the last look to their programs."""
        if not self.available:
            return
        with self.lock:
            current = self._pids()
            new, self.seen = current - self.seen, current
            for pid in new:
                program = self.by_token.get(_token_of(pid))
                if program is not None:
                    program.pids.add(pid)
                    if program.limit_note:   # stopped already: whatever it still starts
                        kill_if_ours(pid, lambda token, mine=program.token.encode(): token == mine)

    def look(self) -> bool:
        """Measure every program, stop those past a limit; whether one has several processes."""
        self.discover()
        with self.lock:
            programs = list(self.by_token.values())
        for program in programs:
            count, resident = 0, 0
            for pid in list(program.pids):
                try:
                    fields = _read("/proc/%d/statm" % pid).split()
                except OSError:
                    program.pids.discard(pid)
                    continue
                if fields[0] == b"0":    # a zombie: ended, not yet waited for
                    continue
                count += 1
                resident += int(fields[1]) * self.page
            program.processes = count
            if self.limits.memory and resident > self.limits.memory and not program.limit_note \
                    and count > 1:
                # Resident memory counts the pages a child shares with its parent once per
                # process; the proportional share (PSS) does not. It is dearer to read
                # (~0.25 ms a process), so it is read at most every PSS_PERIOD.
                if time.monotonic() >= program.pss_due:
                    program.pss_due = time.monotonic() + self.PSS_PERIOD
                    program.pss = _proportional(program.pids)
                resident = program.pss
            if self.limits.memory and resident > self.limits.memory and not program.limit_note:
                program.stop_for_limit(
                    "used %s of memory (the grader's limit is %s, --memory-limit)"
                    % (size(resident), size(self.limits.memory)),
                    "does it keep everything it ever received, a buffer or a list that "
                    "grows and is never emptied (a client's backlog never trimmed, "
                    "bytes appended and never removed)?")
            program.peak_memory = max(program.peak_memory, resident)
        written = self.limits.written
        if written is not None and not self.summing.locked() and written.due():
            # Adding the files up walks folders (tens of ms where /tmp holds much): a thread
            # of its own, so that the next looks (a fork loop, memory) are not held up.
            # Whatever fails here, no program stays paused and the lock is not kept: a lock
            # kept would turn the disk limit off for the rest of the run.
            self.summing.acquire()
            paused: list[tuple[int, bytes]] = []
            try:
                if written.maybe_past:
                    self._pause_writers(programs, paused)
                threading.Thread(target=self._sum_files, args=(programs, written, paused),
                                 daemon=True).start()
            except BaseException:
                self._resume(paused)
                self.summing.release()
                raise
        # Processes: all the programs together (those being stopped too, until their
        # processes are gone). Past the limit, every program that started processes of
        # its own is stopped (one with a single process never is): stopping only the
        # worst would let the others fork on while its processes die.
        total = sum(p.processes for p in programs)
        if self.limits.processes and total > self.limits.processes:
            for program in programs:
                if program.processes > 1 and not program.limit_note:
                    program.stop_for_limit(
                        "had %d processes running at once (the grader allows %d for all "
                        "the programs it runs together, --max-processes)"
                        % (program.processes, self.limits.processes),
                        "does it start processes in a loop (os.fork, subprocess, "
                        "multiprocessing) without ever ending them? A chat server needs "
                        "none: one process, with select, serves every client.")
        return any(p.processes > 1 for p in programs) or \
            bool(written and (written.growing or written.filling))

    def _pause_writers(self, programs: list, paused: list[tuple[int, bytes]]) -> None:
        """SIGSTOP every process of the programs that wrote to files, each added to
        `paused` as (pid, marker) as soon as it is stopped. The sum takes tens of ms, in
        which a writer adds tens of MB."""
        for program in programs:
            if program.limit_note or not written_files.writers(program.pids):
                continue
            mine = program.token.encode()
            for pid in list(program.pids):
                if kill_if_ours(pid, lambda token: token == mine, signal.SIGSTOP):
                    paused.append((pid, mine))

    @staticmethod
    def _resume(paused: list[tuple[int, bytes]]) -> None:
        for pid, mine in paused:   # those stopped meanwhile are dead: no matter
            kill_if_ours(pid, lambda token, mine=mine: token == mine, signal.SIGCONT)

    def _sum_files(self, programs, written: "written_files.Files",
                   paused: list[tuple[int, bytes]]) -> None:
        try:
            used = written.used()
            if used > written.bound:
                self._stop_writers(programs, used, written)
        except Exception as error:
            self.say(error)
        finally:
            self._resume(paused)
            self.summing.release()

    def _stop_writers(self, programs: list, used: int,
                      written: "written_files.Files") -> None:
        """Past the bound on files: stop the programs that wrote to files (files.writers;
        all of them, if none did), then remove every file they wrote, so that the checks
        after this one start afresh."""
        running = [p for p in programs if not p.limit_note]
        guilty = [p for p in running if written_files.writers(p.pids)] or running
        for program in guilty:
            program.stop_for_limit(
                "and the grading's other programs wrote %s of files (in their working "
                "folder, /tmp, /var/tmp, /dev/shm; the grader's limit for all of them "
                "together is %s, --disk-limit), which the grader then removed"
                % (size(used), size(written.bound)),
                "does it write a log file, or keep what it receives in files, without "
                "end? Print the log instead (the grader keeps the end of it), or write "
                "the same file over again.")
        written.remove_all(everywhere=False)   # quick: the grading's end looks everywhere

    def sweep(self, prefix: bytes) -> list[int]:
        """Kill every process whose marker starts with `prefix`, seen or not (the
        end of a run: nothing of ours may outlive it); the pids killed."""
        if not self.available:
            return []
        killed = []
        for pid in self._pids():
            if pid != os.getpid() and kill_if_ours(pid, lambda token: token.startswith(prefix)):
                killed.append(pid)
        return killed


def _read(path: str) -> bytes:
    """A small /proc file, read with the fewest calls (the watchdog reads many)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 1 << 20)
    finally:
        os.close(fd)


def _token_of(pid: int) -> bytes:
    """The marker in a process's environment, b'' if none (or not readable)."""
    try:
        environ = _read("/proc/%d/environ" % pid)
    except OSError:
        return b""
    key = MARKER.encode() + b"="
    at = environ.find(b"\0" + key)
    if at >= 0:
        at += 1
    elif environ.startswith(key):
        at = 0
    else:
        return b""
    end = environ.find(b"\0", at)
    return environ[at + len(key):end if end >= 0 else len(environ)]


def _proportional(pids) -> int:
    """The programs' proportional set size in bytes (Linux smaps_rollup)."""
    total = 0
    for pid in list(pids):
        try:
            with open("/proc/%d/smaps_rollup" % pid, "rb") as f:
                for line in f:
                    if line.startswith(b"Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError, IndexError):
            continue
    return total


def kill_if_ours(pid: int, ours, sig: "int | None" = None) -> bool:
    """SIGKILL (or `sig`) process `pid` if ours(its marker) says it is ours: a process
    that ended leaves its pid free for anyone's next process. A pidfd (Linux 5.3+) pins
    the process while we look; elsewhere the look and the kill are a moment apart."""
    sig = signal.SIGKILL if sig is None else sig
    try:
        pinned = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pinned = None
    try:
        if not (LINUX and ours(_token_of(pid))):
            return False
        if pinned is not None:
            signal.pidfd_send_signal(pinned, sig)
        else:
            os.kill(pid, sig)
        return True
    except OSError:
        return False
    finally:
        if pinned is not None:
            os.close(pinned)

