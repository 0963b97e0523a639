"""Leaving the chat (stage 4): EXIT, then wait for BYE.

The line EXIT, or the end of input, says goodbye: the client sends EXIT,
prints what still comes until BYE, then exits with status 0.  It sends
nothing more once it has said EXIT, and a server that never answers BYE is
given up after BYE_TIMEOUT seconds (status 1).  chat_client.py hands these
functions to the loop in client.py.
"""

import sys
import time

import client
import protocol

BYE_TIMEOUT = 5.0   # seconds to wait for BYE after sending EXIT

bye_deadline = None   # once EXIT is sent: when we stop waiting for BYE


def show_until_bye(payload):
    """A message received: print it; BYE is the server's last word."""
    client.show(payload)
    if payload == protocol.REPLY_BYE.encode():
        return 0
    return None


def say_exit(server, line):
    """A line typed (None: the end of input): EXIT, and the end of input, say goodbye."""
    global bye_deadline
    if bye_deadline is not None:
        return None   # we are leaving: nothing more is sent
    if line is None or line == protocol.CMD_EXIT.encode():
        server.sendall(protocol.frame(protocol.CMD_EXIT))
        bye_deadline = time.monotonic() + BYE_TIMEOUT
        return None
    return client.send_typed(server, line)


def give_up_waiting():
    """Nothing happened for a while: past the deadline, BYE is not coming."""
    if bye_deadline is not None and time.monotonic() >= bye_deadline:
        print("The server did not answer EXIT with BYE.", file=sys.stderr)
        return 1
    return None
