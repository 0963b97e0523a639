"""POSIX (Linux, macOS, BSD): signals to a program's process group."""

import os


def signal_group(pid: int, sig) -> None:
    """Signal `sig` to process group `pid` (a program started in a session of its own),
    if it is still there and ours to signal."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
