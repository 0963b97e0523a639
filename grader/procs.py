"""Run a student's program as a real process, within limits, and always stop it again.

Every program gets its own process group (and session), so teardown can stop it
together with anything it started, and every wait is bounded. Student programs
are untrusted and often broken, so each one also runs within limits (`Limits`,
set from the grader's options, docs/teachers.md § Limits on student programs):

* output: what it prints goes through pipes that the grader drains at once
  (never an undrained pipe, so a program that prints megabytes cannot block,
  and never a file, so it cannot fill the disk); the grader counts every byte
  and keeps only the end of each stream; past `output` bytes, the program is
  stopped;
* memory: a watchdog looks at its processes' resident memory every PERIOD
  seconds (Linux: /proc) and stops it past `memory` bytes; a hard limit on its
  address space (far higher: threads reserve much more than they use) is the
  backstop between two looks;
* processes: the same watchdog counts the processes of all the programs of this
  grading (found by an environment variable each one inherits, so children that
  left the process group or were orphaned are still found), and past
  `processes` stops each program that started processes of its own;
* `run_as`: when the grader runs as root, programs run as that user.

A program stopped by a limit gets a `limit_note` that its check's failure shows
(`describe`): which limit, and what to look for.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from grader import isolation
from grader.wire import WAIT, Conversation, Peer

POSIX = os.name == "posix"
START_TIMEOUT = 5.0     # how long a server may take to start listening
STOP_GRACE = 0.5        # SIGTERM, then this long, then SIGKILL
DYING_GRACE = 0.2       # how long a failure report waits for a crashing program to end
TAIL_BYTES = 3000       # how much of a program's output a failure shows
KEEP_BYTES = 512 * 1024  # how much of each output stream is kept (its end)
READ_SIZE = 65536       # one read from a program's output pipe
WINDOWS_POLL = 0.005    # Windows: how often an empty output pipe is looked at again
MB = 1000 * 1000        # the limits are given in MB, as people count them
# The output limit stops runaways only: on top of --output-limit, a program may print
# this many bytes for every byte the grader sends it (on its sockets, or typed into it),
# so output that grows with the traffic (a log line per message, even a long one) is
# never held against it. One that prints without end, whatever it is sent, is stopped.
OUTPUT_PER_BYTE_SENT = 1024
MARKER = "CHATKIT_PROGRAM"   # environment variable: which Program a process belongs to


def free_port() -> int:
    """A port the OS says is free right now (binding port 0 asks the OS)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def size(count: float) -> str:
    """A byte count as people read it: '5.2 MB', '2.1 GB', '730 bytes'."""
    for unit, scale in (("GB", MB * 1000), ("MB", MB), ("kB", 1000)):
        if count >= scale:
            return "%.3g %s" % (count / scale, unit)
    return "%d bytes" % count


# --- the limits ------------------------------------------------------------------

@dataclass
class Limits:
    """What a student's program may use. 0 means no limit."""
    output: int = 16 * MB        # bytes printed, standard output and error together
    memory: int = 256 * MB       # resident memory of one program (all its processes)
    processes: int = 50          # processes alive at once, all programs of the grading
    run_as: str | None = None    # POSIX, grader running as root: the user programs run as
    python: str = sys.executable  # the interpreter the programs run with
    uid: int | None = None
    gid: int | None = None
    user: "isolation.GradingUser | None" = None   # this grading's own user (as root, Linux)
    copy: Path | None = None     # a copy of the implementation that user can read, if made
    who: str = ""                # who the programs run as, said in the grader's header

    def address_space(self) -> int:
        """The hard backstop on address space: virtual memory, so far above `memory`
        (a thread-per-client server holding a hundred clients reserves ~2.7 GB of
        address space for stacks and malloc arenas, yet uses ~20 MB)."""
        return max(16 * 1024 ** 3, 64 * self.memory) if self.memory else 0


LIMITS = Limits()


def configure(limits: Limits) -> None:
    """Set the limits of this grading (the grader's options), before any program starts."""
    global LIMITS
    LIMITS = limits
    if limits.uid is not None:
        # What the grader writes from now on (its results) is its own alone.
        os.umask(0o077)
    if limits.user is not None and limits.processes:
        _limit_tasks_of_children(limits.processes + THREADS_ALLOWED)


# Under a grading's own user, the kernel bounds that user's tasks: processes and their
# threads together (RLIMIT_NPROC counts both). A thread-per-client server holding a
# hundred clients needs about a hundred, so the bound is --max-processes plus this.
THREADS_ALLOWED = 200


def _limit_tasks_of_children(tasks: int) -> None:
    """RLIMIT_NPROC on the grader's own process, so that every program it starts has it
    from its first instruction on (a limit set from outside after the start would
    race a program that forks at once). Root, the grader, is exempt from it; the
    programs, under their own user, are not."""
    import resource
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (tasks, tasks))
    except (OSError, ValueError):
        pass   # refused: the watchdog still counts processes


def make_limits(output_mb: str, memory_mb: str, processes: str, run_as: str | None,
                impl: Path, stages: list[str], results: Path | None) -> Limits:
    """The limits the grader's options ask for, checked; ValueError with one clear
    line (a usage error) when they can't be met."""
    limits = Limits(output=_amount("--output-limit", output_mb),
                    memory=_amount("--memory-limit", memory_mb),
                    processes=int(_amount("--max-processes", processes, scale=1)))
    if run_as:
        _prepare_run_as(limits, run_as, impl, stages, results)
    elif isolation.possible():
        _prepare_own_user(limits, impl, stages, results)
    return limits


def _prepare_own_user(limits: Limits, impl: Path, stages: list[str],
                      results: Path | None) -> None:
    """As root, without --run-as: the programs run as a user of this grading's own
    (grader/isolation.py), reading a copy of the implementation if they cannot read
    it where it is. If no such user can run Python 3.10+, they run as root, and the
    grader says so plainly (in its header, so in every feedback)."""
    user = isolation.claim()
    if user is None:
        limits.who = ("WARNING: student programs run as root: no free user id in %d-%d"
                      % (isolation.FIRST_UID, isolation.FIRST_UID + isolation.POOL_SIZE - 1))
        return
    limits.uid, limits.gid, limits.user = user.uid, user.gid, user
    files = _program_files(impl, stages)
    found = _find_python(limits, files, results)
    if found is not None and found["unreadable"]:
        limits.copy = isolation.readable_copy(impl, stages)
        found = _find_python(limits, _program_files(limits.copy, stages), results)
    if found is None or found["unreadable"]:
        isolation.release(user)
        limits.uid = limits.gid = limits.user = None
        if limits.copy is not None:
            isolation.remove_copy(limits.copy)
            limits.copy = None
        why = ("no Python 3.10 or newer that another user can run (tried %s)"
               % ", ".join(_pythons()))
        limits.who = ("WARNING: student programs run as root, with every right on this "
                      "machine: %s" % why)
        return
    limits.who = "student programs run as %s, this grading's own" % user


def _program_files(impl: Path, stages: list[str]) -> list[str]:
    files = [str(impl / stage / name) for stage in stages
             for name in ("chat_server.py", "chat_client.py") if (impl / stage / name).is_file()]
    return files + [str(path) for path in (impl / "protocol.py", impl.parent / "protocol.py")
                    if path.is_file()]


def _find_python(limits: Limits, files: list[str], results: Path | None) -> dict | None:
    """What the first Python 3.10+ that limits.uid can run found (see RUN_AS_PROBE),
    with its path as found["python"] (also set as limits.python); None if none."""
    for python in _pythons():
        found = _probe(python, limits, files, results)
        if found is not None and tuple(found["version"]) >= (3, 10):
            limits.python = found["python"] = python
            return found
    return None


def unprivileged_python_missing() -> str | None:
    """As root on Linux: why student programs would have to run as root (no Python
    3.10+ that a user of their own can run), or None when they need not."""
    if not isolation.possible():
        return None
    user = isolation.claim()
    if user is None:
        return "no free user id"
    try:
        found = _find_python(Limits(uid=user.uid, gid=user.gid), [], None)
    finally:
        isolation.release(user)
    return None if found else ("no Python 3.10 or newer that another user can run (tried %s)"
                               % ", ".join(_pythons()))


def release_user() -> None:
    """End every process of this grading's own user, then free the id (and the copy)."""
    user, copy = LIMITS.user, LIMITS.copy
    LIMITS.user = LIMITS.copy = None   # once: Ctrl-C or SIGTERM may come during the end
    if user is not None:
        isolation.release(user)
    if copy is not None:
        isolation.remove_copy(copy)


def _amount(option: str, value, scale: int = MB) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1
    if not 0 <= number < float("inf"):
        raise ValueError("%s %s: give a number (%s), or 0 for no limit"
                         % (option, value, "of MB" if scale == MB else "of processes"))
    return int(number * scale)


# What the user --run-as names checks for itself, as itself (a privileged grader
# can't tell by looking at permission bits alone: groups, ACLs, a folder on the
# way that it can't enter...). Prints one JSON line.
RUN_AS_PROBE = r"""
import json, os, sys
files, results = json.loads(sys.argv[1]), sys.argv[2]
found = {"version": list(sys.version_info[:2]), "unreadable": [], "results": []}
for path in files:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as error:
        found["unreadable"].append("%s (%s)" % (path, error.strerror))
if results and os.access(os.path.dirname(results), os.W_OK):
    found["results"].append(os.path.dirname(results))
print(json.dumps(found))
"""


def _prepare_run_as(limits: Limits, user: str, impl: Path, stages: list[str],
                    results: Path | None) -> None:
    """Check that student programs can run as `user`, and find the Python they run with."""
    if not POSIX:
        raise ValueError("--run-as %s: only on Linux or macOS (on Windows, grade inside a "
                         "virtual machine or a container instead)" % user)
    import pwd
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ValueError("--run-as %s: no such user (use an existing unprivileged user, e.g. "
                         "nobody, or create one: useradd --no-create-home student)" % user) from None
    if entry.pw_uid == 0:
        raise ValueError("--run-as %s: that is root; name an unprivileged user, e.g. nobody" % user)
    if os.geteuid() != 0:
        raise ValueError("--run-as %s: only a grader running as root can start programs as "
                         "another user (this one runs as %s): run it as root, or leave out "
                         "--run-as" % (user, pwd.getpwuid(os.geteuid()).pw_name))
    limits.run_as, limits.uid, limits.gid = user, entry.pw_uid, entry.pw_gid
    limits.who = "student programs run as %s" % user
    files = _program_files(impl, stages)
    tried = []
    for python in _pythons():
        found = _probe(python, limits, files, results)
        if found is None or tuple(found["version"]) < (3, 10):
            tried.append(python)
            continue
        if found["unreadable"]:
            raise ValueError("--run-as %s: %s cannot read %s; the implementation folder must be "
                             "readable by that user (chmod -R a+rX %s, or grade a copy in a "
                             "folder it can read)" % (user, user, found["unreadable"][0], impl))
        if found["results"]:
            raise ValueError("--run-as %s: %s can write in %s, so a student's program could "
                             "replace the results: write them in a folder only you can write"
                             % (user, user, found["results"][0]))
        if results is not None:
            _make_private(results)
        limits.python = python
        return
    raise ValueError("--run-as %s: %s cannot run Python 3.10 or newer (tried %s); install one "
                     "where every user can run it (e.g. /usr/bin/python3)"
                     % (user, user, ", ".join(tried)))


def _pythons() -> list[str]:
    """The grader's own Python first, then the system's (a Python installed in root's
    home folder, as pyenv does, is out of other users' reach)."""
    import shutil
    found = []
    for candidate in (sys.executable, shutil.which("python3"), "/usr/bin/python3",
                      "/usr/local/bin/python3"):
        if candidate and os.path.isfile(candidate) and candidate not in found:
            found.append(candidate)
    return found


def _probe(python: str, limits: Limits, files: list[str], results: Path | None):
    import json
    try:
        done = subprocess.run(
            [python, "-c", RUN_AS_PROBE, json.dumps(files), str(results or "")],
            capture_output=True, timeout=30, cwd="/", user=limits.uid, group=limits.gid,
            extra_groups=[], env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
        return json.loads(done.stdout.decode().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None


def _make_private(path: Path) -> None:
    """A results file left from before becomes the grader's alone (what it writes
    from now on is, through its umask)."""
    try:
        if path.is_symlink() or (path.exists() and path.stat().st_uid != os.geteuid()):
            path.unlink()
        elif path.exists():
            path.chmod(0o600)
    except OSError as error:
        raise ValueError("--results %s: cannot make it private (%s)"
                         % (path, error.strerror or error)) from None


# --- output: drained from pipes, counted, the end kept -------------------------

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
        self.total = 0               # bytes received in all
        self.start = 0               # the offset of kept[0]
        self.kept = bytearray()
        self.ended = False           # the pipe reached its end (every writer is gone)
        if POSIX:
            os.set_blocking(self.fd, False)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        if POSIX:
            poller = select.poll()   # not select(): it fails on descriptors past 1024
            poller.register(self.fd, select.POLLIN)
        while not self.ended:
            if POSIX:
                poller.poll()        # readable: bytes, or the end
            elif _available(self.fd) == 0:
                time.sleep(WINDOWS_POLL)
                continue
            self.take()
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
                        waiting = _available(self.fd)
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
        if grew:
            self.on_more()

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

    def tail(self, limit: int = TAIL_BYTES) -> str:
        """The last `limit` bytes, as text ('…' first when there was more)."""
        self.take()
        with self.lock:
            data = bytes(self.kept[-limit:])
            more = self.total > len(data)
        text = data.decode("utf-8", "replace")
        return ("…" + text) if more else text


def _available(fd: int) -> int:
    """Windows: how many bytes wait in a pipe; -1 once it is broken (its end)."""
    import ctypes
    import msvcrt
    from ctypes import wintypes
    waiting = wintypes.DWORD()
    if not ctypes.windll.kernel32.PeekNamedPipe(
            wintypes.HANDLE(msvcrt.get_osfhandle(fd)), None, 0, None, ctypes.byref(waiting), None):
        return -1
    return waiting.value


RUNNING: set = set()   # every Program started and not yet stopped (see stop_everything)
_serial = iter(range(1, 1 << 62))


class Program:
    """One started program: its process, its output, its limits, how to stop it."""

    def __init__(self, argv: list[str], label: str, stdin: bool = False, cwd=None) -> None:
        self.label = label
        if argv and argv[0] == sys.executable:
            argv = [LIMITS.python] + argv[1:]   # with --run-as, a Python that user can run
        self.argv = argv
        self.token = "%d-%d" % (os.getpid(), next(_serial))
        self.started = time.monotonic()
        self.limit_note = ""          # set when the grader stopped it for a limit
        self.limit_reason = ""        # ... and that note's first words, for a 'Got:' line
        self.pids: set[int] = set()   # its processes that the watchdog knows of
        self.processes = 1            # how many were alive at the last look
        self.peak_memory = 0          # the most resident memory seen at a look
        self.pss, self.pss_due = 0, 0.0   # the watchdog's last proportional measure
        self.sent = 0                 # bytes the grader has sent it (see OUTPUT_PER_BYTE_SENT)
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8",
                   PYTHONDONTWRITEBYTECODE="1")
        env[MARKER] = self.token
        extra = {"start_new_session": True} if POSIX else {
            "creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
        if LIMITS.uid is not None:
            extra.update(user=LIMITS.uid, group=LIMITS.gid, extra_groups=[])
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env, **extra)
        self.pids.add(self.proc.pid)
        _set_hard_limits(self.proc.pid)
        self.out = Output(self.proc.stdout, self._check_output)
        self.err = Output(self.proc.stderr, self._check_output)
        RUNNING.add(self)
        WATCHDOG.watch(self)

    # --- output ------------------------------------------------------------
    def was_sent(self, count: int) -> None:
        """The grader sent it `count` more bytes: it may print that much more."""
        self.sent += count

    def output_allowed(self) -> int:
        """How much it may print by now: --output-limit, plus OUTPUT_PER_BYTE_SENT for
        each byte the grader has sent it."""
        return LIMITS.output + OUTPUT_PER_BYTE_SENT * self.sent

    def _check_output(self) -> None:
        if LIMITS.output and self.out.total + self.err.total > self.output_allowed():
            self.stop_for_limit(
                "printed more than %s (standard output and error together) while the grader "
                "had sent it only %s: the grader's limit is %s, plus %d bytes for each byte "
                "it sends (--output-limit)" % (size(self.output_allowed()), size(self.sent),
                                               size(LIMITS.output), OUTPUT_PER_BYTE_SENT),
                "is there a print inside the select loop, or in a loop that never waits? "
                "Print a line when something happens (a client connects, a message "
                "arrives), not on every turn of a loop.")

    def printed(self) -> int:
        """How many bytes it has printed so far, standard output and error together."""
        return self.out.count() + self.err.count()

    def stdout(self) -> bytes:
        """What is kept of its standard output (all of it, unless it printed a lot)."""
        return self.out.since(0)[1]

    def stderr(self) -> bytes:
        return self.err.since(0)[1]

    def stdout_since(self, offset: int) -> tuple[int, bytes]:
        """Its standard output after `offset` (counted from its first byte), as far
        as it is kept: (where the bytes returned start, the bytes)."""
        return self.out.since(offset)

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
                                                              _signal_note(status)))
        if b"MemoryError" in self.err.since(0)[1][-TAIL_BYTES:] and LIMITS.memory:
            lines.append("(MemoryError: it reached the grader's hard limit of %s of address "
                         "space. Does it keep everything it receives?)"
                         % size(LIMITS.address_space()))
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
        """SIGKILL its process group, and every process of it found elsewhere."""
        if not POSIX:
            self._taskkill()
            return
        self._signal_group(signal.SIGKILL)
        for pid in list(self.pids):
            _kill(pid, lambda token: token == self.token.encode())

    def _taskkill(self) -> None:
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(self.proc.pid)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

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
            WATCHDOG.discover()
            self._kill_all()
        else:
            self._taskkill()
        if self.wait_exit(5.0) is None:
            self.proc.kill()
            self.wait_exit(5.0)
        RUNNING.discard(self)
        WATCHDOG.forget(self)


def _signal_note(status: int) -> str:
    """' (killed by SIGKILL)' for a negative status; what SIGXFSZ means."""
    if status >= 0:
        return ""
    try:
        name = signal.Signals(-status).name
    except ValueError:
        return ""
    if name == "SIGXFSZ":
        return (" (killed by SIGXFSZ: it wrote a file larger than the grader allows, %s; "
                "a log file written in a loop?)" % size(LIMITS.output))
    return " (killed by %s)" % name


def _set_hard_limits(pid: int) -> None:
    """The backstops the kernel enforces (Linux): address space, file size, no core
    files. Set from outside (prlimit) just after the start: no code runs in the child
    between fork and exec, which is unsafe in a grader with threads."""
    try:
        import resource
        prlimit = resource.prlimit
    except (ImportError, AttributeError):
        return   # not Linux: the output limit still holds; see docs/teachers.md
    wanted = [(resource.RLIMIT_CORE, 0)]
    if LIMITS.memory:
        wanted.append((resource.RLIMIT_AS, LIMITS.address_space()))
    if LIMITS.output:
        wanted.append((resource.RLIMIT_FSIZE, LIMITS.output))
    for which, value in wanted:
        try:
            soft, hard = prlimit(pid, which)
            if hard == resource.RLIM_INFINITY or hard > value:
                prlimit(pid, which, (value, value))
        except (OSError, ValueError):
            pass   # it has exited already, or the system refuses: the watchdog remains


# --- the watchdog: memory and processes (Linux) ------------------------------

class Watchdog:
    """Every PERIOD seconds: find the processes of our programs, measure them, stop
    the ones past a limit. Linux only (/proc); elsewhere it does nothing.

    Cheap by design (~0.2 ms a look): it lists /proc, reads the environment of
    processes it has not seen before only (that is how it finds a program's
    children, wherever they went), and the memory of our programs' processes."""

    PERIOD = 0.05       # seconds between two looks
    FAST_PERIOD = 0.005  # ... while a program has more than one process (it may be forking)
    PSS_PERIOD = 0.2    # seconds between two reads of a many-process program's PSS

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_token: dict[bytes, Program] = {}
        self.seen: set[int] = set()
        self.thread: threading.Thread | None = None
        self.wake = threading.Event()
        self.page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self.available = Path("/proc/self/statm").exists()

    def watch(self, program: Program) -> None:
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

    def forget(self, program: Program) -> None:
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
            except Exception:   # never let the watchdog die of one odd /proc entry
                busy = False

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
                        _kill(pid, lambda token, mine=program.token.encode(): token == mine)

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
            if LIMITS.memory and resident > LIMITS.memory and not program.limit_note \
                    and count > 1:
                # Resident memory counts the pages a child shares with its parent once per
                # process; the proportional share (PSS) does not. It is dearer to read
                # (~0.25 ms a process), so it is read at most every PSS_PERIOD.
                if time.monotonic() >= program.pss_due:
                    program.pss_due = time.monotonic() + self.PSS_PERIOD
                    program.pss = _proportional(program.pids)
                resident = program.pss
            if LIMITS.memory and resident > LIMITS.memory and not program.limit_note:
                program.stop_for_limit(
                    "used %s of memory (the grader's limit is %s, --memory-limit)"
                    % (size(resident), size(LIMITS.memory)),
                    "does it keep everything it ever received, a buffer or a list that "
                    "grows and is never emptied (a client's backlog never trimmed, "
                    "bytes appended and never removed)?")
            program.peak_memory = max(program.peak_memory, resident)
        # Processes: all the programs together (those being stopped too, until their
        # processes are gone). Past the limit, every program that started processes of
        # its own is stopped (one with a single process never is): stopping only the
        # worst would let the others fork on while its processes die.
        total = sum(p.processes for p in programs)
        if LIMITS.processes and total > LIMITS.processes:
            for program in programs:
                if program.processes > 1 and not program.limit_note:
                    program.stop_for_limit(
                        "had %d processes running at once (the grader allows %d for all "
                        "the programs it runs together, --max-processes)"
                        % (program.processes, LIMITS.processes),
                        "does it start processes in a loop (os.fork, subprocess, "
                        "multiprocessing) without ever ending them? A chat server needs "
                        "none: one process, with select, serves every client.")
        return any(p.processes > 1 for p in programs)

    def sweep(self, prefix: bytes) -> list[int]:
        """Kill every process whose marker starts with `prefix`, seen or not (the
        end of a run: nothing of ours may outlive it); the pids killed."""
        if not self.available:
            return []
        killed = []
        for pid in self._pids():
            if pid != os.getpid() and _kill(pid, lambda token: token.startswith(prefix)):
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


def _kill(pid: int, ours) -> bool:
    """SIGKILL process `pid` if ours(its marker) says it is ours: a process that ended
    leaves its pid free for anyone's next process. A pidfd (Linux 5.3+) pins the
    process while we look; elsewhere the look and the kill are a moment apart."""
    try:
        pinned = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pinned = None
    try:
        if not (Path("/proc").is_dir() and ours(_token_of(pid))):
            return False
        if pinned is not None:
            signal.pidfd_send_signal(pinned, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
        return True
    except OSError:
        return False
    finally:
        if pinned is not None:
            os.close(pinned)


WATCHDOG = Watchdog()


def stop_all(programs) -> None:
    """Stop several programs at once: one that ignores SIGTERM costs STOP_GRACE once."""
    stoppers = [threading.Thread(target=program.stop) for program in programs]
    for stopper in stoppers:
        stopper.start()
    for stopper in stoppers:
        stopper.join()


def stop_everything() -> None:
    """The safety net: stop every program still running (end of run, Ctrl-C, SIGTERM),
    and any process any of them started that is still alive, wherever it went."""
    stop_all(list(RUNNING))
    WATCHDOG.sweep(b"%d-" % os.getpid())
    release_user()


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


# --- the processes of a program: itself and every process it started ------------------
#
# "The server" is every process the student's program started, not only the one the
# grader started: a chat_server.py may be a launcher whose child runs the real loop
# (on Windows, a virtual environment's python.exe is exactly such a launcher).

def process_tree(program: Program) -> set[int]:
    """The program's process and every process below it (by parent), plus any process
    of its that the watchdog found by its marker (one that left the tree: a daemon)."""
    parents = parent_map()   # every process alive now
    found = descendants(program.proc.pid, parents)
    return found | {pid for pid in program.pids if pid in parents}


def descendants(root: int, parents: dict[int, int]) -> set[int]:
    """`root` and every process whose chain of parents leads to it."""
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    found, waiting = {root}, [root]
    while waiting:
        for child in children.get(waiting.pop(), []):
            if child not in found:
                found.add(child)
                waiting.append(child)
    return found


def parent_map() -> dict[int, int]:
    """{pid: its parent's pid} for every process the system lists: Linux /proc,
    Windows a toolhelp snapshot, elsewhere (macOS, BSD) ps."""
    if Path("/proc/self/stat").exists():
        return _parents_from_proc()
    if os.name == "nt":
        return _parents_from_toolhelp()
    return _parents_from_ps()


def _parents_from_proc() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:   # /proc/PID/stat: "pid (name) state ppid ..."
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue     # it ended meanwhile
    return parents


def _parents_from_ps() -> dict[int, int]:
    try:
        listing = subprocess.run(["ps", "-A", "-o", "pid=,ppid="], capture_output=True,
                                 text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return parse_ps_parents(listing)


def parse_ps_parents(listing: str) -> dict[int, int]:
    """`ps -A -o pid=,ppid=`'s lines ('  412   1') as {pid: parent}."""
    parents = {}
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
            parents[int(fields[0])] = int(fields[1])
    return parents


def _parents_from_toolhelp() -> dict[int, int]:
    """Windows: every process and its parent, from CreateToolhelp32Snapshot."""
    import ctypes
    from ctypes import wintypes

    class ProcessEntry(ctypes.Structure):
        _fields_ = [("dwSize", wintypes.DWORD), ("cntUsage", wintypes.DWORD),
                    ("th32ProcessID", wintypes.DWORD), ("th32DefaultHeapID", ctypes.c_void_p),
                    ("th32ModuleID", wintypes.DWORD), ("cntThreads", wintypes.DWORD),
                    ("th32ParentProcessID", wintypes.DWORD), ("pcPriClassBase", ctypes.c_long),
                    ("dwFlags", wintypes.DWORD), ("szExeFile", ctypes.c_char * 260)]

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.CreateToolhelp32Snapshot.restype = wintypes.HANDLE
    snapshot = kernel32.CreateToolhelp32Snapshot(0x2, 0)   # TH32CS_SNAPPROCESS
    if snapshot in (None, wintypes.HANDLE(-1).value):
        return {}
    parents = {}
    entry = ProcessEntry()
    entry.dwSize = ctypes.sizeof(ProcessEntry)
    try:
        more = kernel32.Process32First(snapshot, ctypes.byref(entry))
        while more:
            parents[entry.th32ProcessID] = entry.th32ParentProcessID
            more = kernel32.Process32Next(snapshot, ctypes.byref(entry))
    finally:
        kernel32.CloseHandle(snapshot)
    return parents


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
                           "(see docs/developing.md § Layout).")
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
                           "(see docs/students.md § Running).")
        if self.program.limit_reason:
            self.conv.fail("the server starts and keeps running",
                           "the grader stopped it before it accepted a connection: it %s"
                           % self.program.limit_reason, "what to look for is below.")
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
            return Peer(sock, label, self.conv, self.program)
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=WAIT)
        except OSError as error:
            failure = "the connection failed: %s" % error
        else:
            return Peer(sock, label, self.conv, self.program)
        # Outside the except block: the report is the check's, not an exception chain.
        self.conv.fail("%s connects to the server" % label, failure,
                       "the server must keep accepting new clients at any time "
                       "(is the listening socket still in the select set?).")

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
