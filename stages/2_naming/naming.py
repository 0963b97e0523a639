"""Names (stage 2): NAME takes one, GET_NAMES lists them.

A name belongs to one client at a time: taking a name that another client
holds is refused, and a name is free again as soon as its client renames or
leaves (server.py calls release_name() for a client that leaves).  Each
function here runs one command and returns its reply (see commands.py).

Your part: TODO 2.2 to 2.5 below (docs/students.md § Stage 2).
"""

import protocol
from todo import not_implemented   # the TODOs' stand-ins (todo.py, next to protocol.py)

names = {}     # name -> the client holding it
name_of = {}   # client -> its name: the same pairs, looked up the other way


def is_valid_name(name):
    """1 to 16 characters (not bytes), none of them whitespace."""
    # TODO 2.2: Return True only for a valid name (docs/students.md § Stage 2): 1 to
    #   protocol.MAX_NAME_LENGTH characters, none of them whitespace.  `name` is a
    #   str, so len() counts characters, as the rule does ("zoë" is 3 characters,
    #   4 bytes).  Pitfall: looking only for " " lets tabs and other Unicode spaces
    #   through; str.isspace() knows them all.
    # Until then, every name is accepted:
    not_implemented("2.2", "the name rules: every name is accepted")
    return True


def take_name(client, name):
    """NAME <name>: the client gets the name if it is valid and nobody else has it."""
    # TODO 2.3: Give the client the name if it may have it, and return the reply
    #   (docs/students.md § Stage 2).  A missing (None) or invalid name
    #   (is_valid_name()), or one that another client holds, gets "ERROR <reason>"
    #   and changes nothing; asking again for your own name is fine.  `names` maps
    #   every name held to its client, so one look-up tells who holds a name.  On
    #   success, record the pair in `names` and in `name_of`, and reply
    #   "HELLO <name>" (protocol.REPLY_HELLO).
    #   Pitfall: a rename must free the old name at once (release_name()), or it
    #   stays taken for good.
    return not_implemented("2.3", "NAME")


def release_name(client):
    """Free the client's name, if it has one, so that others can take it."""
    if client in name_of:
        # TODO 2.4: Free the client's name (docs/students.md § Stage 2): take it out of
        #   `names` and `name_of`.  take_name() calls this for a rename; server.py
        #   calls it when the client leaves (chat_server.py gives it to server.main()).
        #   Pitfall: a name left in `names` outlives its client, and then nobody
        #   can ever take it.
        not_implemented("2.4", "names are never freed")


def list_names(client, argument):
    """GET_NAMES: "NAMES" and every name now held, sorted."""
    if argument is not None:
        return protocol.refusal("GET_NAMES takes nothing after it")
    # TODO 2.5: Return the reply to GET_NAMES (docs/students.md § Stage 2): "NAMES",
    #   then every name now held, sorted by plain string order (sorted(): capitals
    #   before small letters), each after a single space; "NAMES" alone when nobody
    #   has a name ("NAMES " + ... leaves a space there; str.join() does not).
    #   Pitfall: a space at the end, or two in a row.
    return not_implemented("2.5", "GET_NAMES")
