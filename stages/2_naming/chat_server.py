"""Chat server, stage 2 (naming): every message is a command.

New in this stage: echo is gone.  Each payload is UTF-8 text holding one
command, and each command gets exactly one reply:
    NAME <name>   take a name (or change it)      -> HELLO <name>
    GET_NAMES     who is here                     -> NAMES <name> <name> ...
A name belongs to one client at a time; it is free again once that client
renames or leaves.  Anything else gets "ERROR <reason>".

Made of: server.py, the event loop (yours, from stage 1); commands.py, which
reads each message as a command; naming.py, the commands of this stage.

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
import naming  # noqa: E402
import server  # noqa: E402

STAGE = 2
COMMANDS = {                                  # each command, and what runs it
    protocol.CMD_NAME: naming.take_name,
    protocol.CMD_GET_NAMES: naming.list_names,
}


def answer(client, payload):
    """Every message is a command: run it, and queue its one reply."""
    server.queue_message(client, commands.run(client, payload, COMMANDS))


if __name__ == "__main__":
    server.main(STAGE, answer, forget_client=naming.release_name)
