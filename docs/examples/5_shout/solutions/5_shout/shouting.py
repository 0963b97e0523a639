"""Shouting (stage 5): SHOUT <text> reaches every other named client.

Each other client with a name gets the push "SHOUT <sender> <text>"; the
sender gets the reply "SHOUTED <n>", n being how many got it (0 when nobody
else has a name).  Only a named client may shout, and the text must not be
empty.  A shout is a push like MSG's: one that would be over 1024 bytes is
refused, and a listener who never reads is cut off by the 1 MiB limit.
"""

import naming
import protocol
import server

CMD_SHOUT = "SHOUT"
REPLY_SHOUTED = "SHOUTED"


def shout(sender, text):
    """SHOUT <text>: push SHOUT to every other named client, reply SHOUTED <n>."""
    sender_name = naming.name_of.get(sender)
    if sender_name is None:
        return protocol.refusal("take a name (NAME <name>) before shouting")
    if not text:
        return protocol.refusal("usage: SHOUT <text>")
    push = "%s %s %s" % (CMD_SHOUT, sender_name, text)
    if len(push.encode("utf-8")) > protocol.MAX_MSG_LENGTH:
        return protocol.refusal("the text is too long to shout with your name in front")
    listeners = [client for client in naming.names.values() if client is not sender]
    for listener in listeners:
        server.queue_message(listener, push)
    return "%s %d" % (REPLY_SHOUTED, len(listeners))
