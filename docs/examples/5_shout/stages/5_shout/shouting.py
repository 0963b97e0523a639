"""Shouting (stage 5): SHOUT <text> reaches every other named client.

Each other client with a name gets the push "SHOUT <sender> <text>"; the
sender gets the reply "SHOUTED <n>", n being how many got it (0 when nobody
else has a name).  Only a named client may shout, and the text must not be
empty.  A shout is a push like MSG's: one that would be over 1024 bytes is
refused, and a listener who never reads is cut off by the 1 MiB limit.

Your part: TODO 5.1 below (docs/students.md § Stage 5).  Until it is done,
SHOUT gets "ERROR not implemented yet: SHOUT (TODO 5.1)", and the server says
so once on standard error.
"""

import naming
import protocol
import server
from todo import not_implemented   # the TODOs' stand-ins (todo.py, next to protocol.py)

CMD_SHOUT = "SHOUT"
REPLY_SHOUTED = "SHOUTED"


def shout(sender, text):
    """SHOUT <text>: push SHOUT to every other named client, reply SHOUTED <n>."""
    # TODO 5.1: Shout (docs/students.md § Stage 5).  Refuse with "ERROR <reason>",
    #   pushing nothing, when the sender has no name yet (naming.name_of) or the text
    #   is missing or empty.  Otherwise queue the push "SHOUT <sender> <text>" for
    #   every other named client (naming.names) with server.queue_message(), and
    #   return "SHOUTED <n>", n being how many got it.
    #   Pitfalls: the sender does not hear their own shout; and a push over
    #   protocol.MAX_MSG_LENGTH bytes can't be framed: reply ERROR instead.
    return not_implemented("5.1", "SHOUT")
