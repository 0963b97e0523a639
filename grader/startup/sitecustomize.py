"""Run by Python at the start of every student program the grader starts.

Line endings read from standard input, the same on every system. On Windows,
Python's text-mode standard input turns a typed "\\r\\n" into "\\n"; on Linux and
macOS it leaves "\\r\\n" alone. So a client that strips only "\\n" from a line read
as text is right on Windows and wrong elsewhere, and the grader's verdict would
depend on the system it runs on. Here text-mode standard input reads lines as on
Windows everywhere (universal newlines); sys.stdin.buffer, read as bytes, still
gets exactly the bytes typed, "\\r\\n" included, as on a Windows console.

First of all, the program takes the grader's hard limits on files (no file larger
than the output limit, no core file: CHATKIT_HARD_LIMITS), before any line of its
own runs. The grader cannot always set them from outside: a root without
CAP_SYS_RESOURCE (many containers) may not change another user's limits. A hard
limit, once lowered, cannot be raised again by the program.

Then any other sitecustomize further along the path runs, as it would have.
"""

import importlib.machinery
import importlib.util
import io
import os
import sys


def take_the_graders_hard_limits():
    try:
        import resource
    except ImportError:
        return   # Windows: a job object holds the program instead
    for item in os.environ.get("CHATKIT_HARD_LIMITS", "").split(","):
        name, _, value = item.partition("=")
        which = getattr(resource, "RLIMIT_" + name.upper(), None)
        if which is None or not value.isdigit():
            continue
        soft, hard = resource.getrlimit(which)
        if hard == resource.RLIM_INFINITY or hard > int(value):
            try:
                resource.setrlimit(which, (int(value), int(value)))   # lowering: always allowed
            except (OSError, ValueError):
                pass


def read_lines_as_windows_does():
    stdin = sys.stdin
    if stdin is None or not isinstance(stdin, io.TextIOWrapper):
        return
    encoding, errors = stdin.encoding, stdin.errors
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(stdin.detach(), encoding=encoding,
                                                 errors=errors, newline=None)


def run_the_next_sitecustomize():
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if p and os.path.abspath(p) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


take_the_graders_hard_limits()
read_lines_as_windows_does()
run_the_next_sitecustomize()
