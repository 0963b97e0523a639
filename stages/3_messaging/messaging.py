"""Private messages (stage 3): MSG <name> <text>.

The recipient gets the push "FROM <sender> <text>", the sender the reply
"SENT <name>".  Now one client's words go to another, so a client that stops
reading must never stall the others: its messages wait in its queue (the event
loop sends them when it reads again), and past 1 MiB it is disconnected.

Your part: TODO 3.1 and 3.2 below (docs/students.md § Stage 3).  Until TODO 3.1
is done, MSG gets "ERROR not implemented yet: MSG (TODO 3.1)", and the server
says so once on standard error.
"""

import naming
import protocol
import server
from todo import not_implemented   # the TODOs' stand-ins (todo.py, next to protocol.py)


def send_message(sender, argument):
    """MSG <name> <text>: push FROM to the recipient, reply SENT to the sender."""
    # TODO 3.1: Deliver a private message (docs/students.md § Stage 3).  `argument` is all that
    #   came after "MSG ": the recipient's name, one space, then the text (None for
    #   "MSG" alone).  Refuse with "ERROR <reason>", delivering nothing, when the
    #   sender has no name yet (naming.name_of), the text is missing or empty, the
    #   recipient is the sender, or nobody holds that name (naming.names).
    #   Otherwise queue the push "FROM <sender> <text>" (protocol.PUSH_FROM) for the
    #   recipient (server.queue_message()), and return "SENT <recipient>"
    #   (protocol.REPLY_SENT).
    #   Pitfalls: the text is kept exactly, spaces inside and at the end too, so cut
    #   at the first space only (str.partition(), not str.split()).  And the push is
    #   longer than the text: past protocol.MAX_MSG_LENGTH bytes, protocol.frame()
    #   would refuse it, so reply ERROR instead.
    return not_implemented("3.1", "MSG")


def limit_backlog(client):
    """A message was queued for the client: past 1 MiB waiting, it is cut off."""
    # TODO 3.2: Limit what waits for one client (docs/students.md § Stage 3).  Other clients'
    #   messages land in its queue too, so a client that never reads would make the
    #   queue, and our memory, grow without end.  The event loop calls this each time
    #   it queues a message for a client (chat_server.py gives it to server.main()).
    #   Once client.outgoing holds more than protocol.MAX_BACKLOG bytes, disconnect
    #   it: server.remove_client() closes its socket and frees its name.
    #   Pitfall: throwing the queued bytes away and keeping the client is worse:
    #   it would miss messages without knowing, and a message cut in half would
    #   break its framing.
