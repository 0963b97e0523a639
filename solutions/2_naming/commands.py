"""Commands (stage 2): every message is a command, and gets exactly one reply.

A message's payload is UTF-8 text: a command word, then, for most commands,
a space and the command's argument ("NAME alice").  chat_server.py says which
function runs each command; that function returns the reply.
"""

import protocol


def run(client, payload, commands):
    """Run the command the payload holds; return its reply.

    `commands` maps each command word to the function that runs it, called
    as function(client, argument): the argument is everything after the word
    and its space ("a b" for "NAME a b"), or None when the word came alone
    ("GET_NAMES").
    """
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return protocol.refusal("messages must be UTF-8 text")
    word, space, argument = text.partition(" ")
    command = commands.get(word)
    if command is None:   # an unknown word, or an empty payload
        return protocol.refusal("unknown command")
    return command(client, argument if space else None)
