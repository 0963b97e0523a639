"""Leaving the chat (stage 4): EXIT, then wait for BYE.

The line EXIT, or the end of input, says goodbye: the client sends EXIT,
prints what still comes until BYE, then exits with status 0.  It sends
nothing more once it has said EXIT, and a server that never answers BYE is
given up after BYE_TIMEOUT seconds (status 1).  chat_client.py hands these
functions to the loop in client.py.

Your part: TODO 4.3 and 4.4 below (docs/students.md § Stage 4, § The client).
Everything from stages 1 to 3 works: lines are sent, messages are printed,
and the end of input ends the client (without a goodbye, for now).  Until a
TODO is done, the client says so once on standard error.
"""

import sys
import time

import client
import protocol
from todo import not_implemented   # the TODOs' stand-ins (todo.py, next to protocol.py)

BYE_TIMEOUT = 5.0   # seconds to wait for BYE after sending EXIT

bye_deadline = None   # once EXIT is sent: when we stop waiting for BYE


def show_until_bye(payload):
    """A message received: print it; BYE is the server's last word."""
    client.show(payload)
    # TODO 4.3: BYE is the server's last word (docs/students.md § Stage 4).  Once it is
    #   shown, the client is done: return 0, the exit status for "all went well".
    #   Pitfall: payloads are bytes, and b"BYE" == "BYE" is False: compare with
    #   protocol.REPLY_BYE encoded.
    not_implemented("4.3", "BYE does not end the client")
    return None


def say_exit(server, line):
    """A line typed (None: the end of input): EXIT, and the end of input, say goodbye."""
    global bye_deadline
    if bye_deadline is not None:
        return None   # we are leaving: nothing more is sent
    # TODO 4.4: Leave politely (docs/students.md § Stage 4).  The line EXIT, or the
    #   end of input (line is None), sends EXIT, framed, and starts the wait for
    #   BYE: bye_deadline, BYE_TIMEOUT seconds after time.monotonic().  From then
    #   on, send nothing more (the check above).  Any other line is sent as in
    #   stages 1 to 3: client.send_typed().
    #   Pitfall: returning a status right after sending EXIT ends the chat and
    #   loses what is still on its way, BYE among it.  Return None: TODO 4.3 ends
    #   the chat at BYE, and give_up_waiting() at bye_deadline.
    if line is None:   # end of input: for now, we leave without a goodbye
        not_implemented("4.4", "the end of input closes without EXIT")
    return client.send_typed(server, line)


def give_up_waiting():
    """Nothing happened for a while: past the deadline, BYE is not coming."""
    if bye_deadline is not None and time.monotonic() >= bye_deadline:
        print("The server did not answer EXIT with BYE.", file=sys.stderr)
        return 1
    return None
