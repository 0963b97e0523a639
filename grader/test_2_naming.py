"""Stage 2, naming: NAME and GET_NAMES, invalid names and commands, replies to the sender.

Who holds a name is judged by the set of names GET_NAMES lists (grader/chat.py);
how the reply is spelt out is judged by two checks only: 2.8 (sorted) and 2.9
(spacing). A refusal is judged by its first word being ERROR in 2.11 only;
elsewhere a near miss ('EROR') still counts as the refusal it is, and what the
refusal changed (nothing) is judged by GET_NAMES.
"""

from grader.chat import (HINT_NAME, HINT_NAMES, HINT_SPLIT_CHARACTER, expect_names,
                         expect_names_reply, format_problem, named, names_listed,
                         send_split_character, unnamed_clients_leave)
from grader.checks import check
from grader.framing import frame
from grader.wire import MESSAGE, show

HINT_VALID = ("A valid name is 1 to 16 characters (len() of the decoded text, not of the "
              "bytes), none of them whitespace (c.isspace()); the name is everything after "
              "'NAME ', so never split() or strip() it (docs/students.md § Stage 2).")
HINT_GOES_ON = ("After an ERROR the connection stays open: reply, then go on reading that "
                "client's next command (docs/students.md § Stage 2).")
HINT_FRAMING = ("TCP is a byte stream: keep a buffer per client and take out only complete "
                "messages (docs/students.md § Framing).")


@check(1, "NAME alice gets HELLO alice", points=2, needs=None)
def test_name_gets_hello(server):
    """A client sends 'NAME alice' and gets 'HELLO alice'."""
    alice = server.connect("alice")
    alice.send("NAME alice")
    alice.expect("HELLO alice", hint="echo is gone in stage 2: read the payload as a command; "
                                     "for 'NAME <name>' reply 'HELLO <name>' to the sender "
                                     "(docs/students.md § Stage 2).")


@check(2, "GET_NAMES lists the names held", points=2)
def test_get_names_lists_name(server):
    """alice takes her name, then 'GET_NAMES' gets 'NAMES alice'."""
    alice = named(server, "alice")
    expect_names(alice, ["alice"], hint="keep a table of the names held (a dict name → "
                                        "client) and answer GET_NAMES from it. " + HINT_NAMES)


@check(3, "A name another client holds gets ERROR; nothing changes", points=2)
def test_taken_name(server):
    """bob's 'NAME alice' gets ERROR; GET_NAMES shows alice and bob both kept their names."""
    alice = named(server, "alice")  # noqa: F841 (kept open: it holds the name)
    bob = named(server, "bob")
    bob.send("NAME alice", note="'NAME alice' (alice holds it)")
    bob.expect_error(hint="a name belongs to one client at a time: if another client holds "
                          "it, reply 'ERROR <reason>' (docs/students.md § Stage 2).")
    expect_names(bob, ["alice", "bob"],
                 hint="a refused NAME changes nothing: alice still holds 'alice' and bob still "
                      "holds 'bob'. Check that the name is free before you release the "
                      "client's old one (docs/students.md § Stage 2).")


@check(4, "Renaming frees the old name at once", points=2)
def test_rename_frees_old_name(server):
    """alice renames to ann: NAMES lists only ann, and bob can take 'alice' right away."""
    alice = named(server, "alice")
    alice.send("NAME ann")
    alice.expect("HELLO ann", hint="a named client may take a new name. " + HINT_NAME)
    bob = server.connect("bob")
    expect_names(bob, ["ann"], hint="after a rename only the new name is held: delete the old "
                                    "name from your table when the client takes the new one "
                                    "(docs/students.md § Stage 2).")
    bob.send("NAME alice")
    bob.expect("HELLO alice", hint="a rename frees the old name at once, so another client "
                                   "can take it (docs/students.md § Stage 2).")
    expect_names(bob, ["alice", "ann"])


@check(5, "Asking again for your own name gets HELLO again")
def test_own_name_again(server):
    """alice sends 'NAME alice' twice: 'HELLO alice' both times, and she is listed once."""
    alice = named(server, "alice")
    alice.send("NAME alice", note="'NAME alice' again (she already holds it)")
    alice.expect("HELLO alice", hint="a name that is already the sender's own is not taken "
                                     "by someone else: compare the holder with the sender "
                                     "and reply 'HELLO <name>' (docs/students.md § Stage 2).")
    expect_names(alice, ["alice"], hint="each name is held once: asking again for one's own "
                                        "name must not list it twice. " + HINT_NAMES)


@check(6, "No name, or a name with spaces or tabs, gets ERROR")
def test_whitespace_names(server):
    """'NAME', 'NAME ', 'NAME a b', 'NAME tab\\there', 'NAME  alice', 'NAME bob ' each get ERROR."""
    alice = named(server, "alice")
    for payload in ["NAME", "NAME ", "NAME a b", "NAME tab\there", "NAME  alice", "NAME bob "]:
        alice.send(payload)
        alice.expect_error(hint="this name is empty or holds whitespace, so it is invalid "
                                "and gets 'ERROR <reason>'. " + HINT_VALID)
    expect_names(alice, ["alice"], hint="an invalid NAME changes nothing: alice still holds "
                                        "'alice' (docs/students.md § Stage 2).")


@check(7, "A name has at most 16 characters (not bytes), Hebrew too")
def test_name_length(server):
    """16 letters, ASCII or Hebrew, are a valid name; 17 letters, ASCII or Hebrew, get ERROR."""
    ascii16, hebrew16 = "a" * 16, "א" * 16   # 'א' is 2 bytes in UTF-8: 32 bytes in all
    alice = named(server, ascii16, label="alice")
    bob = server.connect("bob")
    bob.send("NAME " + hebrew16, note="'NAME %s' (16 Hebrew letters, 32 bytes)" % hebrew16)
    bob.expect("HELLO " + hebrew16, hint="16 Hebrew letters are 16 characters (32 bytes in "
                                         "UTF-8): count the characters of the decoded text. "
                                         + HINT_VALID)
    for name, what in [("b" * 17, "17 letters"), ("א" * 17, "17 Hebrew letters")]:
        alice.send("NAME " + name, note="'NAME %s' (%s)" % (name, what))
        alice.expect_error(hint="a name of 17 characters is too long. " + HINT_VALID)
    expect_names(alice, [ascii16, hebrew16], hint="a refused NAME changes nothing. "
                                                  + HINT_NAMES)


@check(8, "GET_NAMES is sorted by plain string order", points=2)
def test_names_sorted(server):
    """bob, alice and Zed take names in that order; carol (no name) gets them in the order
    'Zed alice bob' (the spacing is 2.9's business)."""
    holders = [named(server, name) for name in ["bob", "alice", "Zed"]]  # noqa: F841 (kept open)
    carol = server.connect("carol")
    carol.send("GET_NAMES", note="'GET_NAMES' (carol has no name: she may ask)")
    wanted = ["Zed", "alice", "bob"]
    kind, payload = carol.read_event()
    listed = names_listed(payload) if kind == MESSAGE else None
    if listed == wanted:
        carol.conv.log(carol.heard(show(payload)))
        return
    if listed is not None and sorted(listed) == wanted:
        hint = ("the names are right but not sorted: sort them with plain sorted(names), where "
                "uppercase letters come before lowercase ones, so 'Zed' is first "
                "(docs/students.md § Stage 2).")
    else:
        hint = ("every held name is listed, sorted by plain string order, and clients without "
                "a name may ask too. " + HINT_NAMES)
    carol.conv.fail(carol.heard("'NAMES Zed alice bob'"), carol.describe_event(kind, payload),
                    hint)


@check(9, "GET_NAMES spacing: 'NAMES' alone, else one space before each name")
def test_names_format(server):
    """With no name held, 'GET_NAMES' gets exactly 'NAMES'; once alice and bob have names,
    exactly 'NAMES alice bob': one space before each name, none at the end.

    This is the stage's one check of how the reply is spelt out (order: 2.8).
    """
    alice = server.connect("alice")
    alice.send("GET_NAMES", note="'GET_NAMES' (nobody has a name)")
    expect_exact_names(alice, [], hint="each name comes after a single space, so with no names "
                                       "the reply is 'NAMES' with no space at all: "
                                       "' '.join(['NAMES'] + names), not 'NAMES ' + "
                                       "' '.join(names) (docs/students.md § Stage 2).")
    alice.send("NAME alice")
    alice.expect("HELLO alice", hint=HINT_NAME)
    bob = named(server, "bob")
    bob.send("GET_NAMES")
    expect_exact_names(bob, ["alice", "bob"], hint=HINT_NAMES)


def expect_exact_names(peer, names, hint):
    """The next message must be exactly 'NAMES' and the names, each after one space; when
    only the spelling is off, the hint says what is."""
    wanted = " ".join(["NAMES"] + names).encode("utf-8")
    kind, payload = peer.read_event()
    if kind == MESSAGE and payload == wanted:
        peer.conv.log(peer.heard(show(payload)))
        return
    if kind == MESSAGE and payload.rstrip() == wanted and not names:
        hint = ("nobody has a name, so the reply is 'NAMES' alone: there is an extra space at "
                "the end. ' '.join(['NAMES'] + names) puts a space before each name and "
                "nowhere else (docs/students.md § Stage 2).")
    elif kind == MESSAGE and sorted(names_listed(payload) or []) == sorted(names) and names:
        hint = (format_problem(payload) or "the names are right but not spelt out as "
                "'NAMES alice bob'") + " (docs/students.md § Stage 2)."
    peer.conv.fail(peer.heard(show(wanted)), peer.describe_event(kind, payload), hint)


@check(10, "Echo is gone: a payload that is no command gets ERROR")
def test_echo_is_gone(server):
    """'hello' gets ERROR, not 'hello'; the next command is answered as usual."""
    alice = server.connect("alice")
    alice.send("hello")
    alice.expect_error(hint="stage 2 does not echo any more: every payload is a command, and "
                            "one that is not NAME or GET_NAMES gets 'ERROR <reason>' "
                            "(docs/students.md § Stage 2).")
    alice.send("NAME alice")
    alice.expect("HELLO alice", hint="every command gets exactly one reply, nothing more: "
                                     "remove the stage 1 echo. " + HINT_NAME)


@check(11, "Unknown commands get ERROR; every refusal's word is ERROR", points=2)
def test_unknown_commands(server):
    """'DANCE', 'name alice', 'get_names' and '' (empty) each get ERROR; then commands work.
    Then each other refusal of stage 2 (a taken name, a missing, spaced or 17-letter name,
    'hello', invalid UTF-8), each from a client of its own, must begin with the word ERROR
    if it refuses (whether it refuses is judged by the check about that refusal).

    This is the stage's one check of the word ERROR itself.
    """
    alice = server.connect("alice")
    for payload in ["DANCE", "name alice", "get_names", ""]:
        alice.send(payload, note="'' (an empty payload)" if payload == "" else None)
        alice.expect_error(exact=True, hint="commands are exact and case-sensitive; anything else, an "
                                "empty payload too, gets 'ERROR <reason>'. Look commands up "
                                "with .get() or 'in', and never take split()[0] of an empty "
                                "text (docs/students.md § Stage 2).")
    expect_names(alice, [], hint="'name alice' is not NAME, so nobody holds a name. "
                                 + HINT_GOES_ON)
    alice.send("NAME alice")
    alice.expect("HELLO alice", hint=HINT_GOES_ON)
    for payload, note in REFUSED_IN_STAGE_2:
        server.connect("newcomer").refusal_says_error(payload, note=note)


# Every other refusal stage 2 introduces (check 11 judges their word, while alice holds
# 'alice'): (payload, how the transcript shows it).
REFUSED_IN_STAGE_2 = [
    ("NAME alice", "'NAME alice' (alice holds it)"),
    ("NAME", None),
    ("NAME a b", None),
    ("NAME " + "x" * 17, "'NAME xxxxxxxxxxxxxxxxx' (17 letters)"),
    ("hello", "'hello' (not a command)"),
    (b"NAME \xff\xfe", "'NAME \\xff\\xfe' (not valid UTF-8)"),
]


@check(12, "Invalid UTF-8 gets ERROR; the connection stays open")
def test_invalid_utf8(server):
    """b'NAME \\xff\\xfe' gets ERROR and names nobody; the same client then takes a name."""
    alice = server.connect("alice")
    alice.send(b"NAME \xff\xfe", note="'NAME \\xff\\xfe' (not valid UTF-8)")
    alice.expect_error(hint="decode with payload.decode('utf-8') inside try/except "
                            "UnicodeDecodeError, and reply 'ERROR <reason>' (no errors= "
                            "'replace' or 'ignore': those invent a name) (docs/students.md § Stage 2).")
    expect_names(alice, [], hint="bytes that are not UTF-8 are not a command: they name nobody, "
                                 "and the connection stays open (docs/students.md § Stage 2).")
    alice.send("NAME alice")
    alice.expect("HELLO alice", hint=HINT_GOES_ON)


@check(13, "Twenty clients at once: each reply goes to its sender", points=2)
def test_twenty_clients(server):
    """u1 … u20 each send 'NAME uN' before any reads; each gets its own HELLO; NAMES lists all."""
    clients = server.connect_many(20, prefix="u")
    for i, client in enumerate(clients, 1):
        client.send("NAME u%d" % i)
    for i, client in enumerate(clients, 1):
        client.expect("HELLO u%d" % i, hint="the reply goes to the client that sent the "
                                            "command: queue it for that client's socket, not "
                                            "for the last one accepted (docs/students.md § Stage 2).")
    expect_names(clients[0], ["u%d" % i for i in range(1, 21)],
                 hint="all twenty names are held. " + HINT_NAMES)


@check(14, "Three commands in one write get three replies, in order")
def test_three_commands_in_one_write(server):
    """'NAME alice', 'GET_NAMES', 'NAME bob' sent at once: HELLO alice, NAMES alice, HELLO bob."""
    alice = server.connect("alice")
    alice.send_raw(frame("NAME alice") + frame("GET_NAMES") + frame("NAME bob"),
                   note="'NAME alice', 'GET_NAMES', 'NAME bob' in one write")
    hint = ("one recv() returned three commands: handle every complete message in the buffer, "
            "in order, one reply each, sent first in, first out. " + HINT_FRAMING)
    alice.expect("HELLO alice", hint=hint)
    expect_names_reply(alice, ["alice"], hint=hint)
    alice.expect("HELLO bob", hint=hint)


@check(15, "Framing still works: a command in pieces, a bad header")
def test_framing_still_works(server):
    """'NAME alice' sent one byte at a time gets HELLO; a bad header gets ERROR and a close."""
    alice = server.connect("alice")
    alice.send_bytewise("NAME alice")
    alice.expect("HELLO alice", hint="the command arrived in 14 pieces. " + HINT_FRAMING)
    bad = server.connect("bad")
    bad.send_raw(b"abcdNAME bad", note="bad header 'abcd'")
    bad.expect_error(hint="a header that is not 4 digits gets 'ERROR <reason>', in stage 2 "
                          "too (docs/students.md § Framing).")
    bad.expect_closed(hint="after the ERROR for a bad header, close that connection "
                           "(docs/students.md § Framing).")
    expect_names(alice, ["alice"], hint="a framing error ends only that client's connection: "
                                        "the others carry on. " + HINT_NAMES)


@check(16, "Clients without a name leave (close, reset); the server goes on")
def test_unnamed_clients_leave(server):
    """ghost (no name) asks GET_NAMES and closes; rude (no name) asks and is reset; alice is
    still served (two round trips), and a newcomer can take a name."""
    unnamed_clients_leave(server)


@check(17, "A command whose character is split across two reads")
def test_character_split_across_reads(server):
    """'NAME zoë' is sent in two writes, 30 ms apart, cut between the two bytes of 'ë':
    the server gets 'HELLO zoë'."""
    alice = server.connect("alice")
    send_split_character(alice, "NAME zoë")
    alice.expect("HELLO zoë", hint=HINT_SPLIT_CHARACTER)
    expect_names(alice, ["zoë"], hint=HINT_SPLIT_CHARACTER)


@check(18, "A first NAME is checked too: spaces or 17 characters get ERROR")
def test_first_name_is_validated(server):
    """newcomer, who has no name yet, sends 'NAME a b' and 'NAME ' + 17 letters: ERROR each
    time, and nobody holds a name; then 'NAME newcomer' gets HELLO."""
    newcomer = server.connect("newcomer")
    for payload in ["NAME a b", "NAME " + "c" * 17]:
        newcomer.send(payload)
        newcomer.expect_error(hint="the rules for a valid name apply to a client's first "
                                   "name as much as to a rename: check the name before "
                                   "anything else. " + HINT_VALID)
    expect_names(newcomer, [], hint="a refused NAME gives no name. " + HINT_VALID)
    newcomer.send("NAME newcomer")
    newcomer.expect("HELLO newcomer", hint=HINT_GOES_ON)
