"""The reference client of stage 1, reading what is typed as text (sys.stdin, not
sys.stdin.buffer) and stripping only "\\n": right on every real system (Windows'
text mode turns "\\r\\n" into "\\n"; Linux and macOS terminals type "\\n"), so it
must get the same verdict everywhere, full marks (tests/test_platform_seams.py).
"""

import importlib.util
import sys
from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[3] / "solutions" / "1_echo" / "chat_client.py"


def read_lines_as_text(stdin, lines, doorbell):
    for line in stdin:   # text mode: whatever the system makes of the line endings
        lines.put(line.rstrip("\n").encode("utf-8"))
        doorbell.send(b"!")
    lines.put(None)
    doorbell.send(b"!")


def client_main():
    sys.path.insert(0, str(REFERENCE.parent))
    spec = importlib.util.spec_from_file_location("reference_client", REFERENCE)
    client = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(client)
    client.read_lines = read_lines_as_text
    client.main()
