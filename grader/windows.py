"""Windows: a job object for each program the grader starts.

On Linux and macOS a program runs in a process group of its own, and the
grader ends the group. Windows has no such thing: a child whose parent has
exited is nobody's child any more, so a tree kill (taskkill /T) misses it. A
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
"""

from __future__ import annotations

import ctypes

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
