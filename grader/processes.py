"""The processes of a program: itself and every process it started, on every system.

"The server" is every process the student's program started, not only the one the
grader started: a chat_server.py may be a launcher whose child runs the real loop
(on Windows, a virtual environment's python.exe is exactly such a launcher). The
system's own answers (parents, CPU time, a thread reading input) come from
grader/system. A program here is a Program (programs.py): its proc and its pids.
"""

from __future__ import annotations

import time

from grader import system
from grader.system import LINUX


def process_tree(program) -> set[int]:
    """The program's process and every process below it (by parent), plus any process
    of its that the watchdog found by its marker (one that left the tree: a daemon)."""
    parents = system.parent_map()   # every process alive now
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


def reading_input(program) -> bool | None:
    """Whether a thread of the program (in any of its processes) is blocked reading its
    standard input: in read() on descriptor 0. None if the system can't tell (not
    Linux, another machine, a program the grader may not look into)."""
    if not LINUX or program.proc.pid is None:   # no pid: a program the student started
        return None
    from grader.system import linux
    if linux.READ_SYSCALL.get(linux.machine()) is None:
        return None
    return linux.reading_stdin(process_tree(program))


def tree_busy_seconds(program) -> dict[int, float]:
    """{pid: how long it has wanted the CPU} for every process of the program."""
    found = {}
    for pid in process_tree(program):
        seconds = system.busy_seconds(pid)
        if seconds is not None:   # None: it ended meanwhile
            found[pid] = seconds
    return found


def busy_share(program, window: float) -> tuple[float, int] | None:
    """(the share of the next `window` seconds during which the program wanted the CPU,
    how many processes it had), or None if it exited meanwhile or could no longer be
    measured. The program is every process it started: a launcher that sleeps while
    its child spins is a spinning program."""
    before = tree_busy_seconds(program)
    started = time.monotonic()
    time.sleep(window)   # the measurement window itself: nothing to wait for
    after = tree_busy_seconds(program)
    elapsed = time.monotonic() - started
    if program.exit_status() is not None or not after:
        return None
    used = sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())
    return max(used, 0.0) / elapsed, len(after)
