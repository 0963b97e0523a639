"""Private messages (stage 3): MSG <name> <text>.

The recipient gets the push "FROM <sender> <text>", the sender the reply
"SENT <name>".  Now one client's words go to another, so a client that stops
reading must never stall the others: its messages wait in its queue (the event
loop sends them when it reads again), and past 1 MiB it is disconnected.
"""

import naming
import protocol
import server


def send_message(sender, argument):
    """MSG <name> <text>: push FROM to the recipient, reply SENT to the sender."""
    recipient_name, _, text = (argument or "").partition(" ")
    sender_name = naming.name_of.get(sender)
    if sender_name is None:
        return protocol.refusal("take a name (NAME <name>) before sending messages")
    if not text:
        return protocol.refusal("usage: MSG <name> <text>")
    if recipient_name == sender_name:
        return protocol.refusal("you cannot send a message to yourself")
    recipient = naming.names.get(recipient_name)
    if recipient is None:
        return protocol.refusal("nobody has that name")
    push = "%s %s %s" % (protocol.PUSH_FROM, sender_name, text)
    if len(push.encode("utf-8")) > protocol.MAX_MSG_LENGTH:
        return protocol.refusal("the text is too long to deliver with your name in front")
    server.queue_message(recipient, push)
    return "%s %s" % (protocol.REPLY_SENT, recipient_name)


def limit_backlog(client):
    """A message was queued for the client: past 1 MiB waiting, it is cut off."""
    if len(client.outgoing) > protocol.MAX_BACKLOG:
        # It is not reading. Keeping its messages forever would eat our memory.
        server.remove_client(client, "did not read its messages (over 1 MiB waiting)")
