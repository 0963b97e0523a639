"""Chat client, stage 1 (echo): type lines, see them come back.

Each line you type is sent as one message; everything the server sends is
printed on a line of its own, the moment it arrives.  The end of input
(Ctrl-D, or Ctrl-Z Enter on Windows) closes the connection and exits.  If
the server closes the connection, the client says so and exits with status
1.  Ctrl-C: status 130.  client.py is the loop, which you write in this stage
and every later stage runs as it is.

    python chat_client.py [--host HOST] [--port PORT]
"""

import os
import sys

# `import protocol` must find protocol.py from any working directory.  In the kit
# it is two folders up (kit/protocol.py, for kit/stages/1_echo/); a hand-in may
# instead keep it next to the stage folders.  Python looks in both, nearer first.
STAGE_FOLDER = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(STAGE_FOLDER), os.path.dirname(os.path.dirname(STAGE_FOLDER))]

import client  # noqa: E402  (the client's loop, next to this file: client.py)

STAGE = 1
EXAMPLES = [   # what this stage's server understands, one example each: the greeting
    ("hello", "any line: the server sends it back"),
]

if __name__ == "__main__":
    client.main(STAGE, EXAMPLES)
