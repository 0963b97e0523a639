"""Chat client, stage 5 (shout): type commands, see replies and messages at once.

Each line you type is sent as one message; everything the server sends is
printed on a line of its own, the moment it arrives.  The line EXIT, or the
end of input (Ctrl-D, or Ctrl-Z Enter on Windows), says goodbye: the client
sends EXIT, waits for BYE, and exits with status 0.  If the server closes the
connection, the client says so and exits with status 1.  Ctrl-C: status 130.
client.py and goodbye.py: yours, from stages 1 and 4.

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
import goodbye  # noqa: E402

STAGE = 5
EXAMPLES = [   # what this stage's server understands, one example each: the greeting
    ("NAME <name>", "take a name: 1 to 16 characters, no spaces"),
    ("GET_NAMES", "list who has a name"),
    ("MSG bob hello there", "send bob the text: hello there"),
    ("SHOUT hello all", "send every named client the text: hello all"),
    ("EXIT", "say goodbye and leave"),
]

if __name__ == "__main__":
    client.main(STAGE, EXAMPLES, typed=goodbye.say_exit, received=goodbye.show_until_bye,
                idle=goodbye.give_up_waiting)
