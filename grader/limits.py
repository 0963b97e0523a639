"""The limits on a student's programs, who they run as, and the watchdog.

Student programs are untrusted and often broken, so each one runs within limits
(`Limits`, set from the grader's options, docs/teachers.md § Limits on student
programs):

* output: past `output` bytes (plus OUTPUT_PER_BYTE_SENT for every byte the
  grader sent it) the program is stopped (programs.py counts what it prints);
* memory: a watchdog looks at its processes' resident memory every PERIOD
  seconds (Linux: /proc) and stops it past `memory` bytes. Address space is not
  limited: runtimes reserve far more than they use (a JVM reserves a quarter of
  the machine's memory for its heap, threads 8 MB each for their stacks), and
  what they use is what the watchdog counts;
* files: each file a program writes is at most `output` bytes and no core file
  is written (hard limits the program takes at its start, startup/
  sitecustomize.py, so the system cannot refuse them and no line of the program
  runs before them);
* processes: the same watchdog counts the processes of all the programs of this
  grading (found by an environment variable each one inherits, so children that
  left the process group or were orphaned are still found), and past
  `processes` stops each program that started processes of its own;
* files, all together: the watchdog adds up what the programs wrote (files.py)
  and stops them past `disk` bytes;
* who they run as: `--run-as USER`, or as root a user of the grading's own
  (isolation.py), whose tasks the kernel bounds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from grader import files as written_files
from grader import isolation
from grader.system import LINUX, POSIX

if TYPE_CHECKING:
    from grader.programs import Program

MB = 1000 * 1000        # the limits are given in MB, as people count them
# The output limit stops runaways only: on top of --output-limit, a program may print
# this many bytes for every byte the grader sends it (on its sockets, or typed into it),
# so output that grows with the traffic (a log line per message, even a long one) is
# never held against it. One that prints without end, whatever it is sent, is stopped.
OUTPUT_PER_BYTE_SENT = 1024
MARKER = "CHATKIT_PROGRAM"   # environment variable: which Program a process belongs to


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
    disk: int = 64 * MB          # what the grading's programs write to files, all together
    run_as: str | None = None    # POSIX, grader running as root: the user programs run as
    python: str = sys.executable  # the interpreter the programs run with
    uid: int | None = None
    gid: int | None = None
    user: "isolation.GradingUser | None" = None   # this grading's own user (as root, Linux)
    copy: Path | None = None     # a copy of the implementation that user can read, if made
    startup: Path | None = None  # a copy of the startup hook that user can read, if made
    who: str = ""                # who the programs run as, said in the grader's header
    written: "written_files.Files | None" = None   # the files the programs write (files.py)

    def hard_limits(self) -> dict[str, int]:
        """The kernel's limits every program runs under, by resource name (Linux and
        macOS): no core file, hard and soft; no file larger than the output limit."""
        wanted = {"core": 0}
        each_file = min(filter(None, (self.output, self.disk)), default=0)
        if each_file:
            wanted["fsize"] = each_file
        return wanted


def configure(limits: Limits) -> None:
    """What the limits ask of the grader's own process, before any program starts."""
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
                impl: Path, stages: list[str], results: Path | None,
                disk_mb: str = "64") -> Limits:
    """The limits the grader's options ask for, checked; ValueError with one clear
    line (a usage error) when they can't be met."""
    limits = Limits(output=_amount("--output-limit", output_mb),
                    memory=_amount("--memory-limit", memory_mb),
                    processes=int(_amount("--max-processes", processes, scale=1)),
                    disk=_amount("--disk-limit", disk_mb))
    if run_as:
        _prepare_run_as(limits, run_as, impl, stages, results)
    elif isolation.possible():
        _prepare_own_user(limits, impl, stages, results)
    # Their own working folder and TMPDIR; what a user of their own owns is theirs too.
    limits.written = written_files.Files(
        written_files.make_scratch(limits.uid, limits.gid), limits.uid, limits.gid,
        owned=limits.user is not None, bound=limits.disk)
    limits.written.remove_leftovers()   # what an earlier grading under that user left
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
    if found is not None and only_the_hook(found):   # the kit is out of the user's reach
        limits.startup = isolation.readable_startup()
        found = _find_python(limits, _program_files(impl, stages, limits.startup /
                                                    STARTUP_HOOK.name), results)
    if found is not None and found["unreadable"]:
        limits.copy = isolation.readable_copy(impl, stages)
        hook = limits.copy.parent / ".startup" / STARTUP_HOOK.name
        found = _find_python(limits, _program_files(limits.copy, stages, hook), results)
    if found is None or found["unreadable"]:
        isolation.release(user)
        limits.uid = limits.gid = limits.user = None
        for made in (limits.copy, limits.startup):
            if made is not None:
                isolation.remove_copy(made)
        limits.copy = limits.startup = None
        why = ("no Python 3.10 or newer that another user can run (tried %s)"
               % ", ".join(_pythons()))
        limits.who = ("WARNING: student programs run as root, with every right on this "
                      "machine: %s" % why)
        return
    limits.who = "student programs run as %s, this grading's own" % user


# What every program runs first (programs.py): its user must be able to read it too, or the
# program would run without it (no hard limits, no Where:, other line endings), silently.
STARTUP_HOOK = Path(__file__).resolve().parent / "startup" / "sitecustomize.py"


def only_the_hook(found: dict) -> bool:
    """Whether the one file the probe could not read is the kit's startup hook."""
    return [entry.rpartition(" (")[0] for entry in found["unreadable"]] == [str(STARTUP_HOOK)]


def _program_files(impl: Path, stages: list[str], hook: Path = STARTUP_HOOK) -> list[str]:
    """The files the programs must read: theirs (each stage's modules), protocol.py and
    todo.py, and the startup hook (a copy has its own, next to the implementation:
    isolation.readable_copy)."""
    programs = ("chat_server.py", "chat_client.py")   # first: a refusal names the first
    files = [str(impl / stage / name) for stage in stages for name in programs
             if (impl / stage / name).is_file()]
    files += [str(path) for stage in stages for path in sorted((impl / stage).glob("*.py"))
              if path.name not in programs]
    kit = [impl / name for name in ("protocol.py", "todo.py")] + \
        [impl.parent / name for name in ("protocol.py", "todo.py")]
    # The hook comes last: a refusal names the student's own file first.
    return files + [str(path) for path in kit if path.is_file()] + [str(hook)]


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


def release_user(limits: Limits) -> None:
    """End every process of this grading's user (its own, or --run-as), remove every
    file its programs wrote, then free the user (and the copy)."""
    user, copy, written = limits.user, limits.copy, limits.written
    startup = limits.startup
    # once: Ctrl-C or SIGTERM may come during the end
    limits.user = limits.copy = limits.written = limits.startup = None
    ended = isolation.end_every_process(user.uid) if user is not None else True
    if written is not None:
        written.remove_all(scratch_too=True)
    if user is not None and ended:
        os.close(user.lock)   # if not all ended, the id stays ours until this process exits
    if copy is not None:
        isolation.remove_copy(copy)
    if startup is not None:
        isolation.remove_copy(startup)


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
        raise ValueError("--run-as %s: that is root; name an unprivileged user kept for grading"
                         % user)
    if os.geteuid() != 0:
        raise ValueError("--run-as %s: only a grader running as root can start programs as "
                         "another user (this one runs as %s): run it as root, or leave out "
                         "--run-as" % (user, pwd.getpwuid(os.geteuid()).pw_name))
    limits.run_as, limits.uid, limits.gid = user, entry.pw_uid, entry.pw_gid
    limits.who = "student programs run as %s" % user
    # Held as a grading's own user is: this grading alone, nothing of it running before,
    # every process of it ended when the grading ends (release_user).
    limits.user = isolation.claim_named(entry.pw_uid, entry.pw_gid, user)
    try:
        _check_run_as(limits, user, impl, stages, results)
    except BaseException:
        release_user(limits)
        raise


def _check_run_as(limits: Limits, user: str, impl: Path, stages: list[str],
                  results: Path | None) -> None:
    files = _program_files(impl, stages)
    tried = []
    for python in _pythons():
        found = _probe(python, limits, files, results)
        if found is None or tuple(found["version"]) < (3, 10):
            tried.append(python)
            continue
        if only_the_hook(found):   # the kit is out of USER's reach: a copy of its hook
            limits.startup = limits.startup or isolation.readable_startup()
            found = _probe(python, limits, _program_files(impl, stages, limits.startup /
                                                          STARTUP_HOOK.name), results)
            if found is None:
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


def _set_hard_limits(pid: int, limits: Limits) -> None:
    """The kernel's limits (Limits.hard_limits), set from outside just after the start,
    where the system allows it (a grader with CAP_SYS_RESOURCE, or the programs' own
    user). Every program also takes them itself before its first line (HARD_LIMITS,
    read by startup/sitecustomize.py): a root without CAP_SYS_RESOURCE, as in many
    containers, may not set them on another user's process."""
    try:
        import resource
        prlimit = resource.prlimit
    except (ImportError, AttributeError):
        return   # not Linux: the program sets them itself
    for name, value in limits.hard_limits().items():
        which = getattr(resource, "RLIMIT_" + name.upper())
        try:
            soft, hard = prlimit(pid, which)
            if hard == resource.RLIM_INFINITY or hard > value:
                prlimit(pid, which, (value, value))
        except (OSError, ValueError):
            pass   # it has exited already, or the system refuses: its own start set them


HARD_LIMITS = "CHATKIT_HARD_LIMITS"   # environment: 'core=0,fsize=16000000'


def hard_limits_variable(limits: Limits) -> str:
    return ",".join("%s=%d" % item for item in limits.hard_limits().items())


# --- the watchdog: memory and processes (Linux) ------------------------------

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
        self.by_token: dict[bytes, Program] = {}
        self.seen: set[int] = set()
        self.thread: threading.Thread | None = None
        self.wake = threading.Event()
        self.summing = threading.Lock()   # held while a thread adds the files up (files.py)
        self.looks = 0          # how many looks so far (a test can wait for the next ones)
        self.page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self.available = LINUX

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
            self.looks += 1

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
            paused = self._pause_writers(programs) if written.maybe_past else []
            self.summing.acquire()
            threading.Thread(target=self._sum_files, args=(programs, written, paused),
                             daemon=True).start()
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

    def _pause_writers(self, programs: list["Program"]) -> list[tuple[int, bytes]]:
        """SIGSTOP every process of the programs that wrote to files: (pid, marker) of
        each. The sum takes tens of ms, in which a writer adds tens of MB."""
        paused = []
        for program in programs:
            if program.limit_note or not written_files.writers(program.pids):
                continue
            mine = program.token.encode()
            for pid in list(program.pids):
                if _kill(pid, lambda token: token == mine, signal.SIGSTOP):
                    paused.append((pid, mine))
        return paused

    def _sum_files(self, programs, written: "written_files.Files",
                   paused: list[tuple[int, bytes]]) -> None:
        try:
            used = written.used()
            if used > written.bound:
                self._stop_writers(programs, used, written)
        finally:
            for pid, mine in paused:   # those stopped meanwhile are dead: no matter
                _kill(pid, lambda token: token == mine, signal.SIGCONT)
            self.summing.release()

    def _stop_writers(self, programs: list["Program"], used: int,
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


def _kill(pid: int, ours, sig: "int | None" = None) -> bool:
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

