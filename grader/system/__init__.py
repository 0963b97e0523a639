"""Which system the grader runs on, decided once, and what the grader asks of it.

Linux is told by its name, never by /proc being there: under Wine (Windows
programs run on Linux, a way to try the kit's Windows paths) /proc is there, but
it lists Linux's processes, not the ones Windows' process ids name.

What differs by system is asked here, and answered by one module per system
(as asyncio's windows_events and unix_events): linux.py (/proc), macos.py (ps,
on macOS and BSD), windows.py (Windows' own calls, through ctypes), posix.py
(signals to process groups, Linux and macOS alike). Each is imported when first
asked, so a system never loads another's module for its answers.
"""

import os
import sys

POSIX = os.name == "posix"                 # Linux, macOS, BSD: signals, process groups
WINDOWS = os.name == "nt"
LINUX = sys.platform.startswith("linux")   # /proc tells of processes and sockets
PLATFORM, OS_NAME = sys.platform, os.name   # as pip's environment markers name them


def speak_utf8_off_the_console() -> None:
    """Our output in UTF-8 when it goes to a pipe, a file or Git Bash: there Windows
    would use the old code page, which has no ✓ or ✗ (and garbles names). A real
    console shows Unicode as it is."""
    for stream in (sys.stdout, sys.stderr):
        if not stream.isatty() and hasattr(stream, "reconfigure") \
                and stream.encoding.lower().replace("-", "") != "utf8":
            stream.reconfigure(encoding="utf-8", errors="replace")


def platform_module():
    """The module that reads this system's processes: linux (/proc), windows (its own
    calls), or macos (ps: macOS, BSD and any other POSIX system)."""
    if LINUX:
        from grader.system import linux as module
    elif WINDOWS:
        from grader.system import windows as module
    else:
        from grader.system import macos as module
    return module


def parent_map() -> dict[int, int]:
    """{pid: its parent's pid} for every process the system lists."""
    return platform_module().parent_map()


def busy_seconds(pid: int) -> float | None:
    """How long process `pid` has wanted the CPU so far, in seconds; None if it ended or
    the system can't tell. Linux: the time its threads ran plus the time they waited
    their turn (so a spinning program counts as busy all the time even on a loaded
    machine where it seldom runs); elsewhere its CPU time."""
    return platform_module().busy_seconds(pid)


def cpu_seconds(pid: int) -> float | None:
    """The CPU time process `pid` has used so far, in seconds; None if it ended or the
    system can't tell. (Elsewhere than Linux, busy_seconds is that CPU time.)"""
    if LINUX:
        from grader.system import linux
        return linux.cpu_seconds(pid)
    return platform_module().busy_seconds(pid)


def open_files_limit(pid: int) -> str | None:
    """Process `pid`'s limit on open files, as Linux shows it; None elsewhere."""
    if not LINUX:
        return None
    from grader.system import linux
    return linux.open_files_limit(pid)


def press_ctrl_c(pid: int) -> None:
    """Windows: Ctrl-C in the console of process `pid` (windows.press_ctrl_c). POSIX
    presses it with SIGINT to the process group (signal_group)."""
    from grader.system import windows
    windows.press_ctrl_c(pid)


def signal_group(pid: int, sig) -> None:
    """POSIX: signal `sig` to process group `pid`, if it is still there."""
    from grader.system import posix
    posix.signal_group(pid, sig)


def bytes_waiting(fd: int) -> int:
    """Windows: how many bytes wait in pipe `fd`; -1 once it is broken (its end)."""
    from grader.system import windows
    return windows.bytes_waiting(fd)
