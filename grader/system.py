"""Which system the grader runs on, decided once, for every module.

Linux is told by its name, never by /proc being there: under Wine (Windows
programs run on Linux, a way to try the kit's Windows paths) /proc is there, but
it lists Linux's processes, not the ones Windows' process ids name.
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
