"""Linux: processes as /proc tells of them (parents, CPU, a thread waiting for input)."""

from __future__ import annotations

import os
from pathlib import Path


def parent_map() -> dict[int, int]:
    """{pid: its parent's pid} for every process in /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:   # /proc/PID/stat: "pid (name) state ppid ..."
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue     # it ended meanwhile
    return parents


def busy_seconds(pid: int) -> float | None:
    """The time the process's threads ran plus the time they waited their turn to run
    (/proc/PID/task/*/schedstat), in seconds; None if it ended."""
    try:
        tasks = list(Path("/proc", str(pid), "task").iterdir())
    except OSError:
        return None             # it ended
    total = 0
    for task in tasks:
        try:
            ran, waited = (task / "schedstat").read_text().split()[:2]
        except (OSError, ValueError):
            continue            # a thread that ended meanwhile
        total += int(ran) + int(waited)
    return total / 1e9


# /proc/PID/task/TID/syscall names the system call a blocked thread is in: its number
# (which depends on the machine), then its arguments, the file descriptor first.
READ_SYSCALL = {"x86_64": 0, "aarch64": 63, "i686": 3, "i386": 3, "armv7l": 3}


def machine() -> str:
    """This machine's architecture, as READ_SYSCALL names it ('x86_64')."""
    return os.uname().machine


def reading_stdin(pids) -> bool | None:
    """Whether a thread of one of the processes `pids` is blocked reading its standard
    input: in read() on descriptor 0. None if it can't be told (another machine, no
    permission to look, every process ended)."""
    number = READ_SYSCALL.get(machine())
    if number is None:
        return None
    looked = False
    for pid in pids:
        try:
            tasks = list(Path("/proc", str(pid), "task").iterdir())
        except OSError:
            continue                 # it ended
        for task in tasks:
            try:
                call = (task / "syscall").read_text().split()
            except OSError:
                continue             # a thread that ended, or no permission to look
            looked = True
            if len(call) > 1 and call[0] == str(number) and int(call[1], 16) == 0:
                return True
    return False if looked else None


def cpu_seconds(pid: int) -> float | None:
    """The CPU time (user + system) the process has used so far (/proc/PID/stat), in
    seconds; None if it ended."""
    try:
        fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def open_files_limit(pid: int) -> str | None:
    """The process's limit on open files, as /proc/PID/limits shows it; None if it ended."""
    try:
        for line in Path("/proc/%d/limits" % pid).read_text().splitlines():
            if line.startswith("Max open files"):
                return line.split()[3]
    except (OSError, IndexError):
        pass
    return None
