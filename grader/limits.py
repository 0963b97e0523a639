"""The limits on a student's programs: set from the options, and the kernel's hard limits.

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
  (users.py, isolation.py), whose tasks the kernel bounds.

The watchdog that holds programs to the memory, process and disk limits:
watchdog.py.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from grader import files as written_files
from grader import isolation, users

MB = 1000 * 1000        # the limits are given in MB, as people count them
# The output limit stops runaways only: on top of --output-limit, a program may print
# this many bytes for every byte the grader sends it (on its sockets, or typed into it),
# so output that grows with the traffic (a log line per message, even a long one) is
# never held against it. One that prints without end, whatever it is sent, is stopped.
OUTPUT_PER_BYTE_SENT = 1024


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
        users.prepare_run_as(limits, run_as, impl, stages, results)
    elif isolation.possible():
        users.prepare_own_user(limits, impl, stages, results)
    # Their own working folder and TMPDIR; what a user of their own owns is theirs too.
    limits.written = written_files.Files(
        written_files.make_scratch(limits.uid, limits.gid), limits.uid, limits.gid,
        owned=limits.user is not None, bound=limits.disk)
    limits.written.remove_leftovers()   # what an earlier grading under that user left
    return limits


def _amount(option: str, value, scale: int = MB) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1
    if not 0 <= number < float("inf"):
        raise ValueError("%s %s: give a number (%s), or 0 for no limit"
                         % (option, value, "of MB" if scale == MB else "of processes"))
    return int(number * scale)


def set_hard_limits(pid: int, limits: Limits) -> None:
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
