"""Stage 3, messaging: MSG between named clients, exact text, errors, order, slow readers.

The word ERROR itself is judged by 3.5 only; elsewhere a refusal with a near-miss
word ('EROR') counts as the refusal it is (grader/wire.py, Peer.expect_error).
"""

import socket

from grader.chat import (HINT_MSG, HINT_NAME, exchange, expect_names, named,
                         overlong_push, split_character_message,
                         unnamed_clients_leave)
from grader.checks import ANSWERING, check
from grader.framing import frame
from grader.traffic import FLOOD_TEXT, Flood
from grader.wire import MESSAGE, WAIT, Peer, is_refusal, show


HINT_TEXT = ("the text is everything after the second space, kept exactly: split with "
             "text.split(' ', 2) or partition(' '), never with split() (docs/students.md § Stage 3).")
HINT_ONLY_RECIPIENT = ("a MSG goes to its recipient only: look the recipient up by name and "
                       "queue the push for that one client, not for every client "
                       "(docs/students.md § Stage 3).")
HINT_GOES_ON = ("after an ERROR the connection stays open and the server goes on as before "
                "(docs/students.md § Stage 3).")
HINT_SLOW = ("Never send with a blocking sendall() to a client that may not be reading: on a "
             "non-blocking socket send() takes what fits; keep the rest queued and send it "
             "when select reports the socket writable (docs/students.md § Stage 3).")
HINT_BACKLOG = ("Count the bytes waiting in each client's queue: once they pass "
                "protocol.MAX_BACKLOG (1 MiB), disconnect that client (unregister, close) and "
                "free its name, so one client that never reads can't make the server's memory "
                "grow without bound (docs/students.md § Stage 3).")
HINT_FRAMING = ("TCP is a byte stream: keep a buffer per client and take out only complete "
                "messages (docs/students.md § Framing).")

FLOOD_COUNT = 8200      # check 10: messages alice sends to bob, who never reads (each
                        # with FLOOD_TEXT bytes of text, traffic.py): about 8.3 MB in all
FLOOD_PACE = 0.02       # check 10: carol and dave talk at most this often during the flood
WINDOW = 128 * 1024     # checks 13, 14: alice writes at most this far ahead of her replies
LIMIT_COUNT = 16000     # checks 13, 14: messages (~16 MB) after which a server that has
                        # disconnected nobody is taken to have no backlog limit
LAG_COUNT = 774         # check 13: messages bob is behind on: 0.75 MiB, under the 1 MiB limit


@check(1, "MSG delivers FROM to the recipient and SENT to the sender", points=2, needs=None)
def test_basic_message(server):
    """alice and bob take names; alice sends 'MSG bob hi'.

    bob gets 'FROM alice hi' and alice gets 'SENT bob'.
    """
    alice = named(server, "alice")
    bob = named(server, "bob")
    alice.send("MSG bob hi")
    bob.expect("FROM alice hi", hint="the recipient gets the push 'FROM <sender> <text>': "
                                     "find the client that holds the name, and queue the "
                                     "message for its socket, not the sender's. " + HINT_MSG)
    alice.expect("SENT bob", hint="every command gets exactly one reply: after delivering, "
                                  "reply 'SENT <name>' to the sender. " + HINT_MSG)


@check(2, "The text arrives exactly as sent", points=2)
def test_text_is_exact(server):
    """Inner, leading and trailing spaces, non-ASCII text, and a push of exactly 1024 bytes."""
    alice = named(server, "alice")
    bob = named(server, "bob")
    # 'MSG bob  two  spaces  ': the text starts right after the second space, so it
    # begins with a space; 1013 bytes of text make 'FROM alice <text>' exactly 1024.
    for text in ["hi  there", " two  spaces  ", "trailing ", "héllo wörld ש", "y" * 1013]:
        exchange(alice, bob, "alice", "bob", text, hint=HINT_TEXT)


@check(3, "Only the recipient gets the message", points=2)
def test_only_recipient(server):
    """alice messages bob; carol, also named, gets nothing of it."""
    alice = named(server, "alice")
    bob = named(server, "bob")
    carol = named(server, "carol")
    exchange(alice, bob, "alice", "bob", "for bob only", hint=HINT_ONLY_RECIPIENT)
    # No fixed wait for carol's silence: alice now writes to carol herself. Messages from
    # one sender to one recipient keep their order (docs/students.md § Stage 3), so had the server pushed
    # 'for bob only' to carol, it would reach her before this one.
    exchange(alice, carol, "alice", "carol", "this one is for carol", hint=HINT_ONLY_RECIPIENT)


@check(4, "MSG from a client without a name gets ERROR")
def test_unnamed_sender(server):
    """carol, with no name yet, sends 'MSG bob hi': ERROR, bob gets nothing; named, she may send."""
    bob = named(server, "bob")
    carol = server.connect("carol")
    carol.send("MSG bob hi", note="'MSG bob hi' (carol has no name yet)")
    carol.expect_error(hint="only a named client may send: with no name there is no "
                            "'FROM <sender>' to write. Reply ERROR and deliver nothing "
                            "(docs/students.md § Stage 3).")
    carol.send("NAME carol")
    carol.expect("HELLO carol", hint=HINT_GOES_ON)
    exchange(carol, bob, "carol", "bob", "now I have a name",
             hint="bob's next message must be this one: the MSG sent without a name must not "
                  "have reached him. " + HINT_MSG)


@check(5, "MSG to nobody gets ERROR; every refusal's word is ERROR")
def test_unknown_recipient(server):
    """'MSG zoe hi' when nobody is zoe: ERROR to the sender; the server goes on. Then each
    other refusal of stage 3 (no name yet, to oneself, no text), each from a client of its
    own, must begin with the word ERROR if it refuses (whether it refuses is judged by
    the check about that refusal).

    This is the stage's one check of the word ERROR itself.
    """
    alice = named(server, "alice")
    bob = named(server, "bob")
    alice.send("MSG zoe hi")
    alice.expect_error(exact=True, hint="look the name up with names.get(name) (or 'in'): a "
                       "missing name must get 'ERROR <reason>', not crash the server "
                       "(docs/students.md § Stage 3).")
    exchange(alice, bob, "alice", "bob", "still there?",
             hint="after an ERROR the server serves on: " + HINT_MSG)
    server.connect("nameless").refusal_says_error("MSG bob hi", note="'MSG bob hi' (no name yet)")
    named(server, "ann").refusal_says_error("MSG ann hi", note="'MSG ann hi' (to herself)")
    for sender, payload in [("cat", "MSG bob"), ("dan", "MSG bob ")]:
        named(server, sender).refusal_says_error(payload)


@check(6, "MSG to oneself gets ERROR")
def test_message_to_self(server):
    """alice sends 'MSG alice hi': ERROR, and no FROM to herself."""
    alice = named(server, "alice")
    bob = named(server, "bob")
    alice.send("MSG alice hi")
    alice.expect_error(hint="a client may not send a message to itself: compare the recipient "
                            "with the sender's own name first, and reply ERROR without "
                            "delivering (docs/students.md § Stage 3).")
    exchange(alice, bob, "alice", "bob", "to someone else", hint=HINT_GOES_ON + " " + HINT_MSG)


@check(7, "MSG with no text gets ERROR")
def test_message_without_text(server):
    """'MSG bob' and 'MSG bob ' (empty text) each get ERROR; bob gets nothing of them."""
    alice = named(server, "alice")
    bob = named(server, "bob")
    for payload in ["MSG bob", "MSG bob "]:
        alice.send(payload)
        alice.expect_error(hint="the text must not be empty: 'MSG bob' and 'MSG bob ' get "
                                "'ERROR <reason>' and nothing is delivered (docs/students.md § Stage 3).")
    exchange(alice, bob, "alice", "bob", "with text",
             hint="bob's next message must be this one: a MSG without text delivers nothing. "
                  + HINT_MSG)


@check(8, "Messages follow renames")
def test_messages_follow_renames(server):
    """alice renames to ann: 'MSG alice' gets ERROR, 'MSG ann' reaches her, her FROM says ann."""
    alice = named(server, "alice")
    bob = named(server, "bob")
    alice.send("NAME ann")
    alice.expect("HELLO ann", hint="a named client may rename (docs/students.md § Stage 2).")
    bob.send("MSG alice hi")
    bob.expect_error(hint="after a rename the old name is free at once: 'alice' is not a "
                          "current name, so a MSG to it gets ERROR (docs/students.md § Stage 3).")
    exchange(bob, alice, "bob", "ann", "hi ann",
             hint="look the recipient up in the current names: after a rename the new name "
                  "reaches the client (docs/students.md § Stage 3).")
    exchange(alice, bob, "ann", "bob", "hi from ann",
             hint="write the sender's current name in 'FROM <sender>', not the name it had "
                  "when it connected (docs/students.md § Stage 3).")


@check(9, "300 messages in one write arrive in order", points=2)
def test_burst_in_order(server):
    """alice sends 'MSG bob m0' … 'MSG bob m299' in one write: bob gets them all, in order."""
    alice = named(server, "alice")
    bob = named(server, "bob")
    count = 300
    burst = b"".join(frame("MSG bob m%d" % i) for i in range(count))
    alice.send_raw(burst, note="'MSG bob m0' … 'MSG bob m%d', all in one write" % (count - 1))
    for i in range(count):
        bob.expect("FROM alice m%d" % i,
                   hint="messages from one sender to one recipient arrive in the order sent: "
                        "handle every complete message in the buffer, in order, and send each "
                        "client's queue first in, first out. " + HINT_FRAMING)
    for i in range(count):
        alice.expect("SENT bob", hint="every MSG gets its own 'SENT <name>' reply, even when "
                                      "many arrive in one recv(). " + HINT_FRAMING)


def why_it_stopped(flood: Flood) -> tuple[str, str]:
    """(what alice saw, the usual cause) when the flood's replies stopped short."""
    if flood.ending == "garbage":
        return ("bytes that are not a valid message header after %d replies" % flood.replies,
                "the replies to alice lost their framing under the flood: when send() "
                "takes only part of the bytes, keep the rest and send it first the next "
                "time the socket is writable, before anything queued after it. "
                + HINT_FRAMING)
    if flood.ending == "closed" and flood.last is not None and is_refusal(flood.last):
        return ("the server closed alice's connection after %d replies, the last %s"
                % (flood.replies, show(flood.last)),
                "the server found a bad header in alice's stream, but she sent only whole, "
                "well-framed messages: under a flood one recv() returns messages cut "
                "anywhere, so a recv() is not one message. Keep each client's bytes in its "
                "buffer and take out only complete messages. " + HINT_FRAMING)
    if flood.ending == "closed":
        return ("the server closed alice's connection after %d replies" % flood.replies,
                "alice reads her replies, so keep reading her messages and answering each "
                "one, even while another client reads nothing. " + HINT_SLOW)
    return ("only %d replies within %.0f s" % (flood.replies, flood.limit),
            "alice reads her replies, so keep reading her messages and answering each one, "
            "even while another client reads nothing. " + HINT_SLOW)


def stall_hint(flood: Flood):
    """Check 10's hint when carol and dave stop getting through: a server stuck on bob
    (the usual cause), unless the flood shows the server lost alice's framing instead."""
    def hint():
        if flood.ending in ("garbage", "closed"):
            return why_it_stopped(flood)[1]
        return "dave must get carol's message while bob is not reading. " + HINT_SLOW
    return hint


@check(10, "A client that never reads does not stall the others", points=2,
       fresh_server=True)
def test_slow_reader(server, conversation):
    """bob never reads; alice sends him about 8 MB; meanwhile carol and dave still talk.

    Design. alice's 8200 messages of 1000 bytes are far more than the system's socket
    buffers between the server and bob can hold (about 4 MB on Linux), so a server
    that writes with a blocking sendall() gets stuck on bob part-way, for good. The
    flood is written by a background thread (class Flood) on a non-blocking socket,
    which also reads alice's replies, so neither the grader nor the server ever waits
    on alice. While the flood runs, the main thread makes carol send to dave every
    FLOOD_PACE seconds, each exchange bounded by the normal WAIT; a stuck server fails
    the first exchange after it got stuck (so within WAIT), and the flood cannot end
    while the server is stuck (it ends only when every MSG has had its reply). After
    the flood, one more exchange. The server disconnects bob once his backlog passes
    1 MiB (check 14 judges that), so after the first reply each reply may be 'SENT bob'
    or an ERROR (bob gone); alice must get one reply per message, and her connection
    must stay open. On a correct server this takes about 0.2 s; it is bounded by
    FLOOD_LIMIT (traffic.py).
    """
    alice = named(server, "alice")
    bob = named(server, "bob")  # noqa: F841 (stays connected, and never reads)
    carol = named(server, "carol")
    dave = named(server, "dave")
    flood = Flood(alice, "bob", FLOOD_COUNT)
    conversation.log("(bob reads nothing from now on)")
    conversation.log("alice    → server  %d × 'MSG bob 00000xxx…' (%d bytes of text each, "
                     "%.1f MB in all), while reading her replies"
                     % (FLOOD_COUNT, FLOOD_TEXT, len(flood.data) / 1e6))
    flood.start()
    try:
        round_ = 0
        while not flood.done.is_set():
            exchange(carol, dave, "carol", "dave", "ping %d" % round_, hint=stall_hint(flood))
            round_ += 1
            flood.done.wait(FLOOD_PACE)   # pace the exchanges; returns early when the flood ends
        exchange(carol, dave, "carol", "dave", "after the flood", hint=stall_hint(flood))
    finally:
        flood.stop()
    conversation.log(flood.summary())
    if flood.first is not None and flood.first != b"SENT bob":
        conversation.fail("alice ← server  'SENT bob' for her first message (bob is connected "
                          "and nothing waits for him yet)",
                          "alice ← server  %s" % show(flood.first), HINT_MSG)
    if flood.unexpected is not None:
        conversation.fail("alice ← server  'SENT bob', or ERROR once bob is disconnected",
                          "alice ← server  %s" % show(flood.unexpected), HINT_SLOW)
    if flood.replies < FLOOD_COUNT:
        got, hint = why_it_stopped(flood)
        conversation.fail("alice ← server  one reply to each of her %d messages" % FLOOD_COUNT,
                          got, hint)


@check(11, "Naming still works: a taken name, GET_NAMES", needs=ANSWERING, kept=True)
def test_naming_still_works(server):
    """bob, then alice, take names; carol's 'NAME alice' gets ERROR; GET_NAMES lists both."""
    holders = [named(server, "bob"), named(server, "alice")]  # noqa: F841 (open: they hold names)
    carol = server.connect("carol")
    carol.send("NAME alice")
    carol.expect_error(hint="a name held by another client is refused with ERROR, in stage 3 "
                            "too (docs/students.md § Stage 2).")
    expect_names(carol, ["alice", "bob"], hint="GET_NAMES lists every held name, in stage 3 "
                                               "too (docs/students.md § Stage 2).")


@check(12, "Framing still works: a MSG in pieces, a bad header")
def test_framing_still_works(server):
    """A MSG sent one byte at a time is delivered; a bad header gets ERROR and a close."""
    alice = named(server, "alice")
    bob = named(server, "bob")
    alice.send_bytewise("MSG bob byte by byte")
    bob.expect("FROM alice byte by byte", hint="the MSG arrived in 24 pieces. " + HINT_FRAMING)
    alice.expect("SENT bob", hint=HINT_MSG)
    bad = server.connect("bad")
    bad.send_raw(b"abcdMSG bob hi", note="bad header 'abcd'")
    bad.expect_error(hint="a header that is not 4 digits gets 'ERROR <reason>' "
                          "(docs/students.md § Framing).")
    bad.expect_closed(hint="after the ERROR for a bad header, close that connection "
                           "(docs/students.md § Framing).")
    exchange(alice, bob, "alice", "bob", "still here",
             hint="a framing error ends only that client's connection, never the server.")


def flood_until_cut_off(conversation, alice, recipient: str) -> Flood:
    """alice sends `recipient` (who reads nothing) up to LIMIT_COUNT messages, at most
    WINDOW bytes ahead of her replies, until one is refused: the server has disconnected
    the recipient and freed the name. The flood must end well: every reply 'SENT' until
    the refusals start, and alice's connection open."""
    flood = Flood(alice, recipient, LIMIT_COUNT, window=WINDOW, stop_on_refusal=True)
    conversation.log("alice    → server  'MSG %s 00000xxx…', 'MSG %s 00001xxx…' … (%d bytes of "
                     "text each, up to %.0f MB), until one is refused, reading her replies"
                     % (recipient, recipient, FLOOD_TEXT, len(flood.data) / 1e6))
    flood.start()
    flood.wait()
    conversation.log(flood.summary())
    if flood.unexpected is not None:
        conversation.fail("alice ← server  'SENT %s', or ERROR once %s is disconnected"
                          % (recipient, recipient),
                          "alice ← server  %s" % show(flood.unexpected), HINT_MSG)
    if flood.ending:
        got, hint = why_it_stopped(flood)
        conversation.fail("alice ← server  a reply to each message", got, hint)
    return flood


@check(13, "A reader that lags behind gets every message, in order", points=2,
       needs=test_slow_reader, fresh_server=True)
def test_lagging_reader(server, conversation):
    """bob, on a slow link, stops reading while alice sends him 0.75 MiB; then he reads
    again: every message arrives, whole and in order.

    Design. The order breaks only where the socket to bob is full, and then only in a
    server that handles a partial send() wrongly (the rest of a message sent after what
    was queued behind it; a queue changed while it is looped over). bob's link is slow
    (small TCP segments, a small receive buffer): then the system's buffers hold only
    about 0.1 MiB for him, so of the 0.75 MiB the server must queue the rest itself and
    send it piece by piece as bob reads again. 0.75 MiB is under the 1 MiB limit, so a
    correct server never cuts bob off, however much the system holds.
    """
    alice = named(server, "alice")
    bob = slow_link(server, "bob")
    bob.send("NAME bob")
    bob.expect("HELLO bob", hint=HINT_NAME)
    conversation.log("(bob reads nothing until alice has had all her replies)")
    flood = Flood(alice, "bob", LAG_COUNT, window=WINDOW)
    conversation.log("alice    → server  %d × 'MSG bob 00000xxx…' (%.2f MB for bob), reading "
                     "her replies" % (LAG_COUNT, flood.megabytes(LAG_COUNT)))
    flood.start()
    flood.wait()
    conversation.log(flood.summary())
    if flood.refusals or flood.unexpected is not None:
        conversation.fail(
            "alice ← server  'SENT bob' for each of her %d messages" % LAG_COUNT,
            "alice ← server  %s after %d × 'SENT bob'" % (show(flood.last if flood.refusals
                                                             else flood.unexpected),
                                                        flood.sent_replies),
            "less than 1 MiB was ever sent to bob, so he must not be cut off: count only the "
            "bytes still waiting in his queue, those send() has not taken yet. "
            + HINT_BACKLOG)
    if flood.replies < LAG_COUNT:
        got, hint = why_it_stopped(flood)
        conversation.fail("alice ← server  'SENT bob' for each of her %d messages" % LAG_COUNT,
                          got, hint)
    read_in_order(bob, LAG_COUNT)
    exchange(alice, bob, "alice", "bob", "the end",
             hint="after the messages bob was behind on, the next one comes, and nothing "
                  "else. " + HINT_MSG)


def slow_link(server, label):
    """A client whose link takes little at a time: small TCP segments (536 bytes) and a
    small receive buffer. The system then buffers only about 0.1 MiB for it (rather
    than several MB), so what it does not read soon waits in the server's own queue.
    Where the system refuses these options, the client is an ordinary one."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    for level, option, value in ((socket.IPPROTO_TCP, getattr(socket, "TCP_MAXSEG", None), 536),
                                 (socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)):
        if option is not None:
            try:
                sock.setsockopt(level, option, value)
            except OSError:
                pass
    sock.settimeout(server.conv.patient(WAIT))
    try:
        sock.connect((server.host, server.port))
        problem = None
    except OSError as error:
        problem = error
    if problem is not None:
        server.conv.fail("%s connects to the server" % label,
                         "the connection failed: %s" % problem,
                         "the server must keep accepting new clients at any time.")
    server.conv.log("%-8s connects (on a slow link: small segments, a small receive buffer)"
                    % label)
    return Peer(sock, label, server.conv, server.program)


def read_in_order(bob, count: int) -> None:
    """bob reads again: messages 0 … count-1, each whole, in order."""
    bob.conv.log("(bob reads again)")
    for i in range(count):
        kind, payload = bob.read_event()
        expected = Flood.push(i)
        if kind == MESSAGE and payload == expected:
            continue
        bob.conv.log("bob      ← server  messages 0 … %d, in order" % (i - 1) if i else
                     "bob      ← server  nothing yet")
        got = bob.describe_event(kind, payload)
        if kind == MESSAGE and payload.startswith(b"FROM alice ") and payload[11:16].isdigit():
            got = "message %d%s (%s)" % (int(payload[11:16]), "" if payload == Flood.push(
                int(payload[11:16])) else ", cut or mixed with another", show(payload, 40))
        bob.conv.fail("bob ← server  message %d of %d: %s" % (i, count, show(expected, 40)), got,
                      "the order broke where bob's socket was full. When send() takes only "
                      "part of the bytes, keep the rest at the FRONT of the queue and send it "
                      "first the next time the socket is writable; and never remove items "
                      "from a list while looping over it (that skips the next one). Messages "
                      "from one sender to one recipient arrive in the order sent "
                      "(docs/students.md § Stage 3).")
    bob.conv.log("bob      ← server  all %d messages, whole and in order" % count)


@check(14, "Past 1 MiB waiting, a client that never reads is cut off", points=2,
       needs=test_slow_reader, fresh_server=True)
def test_backlog_limit(server, conversation):
    """bob never reads while alice sends to him: once more than 1 MiB waits for him, the
    server disconnects him and frees his name (alice's next MSG bob gets ERROR; GET_NAMES,
    MSG and NAME agree), and carol and dave carry on."""
    alice = named(server, "alice")
    bob = slow_link(server, "bob")   # the cut-off comes sooner: little of it fits in buffers
    bob.send("NAME bob")
    bob.expect("HELLO bob", hint=HINT_NAME)
    carol = named(server, "carol")
    conversation.log("(bob reads nothing from now on)")
    flood = flood_until_cut_off(conversation, alice, "bob")
    if not flood.refusals:
        conversation.fail("alice's MSG to bob gets ERROR once more than 1 MiB waits for bob "
                          "(the server disconnects him)",
                          "all %d messages (%.0f MB) got 'SENT bob', and bob read none of them"
                          % (flood.sent_replies, flood.megabytes(flood.sent_replies)),
                          HINT_BACKLOG)
    expect_names(carol, ["alice", "carol"], hint="bob was cut off, so his name is free: it "
                                                 "leaves the list. " + HINT_BACKLOG)
    carol.send("MSG bob are you there?")
    carol.expect_error(hint="bob was cut off, so a MSG to him gets ERROR. " + HINT_BACKLOG)
    dave = server.connect("dave")
    dave.send("NAME bob")
    dave.expect("HELLO bob", hint="bob was cut off, so another client may take his name. "
                                  + HINT_BACKLOG)
    exchange(carol, dave, "carol", "bob", "hi new bob",
             hint="after cutting off a client, the server carries on with the others. "
                  + HINT_MSG)


@check(15, "Clients without a name leave (close, reset); the server goes on", needs=ANSWERING, kept=True)
def test_unnamed_clients_leave(server):
    """ghost (no name) asks GET_NAMES and closes; rude (no name) asks and is reset; alice is
    still served (two round trips), and a newcomer can take a name."""
    unnamed_clients_leave(server)


@check(16, "A MSG whose character is split across two reads")
def test_character_split_across_reads(server):
    """'MSG bob héllo' is sent in two writes, 30 ms apart, cut between the two bytes of
    'é': bob gets 'FROM alice héllo'."""
    split_character_message(server)


@check(17, "A push over 1024 bytes gets ERROR; one of exactly 1024 is delivered")
def test_overlong_push(server):
    """max (a 16-character name) sends bo a text whose push 'FROM maximilian_the_2 <text>'
    is exactly 1024 bytes: delivered. Texts one byte longer (in ASCII, then in 'é's) get
    ERROR, bo gets nothing of them, and the server carries on."""
    overlong_push(server)
