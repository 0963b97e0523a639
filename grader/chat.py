"""Chat steps the checks of stages 2 to 4 share: take a name, ask who is online,
send a message.

Each step is one exchange with the server under test, checked like any
other: when it goes wrong the check fails there, with the conversation.

A check that looks at who holds a name (GET_NAMES) compares the SET of names:
how the reply is spelt out (sorted, single spaces) is judged by stage 2's
checks about the format, so a spacing mistake costs those checks only.
"""

from __future__ import annotations

import re


from grader.framing import frame
from grader.wire import GARBAGE, MESSAGE, QUIET, is_refusal, show

HINT_NAME = ("'NAME <name>' gets 'HELLO <name>' when the name is free or already yours; "
             "naming keeps working in every stage from 2 on (docs/students.md § Stage 2).")
HINT_MSG = ("'MSG <name> <text>' pushes 'FROM <sender> <text>' to the recipient and replies "
            "'SENT <name>' to the sender (docs/students.md § Stage 3).")
HINT_NAMES = ("'GET_NAMES' gets 'NAMES' followed by every name now held, sorted, each after "
              "one space: 'NAMES alice bob' (docs/students.md § Stage 2).")
HINT_UNNAMED_LEAVES = ("A client that never took a name may leave too, by closing or by a "
                       "reset: clean it up like any other (unregister, close), and free its "
                       "name only if it has one: 'del names[client.name]' with no name raises "
                       "and stops the server (docs/students.md § Stage 2).")
HINT_SPLIT_CHARACTER = ("one recv() may end in the middle of a character: 'é' is two bytes "
                        "in UTF-8 and they may arrive in two reads. Keep the raw bytes in the "
                        "buffer and decode only a whole payload, never each chunk recv() "
                        "returns (docs/students.md § Framing, § Stage 2).")

HINT_OVERLONG = ("the push 'FROM <sender> <text>' is longer than the text the sender sent: "
                 "with a long name in front, a text that fits a MSG may make a push over "
                 "1024 bytes, more than one message may hold (protocol.frame() raises "
                 "ProtocolError on it). Measure the push in bytes, len(push.encode('utf-8')), "
                 "before queueing it: past protocol.MAX_MSG_LENGTH, reply 'ERROR <reason>' to "
                 "the sender, deliver nothing, and carry on (docs/students.md § Stage 3).")
HINT_PUSH_FITS = ("a push of exactly 1024 bytes fits a message and is delivered: only one "
                  "longer than protocol.MAX_MSG_LENGTH is refused, and its length is counted "
                  "in bytes of UTF-8, not in characters (docs/students.md § Stage 3).")
LONG_NAME = "maximilian_the_2"   # 16 characters, the longest name; its holder is labelled max

SPLIT_PAUSE = 0.03   # send_split_character: the longest wait for the first half to be read


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
    proves that nothing else reached the recipient before it. When it does not come,
    the failure also shows what the sender got back (often the reason).
    """
    sender.send("MSG %s %s" % (recipient_name, text))
    expected = ("FROM %s %s" % (sender_name, text)).encode("utf-8")
    kind, payload = recipient.read_event()
    if kind == MESSAGE and payload == expected:
        recipient.conv.log(recipient.heard(show(payload)))
    else:
        got = recipient.describe_event(kind, payload)
        sender_kind, reply = sender.read_event(QUIET, quiet=True)
        if sender_kind == MESSAGE:
            got += "; meanwhile %s got %s" % (sender.label, show(reply))
        else:
            got += "; %s got no reply either" % sender.label
        recipient.conv.fail(recipient.heard(show(expected)), got, hint)
    sender.expect("SENT " + recipient_name, hint="the sender of a delivered MSG gets the reply "
                                                 "'SENT <name>' (docs/students.md § Stage 3).")


def unnamed_clients_leave(server):
    """Stages 2-4: ghost (no name) asks GET_NAMES and closes; rude (no name) asks and is
    reset; alice is still served (two round trips), and a newcomer can take a name."""
    alice = named(server, "alice")
    ghost = server.connect("ghost")
    expect_names(ghost, ["alice"])
    ghost.close("closes its connection (it never took a name)")
    rude = server.connect("rude")
    expect_names(rude, ["alice"])
    rude.reset()
    for _ in range(2):   # both left before alice asks: two round trips prove the server lives
        expect_names(alice, ["alice"], hint=HINT_UNNAMED_LEAVES)
    newcomer = server.connect("newcomer")
    newcomer.send("NAME bob")
    newcomer.expect("HELLO bob", hint=HINT_UNNAMED_LEAVES)


def send_split_character(peer, payload):
    """Send one framed message in two writes, cut inside its first non-ASCII character,
    the second once the server has read the first, so that they are two reads."""
    data = frame(payload)
    cut = next(i for i, byte in enumerate(data) if byte >= 0x80) + 1
    peer.send_raw(data[:cut], note="%s, cut after the first byte of a character"
                  % show(data[:cut]))
    peer.wait_until_read(SPLIT_PAUSE)   # so that the two halves are two reads
    peer.send_raw(data[cut:], note="the rest, %s" % show(data[cut:]))


def split_character_message(server):
    """Stages 3-4: 'MSG bob héllo' in two writes, cut inside 'é', reaches bob whole."""
    alice = named(server, "alice")
    bob = named(server, "bob")
    send_split_character(alice, "MSG bob héllo")
    bob.expect("FROM alice héllo", hint=HINT_SPLIT_CHARACTER)
    alice.expect("SENT bob", hint=HINT_MSG)


def overlong_push(server):
    """Stages 3-4: max (a 16-character name) sends bo a text that makes the push
    'FROM maximilian_the_2 <text>' exactly 1024 bytes: delivered. Then texts one byte
    longer (ASCII, then 'é's, 1025 bytes in 524 characters): each gets ERROR, bo gets
    nothing, and the server carries on (bo's next message is the next short one)."""
    sender = named(server, LONG_NAME, label="max")
    recipient = named(server, "bo")
    room = 1024 - len("FROM %s " % LONG_NAME)   # the text that makes the push 1024 bytes
    exchange(sender, recipient, LONG_NAME, "bo", "x" * room, hint=HINT_PUSH_FITS)
    for text in ["x" * (room + 1), "é" * (room // 2) + "x"]:
        refuse_overlong(sender, recipient, text)
    exchange(sender, recipient, LONG_NAME, "bo", "still there?",
             hint="bo's next message must be this one: a refused push delivers nothing, and "
                  "the server carries on. " + HINT_OVERLONG)


def refuse_overlong(sender, recipient, text):
    """sender sends 'MSG bo <text>', whose push would be over 1024 bytes: ERROR comes back.
    When it does not, the failure also says what bo got meanwhile."""
    push = "FROM %s %s" % (LONG_NAME, text)
    size = len(push.encode("utf-8"))
    sender.send("MSG %s %s" % ("bo", text), note="%s (the push %s would be %d bytes in %d "
                "characters)" % (show("MSG bo " + text, 40), show(push, 30), size, len(push)))
    kind, payload = sender.read_event()
    if kind == MESSAGE and is_refusal(payload):
        sender.conv.log(sender.heard(show(payload)))
        return
    got = sender.describe_event(kind, payload)
    if kind == MESSAGE:
        other, pushed = recipient.read_event(QUIET, quiet=True)
        if other in (MESSAGE, GARBAGE):
            got += "; meanwhile %s got %s" % (recipient.label,
                                              recipient.describe_event(other, pushed))
    sender.conv.fail(sender.heard("'ERROR <reason>'") + ", and nothing for %s: the push "
                     "would be %d bytes, over the 1024 limit" % (recipient.label, size),
                     got, HINT_OVERLONG)


# --- GET_NAMES: who holds a name ------------------------------------------------------

def names_listed(payload: bytes) -> list[str] | None:
    """The names a 'NAMES …' reply lists, in its order, however they are spaced (None
    if the reply is not a NAMES reply at all). Names hold no whitespace, and the names
    the checks use hold no commas, so any run of spaces or commas separates two."""
    text = payload.decode("utf-8", "replace")
    words = [w for w in re.split(r"[\s,]+", text) if w]
    if not words or words[0] != "NAMES":
        return None
    return words[1:]


def format_problem(payload: bytes) -> str | None:
    """What is wrong with the spelling of a NAMES reply whose names are right, or None."""
    text = payload.decode("utf-8", "replace")
    names = names_listed(payload) or []
    if names != sorted(names):
        return "the names are right but not sorted: sort them with sorted(names), plain string order"
    if "," in text:
        return "the names are right but separated by commas: each name comes after one space"
    if text.endswith(" ") or text.endswith("\t"):
        return ("the names are right but there is an extra space at the end: each name comes "
                "after one space and nothing follows the last (' '.join(['NAMES'] + names))")
    if "  " in text or "\t" in text:
        return "the names are right but separated by more than one space"
    if text != " ".join(["NAMES"] + names):
        return "the names are right but the spacing is not 'NAMES' then one space before each name"
    return None


def expect_names(peer, names, hint=HINT_NAMES):
    """peer sends GET_NAMES; the reply must list exactly the names `names`, in any order
    and however spaced (the format has checks of its own)."""
    peer.send("GET_NAMES")
    return expect_names_reply(peer, names, hint)


def expect_names_reply(peer, names, hint=HINT_NAMES):
    """The next message must be a NAMES reply listing the names `names` (as a set)."""
    kind, payload = peer.read_event()
    if kind == MESSAGE and same_names(payload, names):
        peer.conv.log(peer.heard(show(payload)))
        return payload
    peer.conv.fail(peer.heard(show(" ".join(["NAMES"] + sorted(names)))) +
                   " (the names in any order)", peer.describe_event(kind, payload), hint)


def same_names(payload: bytes, names) -> bool:
    listed = names_listed(payload)
    return listed is not None and sorted(listed) == sorted(names)
