"""Chat server, stage 1 (echo): every message comes back to its sender.

Many clients at once, one thread: server.py is the event loop, which you write
in this stage and every later stage runs as it is.  This file says what the
server of this stage does with each message.

Your part here: TODO 1.4 below (docs/students.md § Stage 1); TODO 1.1 to 1.3
are in server.py.

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
from todo import not_implemented  # noqa: E402  (the TODOs' stand-ins: todo.py)

STAGE = 1


def echo(client, payload):
    """Send the payload back to its sender, unchanged (even if empty)."""
    # TODO 1.4: Echo (docs/students.md § Stage 1): the sender gets its payload back,
    #   unchanged, through its queue (server.queue_message()): never a send() from here.
    #   Pitfall: decoding or stripping the payload changes it; an empty payload is
    #   a message too, and comes back empty.
    # Until then, every message gets this ERROR instead of its echo:
    server.queue_message(client, not_implemented("1.4", "echo"))


if __name__ == "__main__":
    server.main(STAGE, echo)
