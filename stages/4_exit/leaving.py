"""Leaving (stage 4): EXIT for a client, Ctrl-C for the whole server.

EXIT is answered with BYE, and the connection closes once BYE is sent; the
client's name is free at once, and whatever it sent after EXIT is ignored
(server.py's start_closing() does both).  A client that vanishes without EXIT
is cleaned up the same way, by the event loop.  Ctrl-C stops the server
cleanly: every socket closed, no traceback, the port free again at once.

Your part: TODO 4.1 and 4.2 below (docs/students.md § Stage 4), and TODO 4.3
and 4.4 in goodbye.py, for the client.  Until TODO 4.1 is done, EXIT gets the
reply "ERROR not implemented yet: EXIT (TODO 4.1)", and the server says so
once on standard error.
"""

import protocol
import server
from todo import not_implemented   # the TODOs' stand-ins (todo.py, next to protocol.py)


def leave(client, argument):
    """EXIT: reply BYE; the connection closes once BYE is sent."""
    if argument is not None:
        return protocol.refusal("EXIT takes nothing after it")
    # TODO 4.1: Say goodbye (docs/students.md § Stage 4): the reply is "BYE"; then
    #   the server stops reading this client, frees its name at once, and closes
    #   the connection once everything queued for it, BYE last, is sent
    #   (server.start_closing() does exactly that); return the reply,
    #   protocol.REPLY_BYE.
    #   Pitfall: closing the socket here loses BYE, and every reply still queued.
    return not_implemented("4.1", "EXIT")


def stop():
    """Ctrl-C: close every socket the selector watches (the listener and all
    clients), then the selector itself, and say so."""
    # TODO 4.2: Stop cleanly on Ctrl-C (docs/students.md § Stage 4).  server.main() calls
    #   this when Ctrl-C raises KeyboardInterrupt; the program then ends with status
    #   0, and no traceback.  Close every socket the selector watches, the listener
    #   and every client, then the selector itself, and print "Server stopped.".
    #   server.selector.get_map() maps each watched socket to its key, and
    #   key.fileobj is the socket.  Pitfall: selector.close() alone closes none of
    #   the sockets, and the port stays taken until they are closed.
    # Until then, Ctrl-C ends the server with a traceback, its sockets left open:
    not_implemented("4.2", "Ctrl-C: the sockets are not closed")
    raise KeyboardInterrupt
