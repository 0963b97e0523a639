"""macOS and BSD (any POSIX system without /proc): processes as ps lists them."""

from __future__ import annotations

import re
import subprocess


def parent_map() -> dict[int, int]:
    """{pid: its parent's pid} for every process ps lists; {} if ps can't be run."""
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


def busy_seconds(pid: int) -> float | None:
    """The process's CPU time (ps -o time=), in seconds; None if it ended or ps can't
    be run, or prints it without hundredths (too coarse)."""
    try:
        out = subprocess.run(["ps", "-o", "time=", "-p", str(pid)], capture_output=True,
                             text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_ps_time(out)


def parse_ps_time(text: str) -> float | None:
    """ps's CPU time as macOS and BSD print it, [[DD-]HH:]MM:SS.ss, in seconds; None for
    anything else (Linux's ps prints whole seconds: too coarse)."""
    found = re.fullmatch(r"(?:(?:(\d+)-)?(\d+):)?(\d+):(\d+\.\d+)", text.strip())
    if not found:
        return None
    days, hours, minutes, seconds = found.groups()
    return (int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes) * 60
            + float(seconds))
