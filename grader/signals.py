"""The grader's own process and its signals: Ctrl-C counts, and SIGTERM stops the programs."""

from __future__ import annotations

import os
import signal
import threading
from typing import Callable

from grader.system import WINDOWS


def set_up_signals(stop_everything: Callable[[], None]) -> None:
    """Two signal matters of the grader's own process.

    SIGINT: a job started in the background (`pytest grader &`, some CI runners)
    ignores Ctrl-C, and the programs it starts would inherit that, so check 4.8's
    Ctrl-C would be ignored by a correct server. So we make SIGINT count again.

    SIGTERM: if the grader itself is terminated (say, by a platform's time limit),
    the programs it started, each in a process group of its own, must not outlive it:
    `stop_everything` stops them.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if WINDOWS:   # the same on Windows: a new process group ignores Ctrl-C
        import ctypes
        ctypes.WinDLL("kernel32").SetConsoleCtrlHandler(None, False)

    def on_sigterm(signum, frame):
        stop_everything()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)
