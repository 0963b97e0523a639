"""A stage-1 server behind a launcher: chat_server.py starts the real server as its
child and waits for it, as a virtual environment's python.exe does on Windows.

The child is the kit's reference server; with CHATKIT_LAUNCHED_SPINS=1 its select()
never waits (timeout 0), so it spins at full CPU while the launcher sleeps. Check
1.12 must judge the server by all of its processes: the spinning child fails it,
the correct one passes (tests/test_grader.py).
"""

import importlib.util
import os
import runpy
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The reference solution: inside this folder when the kit's tests made it self-contained
# (tests/gradekit.py, self_contained), else the kit's own.
SOLUTIONS = HERE / "reference"
if not SOLUTIONS.is_dir():
    SOLUTIONS = HERE.parents[2] / "solutions"
REFERENCE = SOLUTIONS / "1_echo" / "chat_server.py"


def launch() -> int:
    """The launcher: start the child with the same arguments, wait, pass its status on."""
    child = subprocess.Popen([sys.executable, __file__, "--child", *sys.argv[1:]])
    try:
        return child.wait()
    except KeyboardInterrupt:
        return child.wait()


def run_child() -> None:
    """The real server: the reference, spinning if told to."""
    sys.argv = [sys.argv[0]] + sys.argv[2:]
    folder = REFERENCE.parent   # where its chat_server.py looks for its modules
    sys.path[:0] = [str(folder), str(folder.parent), str(folder.parent.parent)]
    server = importlib.import_module("server")   # its event loop, as chat_server.py imports it
    if os.environ.get("CHATKIT_LAUNCHED_SPINS") == "1":
        waits = server.selector.select
        server.selector.select = lambda timeout=None: waits(0)   # never sleeps
    runpy.run_path(str(REFERENCE), run_name="__main__")


def client_main() -> None:
    """The reference client, unchanged."""
    sys.path.insert(0, str(REFERENCE.parent))
    runpy.run_path(str(SOLUTIONS / "1_echo" / "chat_client.py"), run_name="__main__")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        run_child()
    else:
        sys.exit(launch())
