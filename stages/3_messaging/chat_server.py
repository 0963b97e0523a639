"""Chat server, stage 3 (messaging): named clients send each other messages.

New in this stage: MSG <name> <text> pushes "FROM <sender> <text>" to the
recipient and replies "SENT <name>" to the sender.  Now one client's words
go to another, so a client that stops reading must never stall the others:
its messages wait in its queue, and past 1 MiB it is disconnected.

Made of: server.py, the event loop (yours, from stage 1); commands.py and
naming.py (yours, from stage 2); messaging.py, the command of this stage.

    python chat_server.py [--host HOST] [--port PORT] [--verbose]
"""

import os
import sys

# `import protocol` must find protocol.py from any working directory.  In the kit
# it is two folders up (kit/protocol.py, for kit/stages/1_echo/); a hand-in may
# instead keep it next to the stage folders.  Python looks in both, nearer first.
STAGE_FOLDER = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(STAGE_FOLDER), os.path.dirname(os.path.dirname(STAGE_FOLDER))]

import protocol  # noqa: E402  (must come after the sys.path lines)
import commands  # noqa: E402  (the modules next to this file: commands.py, ...)
import messaging  # noqa: E402
import naming  # noqa: E402
import server  # noqa: E402

STAGE = 3
COMMANDS = {                                  # each command, and what runs it
    protocol.CMD_NAME: naming.take_name,
    protocol.CMD_GET_NAMES: naming.list_names,
    protocol.CMD_MSG: messaging.send_message,
}


def answer(client, payload):
    """Every message is a command: run it, and queue its one reply."""
    server.queue_message(client, commands.run(client, payload, COMMANDS))


if __name__ == "__main__":
    server.main(STAGE, answer, forget_client=naming.release_name,
                backlog_limit=messaging.limit_backlog)
