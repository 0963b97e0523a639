"""The reference client of stage 1, reading what is typed as text (sys.stdin, not
sys.stdin.buffer) and stripping only "\\n": right on every real system (Windows'
text mode turns "\\r\\n" into "\\n"; Linux and macOS terminals type "\\n"), so it
must get the same verdict everywhere, full marks (tests/test_platform_seams.py).
"""

import importlib
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The reference solution: inside this folder when the kit's tests made it self-contained
# (tests/gradekit.py, self_contained), else the kit's own.
SOLUTIONS = HERE / "reference"
if not SOLUTIONS.is_dir():
    SOLUTIONS = HERE.parents[2] / "solutions"
REFERENCE = SOLUTIONS / "1_echo" / "chat_client.py"


def read_lines_as_text(stdin, lines, doorbell):
    for line in stdin:   # text mode: whatever the system makes of the line endings
        lines.put(line.rstrip("\n").encode("utf-8"))
        doorbell.send(b"!")
    lines.put(None)
    doorbell.send(b"!")


def server_main():
    """The reference server, unchanged."""
    sys.path.insert(0, str(REFERENCE.parent))
    runpy.run_path(str(REFERENCE.parent / "chat_server.py"), run_name="__main__")


def client_main():
    """The reference client, its loop (client.py) reading text."""
    folder = REFERENCE.parent   # where its chat_client.py looks for its modules
    sys.path[:0] = [str(folder), str(folder.parent), str(folder.parent.parent)]
    client = importlib.import_module("client")   # the one its chat_client.py imports
    client.read_lines = read_lines_as_text
    runpy.run_path(str(REFERENCE), run_name="__main__")
