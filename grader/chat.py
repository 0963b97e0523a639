"""Chat steps the checks of stages 2 to 4 share: take a name, send a message.

Each step is one exchange with the server under test, checked like any
other: when it goes wrong the check fails there, with the conversation.
"""

HINT_NAME = ("'NAME <name>' gets 'HELLO <name>' when the name is free or already yours; "
             "naming keeps working in every stage from 2 on (README § Stage 2).")
HINT_MSG = ("'MSG <name> <text>' pushes 'FROM <sender> <text>' to the recipient and replies "
            "'SENT <name>' to the sender (README § Stage 3).")


def named(server, name, label=None):
    """A new client (labelled `name` unless told) that has taken `name`: NAME → HELLO."""
    peer = server.connect(label or name)
    peer.send("NAME " + name)
    peer.expect("HELLO " + name, hint=HINT_NAME)
    return peer


def exchange(sender, recipient, sender_name, recipient_name, text, hint=HINT_MSG):
    """sender sends 'MSG recipient text'; the recipient gets the FROM, the sender the SENT.

    The two arrive on different sockets, so their order is not fixed: each socket is
    read on its own. The recipient's FROM must be its next message, so this also
    proves that nothing else reached the recipient before it.
    """
    sender.send("MSG %s %s" % (recipient_name, text))
    recipient.expect("FROM %s %s" % (sender_name, text), hint=hint)
    sender.expect("SENT " + recipient_name, hint="the sender of a delivered MSG gets the reply "
                                                 "'SENT <name>' (README § Stage 3).")
