"""Names (stage 2): NAME takes one, GET_NAMES lists them.

A name belongs to one client at a time: taking a name that another client
holds is refused, and a name is free again as soon as its client renames or
leaves (server.py calls release_name() for a client that leaves).  Each
function here runs one command and returns its reply (see commands.py).
"""

import protocol

names = {}     # name -> the client holding it
name_of = {}   # client -> its name: the same pairs, looked up the other way


def is_valid_name(name):
    """1 to 16 characters (not bytes), none of them whitespace."""
    return (1 <= len(name) <= protocol.MAX_NAME_LENGTH
            and not any(character.isspace() for character in name))


def take_name(client, name):
    """NAME <name>: the client gets the name if it is valid and nobody else has it."""
    if name is None or not is_valid_name(name):
        return protocol.refusal("a name is 1 to %d characters, without spaces"
                                % protocol.MAX_NAME_LENGTH)
    holder = names.get(name)
    if holder is not None and holder is not client:
        return protocol.refusal("the name %s is taken" % name)
    release_name(client)   # renaming frees the old name at once
    names[name] = client
    name_of[client] = name
    return "%s %s" % (protocol.REPLY_HELLO, name)


def release_name(client):
    """Free the client's name, if it has one, so that others can take it."""
    if client in name_of:
        del names[name_of.pop(client)]


def list_names(client, argument):
    """GET_NAMES: "NAMES" and every name now held, sorted."""
    if argument is not None:
        return protocol.refusal("GET_NAMES takes nothing after it")
    return " ".join([protocol.REPLY_NAMES] + sorted(names))
