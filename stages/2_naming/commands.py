"""Commands (stage 2): every message is a command, and gets exactly one reply.

A message's payload is UTF-8 text: a command word, then, for most commands,
a space and the command's argument ("NAME alice").  chat_server.py says which
function runs each command; that function returns the reply.

Your part: TODO 2.1 below, and TODO 2.2 to 2.5 in naming.py (docs/students.md
§ Stage 2).  Until a TODO is done, a stand-in runs in its place: a command
gets "ERROR not implemented yet: ...", and the server says so once on
standard error.
"""

import protocol
from todo import not_implemented   # the TODOs' stand-ins (todo.py, next to protocol.py)


def run(client, payload, commands):
    """Run the command the payload holds; return its reply.

    `commands` maps each command word to the function that runs it, called
    as function(client, argument): the argument is everything after the word
    and its space ("a b" for "NAME a b"), or None when the word came alone
    ("GET_NAMES").
    """
    # TODO 2.1: Run the command, and queue exactly one reply for the client that
    #   sent it (docs/students.md § Stage 2).  Echo is gone: every payload is one command now.
    #   Decode it as UTF-8 first: bytes that are not UTF-8 raise UnicodeDecodeError,
    #   and get "ERROR <reason>" (the connection stays open).
    #   The command is the text up to the first space, its argument all the rest
    #   (str.partition()).  Look the word up in `commands` and return what its
    #   function returns; a word that is not there, the empty payload too, gets
    #   "ERROR <reason>".  (chat_server.py's answer() queues the reply.)
    #   Pitfalls: GET_NAMES takes no argument ("GET_NAMES now" is refused), so a
    #   word that came alone gets None as its argument, not ""; and str.split()
    #   would lose the spaces of "NAME a b", whose name "a b" is invalid.
    # Until then, every command gets an ERROR that names it:
    word = payload.decode("utf-8", "replace").partition(" ")[0]
    return not_implemented("2.1", word[:30] or "commands")
