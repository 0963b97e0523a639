"""Chat server, stage 1 (echo): every message comes back to its sender.

Many clients at once, one thread: server.py is the event loop, which you write
in this stage and every later stage runs as it is.  This file says what the
server of this stage does with each message.

    python chat_server.py [--host HOST] [--port PORT] [--verbose]
"""

import os
import sys

# `import protocol` must find protocol.py from any working directory.  In the kit
# it is two folders up (kit/protocol.py, for kit/stages/1_echo/); a hand-in may
# instead keep it next to the stage folders.  Python looks in both, nearer first.
STAGE_FOLDER = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(STAGE_FOLDER), os.path.dirname(os.path.dirname(STAGE_FOLDER))]

import server  # noqa: E402  (the event loop, next to this file: server.py)

STAGE = 1


def echo(client, payload):
    """Send the payload back to its sender, unchanged (even if empty)."""
    server.queue_message(client, payload)


if __name__ == "__main__":
    server.main(STAGE, echo)
