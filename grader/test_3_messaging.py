"""Stage 3, messaging: MSG between named clients, exact text, errors, order, slow readers."""

import selectors
import threading
import time

from grader.chat import HINT_MSG, exchange, named
from grader.checks import check
from grader.wire import FrameReader, frame, show

STAGE = "3_messaging"

HINT_TEXT = ("the text is everything after the second space, kept exactly: split with "
             "text.split(' ', 2) or partition(' '), never with split() (README § Stage 3).")
HINT_ONLY_RECIPIENT = ("a MSG goes to its recipient only: look the recipient up by name and "
                       "queue the push for that one client, not for every client "
                       "(README § Stage 3).")
HINT_GOES_ON = ("after an ERROR the connection stays open and the server goes on as before "
                "(README § Stage 3).")
HINT_SLOW = ("Never send with a blocking sendall() to a client that may not be reading: queue "
             "its bytes and send them when select reports its socket writable; past 1 MiB "
             "waiting you may disconnect it (README § Stage 3).")
HINT_FRAMING = ("TCP is a byte stream: keep a buffer per client and take out only complete "
                "messages (README § Framing).")

FLOOD_COUNT = 8200      # check 10: messages alice sends to bob, who never reads ...
FLOOD_TEXT = 1000       # ... each with this many bytes of text: about 8.3 MB in all
FLOOD_LIMIT = 10.0      # check 10: how long the server may take to answer all of them
FLOOD_PACE = 0.02       # check 10: carol and dave talk at most this often during the flood


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
    # one sender to one recipient keep their order (SPEC), so had the server pushed
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
                            "(README § Stage 3).")
    carol.send("NAME carol")
    carol.expect("HELLO carol", hint=HINT_GOES_ON)
    exchange(carol, bob, "carol", "bob", "now I have a name",
             hint="bob's next message must be this one: the MSG sent without a name must not "
                  "have reached him. " + HINT_MSG)


@check(5, "MSG to a name nobody holds gets ERROR")
def test_unknown_recipient(server):
    """'MSG zoe hi' when nobody is zoe: ERROR to the sender; the server goes on."""
    alice = named(server, "alice")
    bob = named(server, "bob")
    alice.send("MSG zoe hi")
    alice.expect_error(hint="look the name up with names.get(name) (or 'in'): a missing name "
                            "must get 'ERROR <reason>', not crash the server (README § Stage 3).")
    exchange(alice, bob, "alice", "bob", "still there?",
             hint="after an ERROR the server serves on: " + HINT_MSG)


@check(6, "MSG to oneself gets ERROR")
def test_message_to_self(server):
    """alice sends 'MSG alice hi': ERROR, and no FROM to herself."""
    alice = named(server, "alice")
    bob = named(server, "bob")
    alice.send("MSG alice hi")
    alice.expect_error(hint="a client may not send a message to itself: compare the recipient "
                            "with the sender's own name first, and reply ERROR without "
                            "delivering (README § Stage 3).")
    exchange(alice, bob, "alice", "bob", "to someone else", hint=HINT_GOES_ON + " " + HINT_MSG)


@check(7, "MSG with no text gets ERROR")
def test_message_without_text(server):
    """'MSG bob' and 'MSG bob ' (empty text) each get ERROR; bob gets nothing of them."""
    alice = named(server, "alice")
    bob = named(server, "bob")
    for payload in ["MSG bob", "MSG bob "]:
        alice.send(payload)
        alice.expect_error(hint="the text must not be empty: 'MSG bob' and 'MSG bob ' get "
                                "'ERROR <reason>' and nothing is delivered (README § Stage 3).")
    exchange(alice, bob, "alice", "bob", "with text",
             hint="bob's next message must be this one: a MSG without text delivers nothing. "
                  + HINT_MSG)


@check(8, "Messages follow renames")
def test_messages_follow_renames(server):
    """alice renames to ann: 'MSG alice' gets ERROR, 'MSG ann' reaches her, her FROM says ann."""
    alice = named(server, "alice")
    bob = named(server, "bob")
    alice.send("NAME ann")
    alice.expect("HELLO ann", hint="a named client may rename (README § Stage 2).")
    bob.send("MSG alice hi")
    bob.expect_error(hint="after a rename the old name is free at once: 'alice' is not a "
                          "current name, so a MSG to it gets ERROR (README § Stage 3).")
    exchange(bob, alice, "bob", "ann", "hi ann",
             hint="look the recipient up in the current names: after a rename the new name "
                  "reaches the client (README § Stage 3).")
    exchange(alice, bob, "ann", "bob", "hi from ann",
             hint="write the sender's current name in 'FROM <sender>', not the name it had "
                  "when it connected (README § Stage 3).")


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


class Flood:
    """Check 10's background sender: alice writes the flood and reads her replies.

    It runs in its own thread, on alice's socket made non-blocking, so the grader
    itself never blocks: it writes when the socket is writable and reads whenever
    replies arrive (a server may stop reading a client that leaves its own replies
    unread, so alice must read hers). It stops when every MSG has had its reply, when
    the connection ends, on stop(), or after FLOOD_LIMIT seconds. It never fails
    the check itself: the check reads its results on the main thread.
    """

    def __init__(self, peer, data: bytes, count: int) -> None:
        self.sock = peer.sock
        self.data = memoryview(data)
        self.count = count
        self.written = 0
        self.replies = 0
        self.sent_replies = 0           # 'SENT bob'
        self.unexpected = None          # the first reply that is neither SENT bob nor ERROR
        self.first = None               # the first reply
        self.ending = ""                # why it stopped before all the replies came
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)

    def _run(self) -> None:
        reader = FrameReader()
        deadline = time.monotonic() + FLOOD_LIMIT
        self.sock.setblocking(False)
        selector = selectors.DefaultSelector()
        selector.register(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        try:
            while self.replies < self.count and not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    self.ending = "timeout"
                    return
                for _, events in selector.select(min(left, 0.1)):
                    if events & selectors.EVENT_WRITE and self.written < len(self.data):
                        try:
                            self.written += self.sock.send(self.data[self.written:
                                                                     self.written + 65536])
                        except BlockingIOError:
                            pass
                        except OSError:
                            self.ending = "closed"
                            return
                        if self.written == len(self.data):
                            selector.modify(self.sock, selectors.EVENT_READ)
                    if events & selectors.EVENT_READ:
                        try:
                            chunk = self.sock.recv(65536)
                        except BlockingIOError:
                            continue
                        except OSError:
                            chunk = b""
                        if not chunk:
                            self.ending = "closed"
                            return
                        reader.feed(chunk)
                        if not self._take_replies(reader):
                            return
        finally:
            selector.close()
            self.done.set()

    def _take_replies(self, reader: FrameReader) -> bool:
        while True:
            try:
                payload = reader.next_payload()
            except ValueError:
                self.ending = "garbage"
                return False
            if payload is None:
                return True
            self.replies += 1
            if self.first is None:
                self.first = payload
            if payload == b"SENT bob":
                self.sent_replies += 1
            elif payload.split(b" ", 1)[0] != b"ERROR" and self.unexpected is None:
                self.unexpected = payload


@check(10, "A client that never reads does not stall the others", points=2)
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
    the flood, one more exchange. The server may disconnect bob once his backlog passes
    1 MiB, so after the first reply each reply may be 'SENT bob' or an ERROR (bob gone);
    alice must get one reply per message, and her connection must stay open. On a
    correct server this takes about 0.2 s; it is bounded by FLOOD_LIMIT.
    """
    alice = named(server, "alice")
    bob = named(server, "bob")  # noqa: F841 (stays connected, and never reads)
    carol = named(server, "carol")
    dave = named(server, "dave")
    text = "x" * FLOOD_TEXT
    data = b"".join(frame("MSG bob %05d%s" % (i, text[5:])) for i in range(FLOOD_COUNT))
    conversation.log("(bob reads nothing from now on)")
    conversation.log("alice    → server  %d × 'MSG bob 00000xxx…' (%d bytes of text each, "
                     "%.1f MB in all), while reading her replies"
                     % (FLOOD_COUNT, FLOOD_TEXT, len(data) / 1e6))
    flood = Flood(alice, data, FLOOD_COUNT)
    flood.start()
    hint = ("dave must get carol's message while bob is not reading. " + HINT_SLOW)
    try:
        round_ = 0
        while not flood.done.is_set():
            exchange(carol, dave, "carol", "dave", "ping %d" % round_, hint=hint)
            round_ += 1
            flood.done.wait(FLOOD_PACE)   # pace the exchanges; returns early when the flood ends
        exchange(carol, dave, "carol", "dave", "after the flood", hint=hint)
    finally:
        flood.stop()
    conversation.log("alice    ← server  %d replies: %d × 'SENT bob', %d others"
                     % (flood.replies, flood.sent_replies, flood.replies - flood.sent_replies))
    if flood.first is not None and flood.first != b"SENT bob":
        conversation.fail("alice ← server  'SENT bob' for her first message (bob is connected "
                          "and nothing waits for him yet)",
                          "alice ← server  %s" % show(flood.first), HINT_MSG)
    if flood.unexpected is not None:
        conversation.fail("alice ← server  'SENT bob', or ERROR once bob is disconnected",
                          "alice ← server  %s" % show(flood.unexpected), HINT_SLOW)
    if flood.replies < FLOOD_COUNT:
        endings = {"closed": "the server closed alice's connection after %d replies",
                   "garbage": "bytes that are not a valid message header after %d replies"}
        got = endings.get(flood.ending, "only %%d replies within %.0f s" % FLOOD_LIMIT)
        conversation.fail("alice ← server  one reply to each of her %d messages" % FLOOD_COUNT,
                          got % flood.replies,
                          "alice reads her replies, so keep reading her messages and answering "
                          "each one, even while bob reads nothing. " + HINT_SLOW)


@check(11, "Naming still works: a taken name, GET_NAMES sorted")
def test_naming_still_works(server):
    """bob, then alice, take names; carol's 'NAME alice' gets ERROR; GET_NAMES sorts them."""
    holders = [named(server, "bob"), named(server, "alice")]  # noqa: F841 (open: they hold names)
    carol = server.connect("carol")
    carol.send("NAME alice")
    carol.expect_error(hint="a name held by another client is refused with ERROR, in stage 3 "
                            "too (README § Stage 2).")
    carol.send("GET_NAMES")
    carol.expect("NAMES alice bob", hint="GET_NAMES lists every held name, sorted, each after "
                                         "one space, in stage 3 too (README § Stage 2).")


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
                          "(README § Framing).")
    bad.expect_closed(hint="after the ERROR for a bad header, close that connection "
                           "(README § Framing).")
    exchange(alice, bob, "alice", "bob", "still here",
             hint="a framing error ends only that client's connection, never the server.")
