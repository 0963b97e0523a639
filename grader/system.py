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
