"""The reference client of stage 1, reading what is typed as text (sys.stdin, not
sys.stdin.buffer) and stripping only "\\n": right on every real system (Windows'
text mode turns "\\r\\n" into "\\n"; Linux and macOS terminals type "\\n"), so it
must get the same verdict everywhere, full marks (tests/test_platform_seams.py).
"""

import importlib.util
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
    runpy.run_path(str(SOLUTIONS / "1_echo" / "chat_server.py"), run_name="__main__")


def client_main():
    sys.path.insert(0, str(REFERENCE.parent))
    spec = importlib.util.spec_from_file_location("reference_client", REFERENCE)
    client = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(client)
    client.read_lines = read_lines_as_text
    client.main()
