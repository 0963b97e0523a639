"""Leaving (stage 4): EXIT for a client, Ctrl-C for the whole server.

EXIT is answered with BYE, and the connection closes once BYE is sent; the
client's name is free at once, and whatever it sent after EXIT is ignored
(server.py's start_closing() does both).  A client that vanishes without EXIT
is cleaned up the same way, by the event loop.  Ctrl-C stops the server
cleanly: every socket closed, no traceback, the port free again at once.
"""

import protocol
import server


def leave(client, argument):
    """EXIT: reply BYE; the connection closes once BYE is sent."""
    if argument is not None:
        return protocol.refusal("EXIT takes nothing after it")
    server.start_closing(client)
    return protocol.REPLY_BYE


def stop():
    """Ctrl-C: close every socket the selector watches (the listener and all
    clients), then the selector itself, and say so."""
    for key in list(server.selector.get_map().values()):
        key.fileobj.close()
    server.selector.close()
    print("Server stopped.", flush=True)
