"""Windows, through its own calls (ctypes): job objects, processes, CPU, Ctrl-C.

A job object for each program the grader starts. On Linux and macOS a
program runs in a process group of its own, and the grader ends the group.
Windows has no such thing: a child whose parent has exited is nobody's child
any more, so a tree kill (taskkill /T) misses it. A
job object holds the program and every process it starts, however deep, from
its first instruction on (children join their parent's job), so:

* ending the job ends all of them, orphans included; and the grader holding
  the job's only handle, with KILL_ON_JOB_CLOSE, ends them even when the
  grader itself is killed;
* the job refuses a process past --max-processes (Windows then fails the
  program's CreateProcess with "not enough quota"). On Linux the bound is on
  all the grading's programs together; here it is on each program, of which a
  grading has at most four alive at once (server, client, and a spare of each).

The program is added to its job just after it starts. Python needs tens of
milliseconds to start before any of the program's code runs, and every program
is started as `python chat_server.py`, so nothing it starts is missed.

Where Windows refuses a job (never seen), the grader falls back to taskkill /T.

Also here: every process and its parent (a toolhelp snapshot), a process's CPU
time, Ctrl-C in a program's console, and what waits in a pipe.
"""

from __future__ import annotations

import ctypes
import subprocess
import sys

DWORD = ctypes.c_uint32             # Windows' DWORD (ctypes.wintypes is Windows' own)
HANDLE = ctypes.c_void_p

KILL_ON_JOB_CLOSE = 0x2000          # JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
ACTIVE_PROCESS = 0x0008             # JOB_OBJECT_LIMIT_ACTIVE_PROCESS
EXTENDED_LIMITS = 9                 # JobObjectExtendedLimitInformation
# A console program (every program the grader starts has a console of its own) gets
# a console host, conhost.exe, which may count as one of its job's processes.
CONSOLE_HOST = 1


class BasicLimits(ctypes.Structure):
    _fields_ = [("PerProcessUserTimeLimit", ctypes.c_int64),
                ("PerJobUserTimeLimit", ctypes.c_int64),
                ("LimitFlags", DWORD),
                ("MinimumWorkingSetSize", ctypes.c_size_t),
                ("MaximumWorkingSetSize", ctypes.c_size_t),
                ("ActiveProcessLimit", DWORD),
                ("Affinity", ctypes.c_size_t),
                ("PriorityClass", DWORD),
                ("SchedulingClass", DWORD)]


class ExtendedLimits(ctypes.Structure):
    _fields_ = [("BasicLimitInformation", BasicLimits),
                ("IoInfo", ctypes.c_ulonglong * 6),
                ("ProcessMemoryLimit", ctypes.c_size_t),
                ("JobMemoryLimit", ctypes.c_size_t),
                ("PeakProcessMemoryUsed", ctypes.c_size_t),
                ("PeakJobMemoryUsed", ctypes.c_size_t)]


def kernel32():
    library = ctypes.WinDLL("kernel32", use_last_error=True)
    library.CreateJobObjectW.restype = HANDLE
    return library


class Job:
    """One program's job object: `holding(process)` makes one, `end()` ends it all."""

    def __init__(self, handle, library) -> None:
        self.handle, self.kernel32 = handle, library

    @classmethod
    def holding(cls, process_handle: int, max_processes: int) -> Job | None:
        """A new job with the process in it, at most `max_processes` processes of the
        program's (0: no bound); None if Windows refuses (then taskkill /T is the way)."""
        library = kernel32()
        handle = library.CreateJobObjectW(None, None)
        if not handle:
            return None
        job = cls(handle, library)
        limits = ExtendedLimits()
        limits.BasicLimitInformation.LimitFlags = KILL_ON_JOB_CLOSE
        if max_processes:
            limits.BasicLimitInformation.LimitFlags |= ACTIVE_PROCESS
            limits.BasicLimitInformation.ActiveProcessLimit = max_processes + CONSOLE_HOST
        if not (library.SetInformationJobObject(HANDLE(handle), EXTENDED_LIMITS,
                                                ctypes.byref(limits), ctypes.sizeof(limits))
                and library.AssignProcessToJobObject(HANDLE(handle),
                                                     HANDLE(process_handle))):
            job.close()
            return None
        return job

    def end(self) -> None:
        """End every process in the job, orphans too, and let the job go."""
        if self.handle:
            self.kernel32.TerminateJobObject(HANDLE(self.handle), 1)
            self.close()

    def close(self) -> None:
        if self.handle:
            self.kernel32.CloseHandle(HANDLE(self.handle))
            self.handle = None


def end_tree(pid: int) -> None:
    """End process `pid` and every process below it (taskkill /T): the way without a
    job, which misses the orphans."""
    subprocess.run(["taskkill", "/F", "/T", "/PID", str(pid)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- processes: their parents, their CPU time ------------------------------------

def parent_map() -> dict[int, int]:
    """Every process and its parent, from CreateToolhelp32Snapshot."""
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


def busy_seconds(pid: int) -> float | None:
    """The process's user and kernel time (GetProcessTimes), in seconds; None if it
    can't be opened (it ended) or Windows refuses."""
    times = process_times(pid)
    return None if times is None else cpu_seconds(*times)


def process_times(pid: int) -> tuple[int, int] | None:
    """GetProcessTimes' (kernel, user) times of process `pid`, in its 100 ns units."""
    from ctypes import wintypes
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.OpenProcess.restype = wintypes.HANDLE
    handle = kernel32.OpenProcess(0x1000, False, pid)   # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return None
    try:
        times = [ctypes.c_ulonglong() for _ in range(4)]   # creation, exit, kernel, user
        if not kernel32.GetProcessTimes(wintypes.HANDLE(handle),
                                        *[ctypes.byref(t) for t in times]):
            return None
        return times[2].value, times[3].value
    finally:
        kernel32.CloseHandle(wintypes.HANDLE(handle))


def cpu_seconds(kernel: int, user: int) -> float:
    """Kernel and user time in FILETIME's 100 ns units, together, in seconds."""
    return (kernel + user) / 1e7


# --- Ctrl-C, and what waits in a pipe ------------------------------------------------
#
# A console's Ctrl-C goes to every process attached to it, and each program runs in a
# console of its own (CREATE_NO_WINDOW), as if in a terminal of its own. So a short
# helper process leaves its own console, attaches to the program's, ignores the event
# itself, and generates it: the program and whatever it started get it, as they would
# from a key press; the grader, on another console, does not. (CTRL_BREAK_EVENT, which
# Windows can send to one process group, would end Python at once instead of raising
# KeyboardInterrupt.)

def press_ctrl_c(pid: int) -> None:
    """Ctrl-C in the console of process `pid`, which must have one of its own
    (CREATE_NO_WINDOW). OSError if Windows refuses: the grader's failure, not the
    program's, and said so."""
    done = subprocess.run([sys.executable, "-c", WINDOWS_CTRL_C, str(pid)],
                          creationflags=subprocess.CREATE_NO_WINDOW, capture_output=True,
                          text=True, timeout=30)
    if done.returncode != 0:
        raise OSError(done.stderr.strip() or "Ctrl-C could not be sent (exit %d)"
                      % done.returncode)


WINDOWS_CTRL_C = r"""
import ctypes, sys
kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
kernel32.FreeConsole()
if not (kernel32.AttachConsole(int(sys.argv[1]))
        and kernel32.SetConsoleCtrlHandler(None, True)
        and kernel32.GenerateConsoleCtrlEvent(0, 0)):
    sys.exit("Ctrl-C could not be sent to process %s: Windows error %d"
             % (sys.argv[1], ctypes.get_last_error()))
"""


def bytes_waiting(fd: int) -> int:
    """How many bytes wait in pipe `fd`; -1 once it is broken (its end)."""
    import msvcrt
    from ctypes import wintypes
    waiting = wintypes.DWORD()
    if not ctypes.windll.kernel32.PeekNamedPipe(
            wintypes.HANDLE(msvcrt.get_osfhandle(fd)), None, 0, None, ctypes.byref(waiting), None):
        return -1
    return waiting.value
