"""A correct server that logs about 2 KB per message it handles, on both streams.

The kit's reference server (solutions/), with one change: every payload it handles
is first logged, a line of about 1 KB to standard output and another to standard
error, as a student's debug logging might. Its output grows with the traffic the
grader sends (about 17 MB during check 3.10's 8 MB flood), never on its own: the
output limit must not stop it (tests/test_containment.py).
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
LOG_LINE = 1000   # characters of each line, on each stream


def server_main(stage: str) -> None:
    """The reference server of `stage`, its event loop (server.py) logging each payload."""
    folder = SOLUTIONS / stage   # where its chat_server.py looks for its modules
    sys.path[:0] = [str(folder), str(folder.parent), str(folder.parent.parent)]
    server = importlib.import_module("server")   # the one its chat_server.py imports
    handle_payload = server.handle_payload

    def logged(client, payload):
        line = "handling %r %s" % (payload[:40], "." * LOG_LINE)
        print(line, flush=True)
        print(line, file=sys.stderr, flush=True)
        return handle_payload(client, payload)

    server.handle_payload = logged
    runpy.run_path(str(SOLUTIONS / stage / "chat_server.py"), run_name="__main__")


def client_main(stage: str) -> None:
    """The reference client, unchanged."""
    sys.path.insert(0, str(SOLUTIONS / stage))
    runpy.run_path(str(SOLUTIONS / stage / "chat_client.py"), run_name="__main__")
