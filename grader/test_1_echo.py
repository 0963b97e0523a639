"""Stage 1, echo: framing, many clients at once, clients that leave, an idle server."""

import pytest

from grader.checks import check
from grader.processes import busy_share as busy_share_of
from grader.system import busy_seconds
from grader.whereabouts import samples


HINT_FRAMING = ("TCP is a byte stream: one recv() may return part of a message or several "
                "messages. Keep a buffer per client and take out only complete messages "
                "(docs/students.md § Framing).")
HINT_EOF = ("when recv() returns b'' the client has left: unregister its socket from select "
            "and close it. A socket whose peer has left stays readable for ever, so a server "
            "that ignores b'' finds it ready in every select() and spins at full CPU "
            "(docs/students.md § Stage 1).")

CPU_WINDOW = 0.2    # check 12: how long the idle server is watched, in seconds
BUSY_LIMIT = 0.5    # check 12: the share of that time it may want the CPU (a spinner: ~1.0)


@check(1, "Server starts and echoes one message", points=2, needs=None)
def test_echoes_one_message(server):
    """A client sends 'hello' and gets 'hello' back."""
    alice = server.connect("alice")
    alice.send("hello")
    alice.expect("hello", hint="the server must send each message back, framed, to its sender "
                               "(docs/students.md § Stage 1).")


@check(2, "Echo keeps the payload byte for byte, empty ones too")
def test_echo_is_byte_exact(server):
    """Spaces, punctuation and an empty payload ('0000') come back unchanged."""
    alice = server.connect("alice")
    for payload in ["  two  spaces  ", "tab\there", ""]:
        alice.send(payload)
        alice.expect(payload, hint="echo the payload exactly as received: do not strip or "
                                   "decode it, and an empty payload is a message too.")


@check(3, "A message sent one byte at a time")
def test_message_one_byte_at_a_time(server):
    """The header and payload arrive in 9 separate pieces."""
    alice = server.connect("alice")
    alice.send_bytewise("hello")
    alice.expect("hello", hint="did you read the header with a single recv()? " + HINT_FRAMING)


@check(4, "Three messages in one write")
def test_three_messages_in_one_write(server):
    """'0003one0003two0005three' sent at once is three messages."""
    alice = server.connect("alice")
    alice.send_raw(b"0003one0003two0005three", note="'one', 'two', 'three' in one write")
    for word in ["one", "two", "three"]:
        alice.expect(word, hint="one recv() returned all three messages; "
                                "did you treat it as one? " + HINT_FRAMING)


@check(5, "A message of exactly 1024 bytes is accepted")
def test_largest_message(server):
    """1024 bytes is the limit, and is allowed."""
    alice = server.connect("alice")
    alice.send("x" * 1024)
    alice.expect("x" * 1024, hint="the limit is inclusive: a payload of exactly "
                                  "MAX_MSG_LENGTH bytes is valid (a header over 1024 is the "
                                  "error). A long payload may also take several recv() calls: "
                                  "keep the part that arrived in the client's buffer until "
                                  "the rest comes (docs/students.md § Framing).")


@check(6, "Length counts bytes, not characters (UTF-8)")
def test_length_in_bytes(server):
    """'héllo wörld ש' is 13 characters but 16 bytes: header '0016'."""
    alice = server.connect("alice")
    alice.send("héllo wörld ש")
    alice.expect("héllo wörld ש", hint="the header counts bytes: use len(text.encode('utf-8')), "
                                      "and slice the buffer in bytes before decoding.")


INT_HEADERS = [b"+012", b" 12 ", b"1_23"]   # int() takes them all; none is 4 ASCII digits
BAD_HEADERS = [b"abcd", b"1025", b"9999"] + INT_HEADERS
HINT_BAD_HEADER = ("a header is exactly 4 ASCII digits. int() alone also accepts '+012', ' 12 ' "
                   "and '1_23' (and digits of other scripts), so check the 4 bytes first (each "
                   "one b'0' to b'9') and only then convert; anything else is a framing error: "
                   "'ERROR <reason>', then close (docs/students.md § Framing).")


@check(7, "Bad headers get ERROR, then the connection is closed", points=2)
def test_bad_headers(server):
    """'abcd', '1025' and '9999' each get ERROR and a close, and so do '+012', ' 12 ' and
    '1_23', which int() reads as 12 and 123 but which are not 4 ASCII digits; a message
    whole before a bad header, in the same write, is echoed first; another client
    carries on.

    This is the stage's one check of the word ERROR itself (docs/students.md § Framing).
    """
    bystander = server.connect("bystander")
    for header in BAD_HEADERS:
        bad = server.connect("bad")
        bad.send_raw(header + b"xyz", note="bad header %r" % header.decode())
        bad.expect_error(exact=True, hint=HINT_BAD_HEADER if header in INT_HEADERS else
                         "a header that is not 4 digits, or announces more than 1024 "
                         "bytes, is a framing error: send 'ERROR <reason>' to that client.")
        bad.expect_closed(hint="after the ERROR the server must close that connection: the "
                               "stream can't be trusted any more (flush the ERROR first).")
    late = server.connect("late")
    late.send_raw(b"0002hiabcd", note="'hi', then the bad header 'abcd', in one write")
    late.expect("hi", hint="the message before the bad header is whole: handle it as usual, and "
                           "queue its reply before the ERROR. Take out every complete message "
                           "first; only then complain about the header that follows "
                           "(docs/students.md § Framing).")
    late.expect_error(hint="after the messages that were whole, the bad header gets "
                           "'ERROR <reason>' (docs/students.md § Framing).")
    late.expect_closed(hint="after the ERROR the server closes that connection "
                            "(docs/students.md § Framing).")
    bystander.send("still here")
    bystander.expect("still here", hint="a framing error ends only that client's connection, "
                                        "never the server.")


HINT_FIFTY = ("every connected client must be served: keep all client sockets in the select "
              "set, and echo to the client that sent (the socket the message came from, not "
              "the one accept() returned last).")


@check(8, "Fifty clients at once", points=2)
def test_fifty_clients(server):
    """50 clients connect; the last one is echoed first (so the server has accepted all
    50), then the others send their own messages, and each gets its own echo."""
    clients = server.connect_many(50)
    # The server accepts connections in the order they came: once the last one is echoed,
    # it has accepted them all, however fast or slow it is. So an echo sent to the
    # socket accept() returned last, not to the sender, always shows below.
    last = clients[-1]
    last.send("I am c%d" % len(clients))
    last.expect("I am c%d" % len(clients), hint=HINT_FIFTY)
    others = clients[:-1]
    for number, client in enumerate(others, start=1):
        client.send("I am c%d" % number, note="'I am c%d'" % number)
    for number, client in enumerate(others, start=1):
        client.expect("I am c%d" % number, hint=HINT_FIFTY)


@check(9, "A client stalled mid-message does not delay others", points=2)
def test_stalled_client_does_not_block(server):
    """One client sends half a message and goes quiet; another still gets its echo."""
    staller = server.connect("staller")
    staller.send_raw(b"0008hal", note="half a message ('0008hal'), then nothing")
    other = server.connect("other")
    other.send("hi")
    other.expect("hi", hint="never wait for the rest of a message with a blocking recv(): "
                            "keep what arrived in the client's buffer and go back to select.")
    staller.send_raw(b"f way", note="the rest ('f way')")
    staller.expect("half way", hint="when the rest of a message arrives later, it completes "
                                    "the buffered part. " + HINT_FRAMING)


@check(10, "Clients that leave (even mid-message) do not stop the server", points=2,
       fresh_server=True)
def test_clients_leave(server):
    """One client closes normally, one mid-message, then the last one; the server serves on."""
    leaver = server.connect("leaver")
    leaver.send("bye")
    leaver.expect("bye", hint="echo first, then the client leaves.")
    leaver.close()
    halfway = server.connect("halfway")
    halfway.send_raw(b"0020only part", note="half a message ('0020only part')")
    halfway.close("closes mid-message")
    # Both closes reached the server before this client connected, so two round
    # trips prove the server handled them and is still serving.
    stayer = server.connect("stayer")
    for text in ["anyone?", "still anyone?"]:
        stayer.send(text)
        stayer.expect(text, hint="when recv() returns b'' the client has left: unregister "
                                 "and close its socket, then keep serving the others.")
    # Now the last client leaves. A server that (wrongly) stops when no one is left
    # exits within milliseconds of closing that socket; we watch it a moment from then.
    stayer.close("closes: no client is left")
    server.expect_running_after(stayer, hint="a server runs until it is stopped: when the "
                                             "last client leaves, go back to select() and "
                                             "wait for the next.")
    newcomer = server.connect("newcomer")
    newcomer.send("hello again")
    newcomer.expect("hello again", hint="the server must keep accepting new clients after "
                                        "everyone has left.")


@check(11, "A client that closes its sending side is disconnected", fresh_server=True)
def test_half_closed_client(server):
    """alice gets her echo, then shuts down her sending side (shutdown(SHUT_WR)); the
    server closes the connection within 2 s, and still serves bob."""
    alice = server.connect("alice")
    alice.send("hello")
    alice.expect("hello", hint="the server must send each message back to its sender "
                               "(docs/students.md § Stage 1).")
    alice.shut_sending_side()
    alice.expect_closed(hint=HINT_EOF)
    bob = server.connect("bob")
    bob.send("still there?")
    bob.expect("still there?", hint="after a client leaves, the server serves the others "
                                    "(docs/students.md § Stage 1).")


@check(12, "With its clients idle, the server uses little CPU", fresh_server=True)
def test_idle_server_is_idle(server, conversation):
    """alice and bob are connected and idle, carol has left: for 0.2 s the server must
    sleep in select(), not want the CPU all the time (if it seems to, a second 0.2 s)."""
    alice = server.connect("alice")
    bob = server.connect("bob")
    carol = server.connect("carol")
    for client in (alice, bob, carol):
        client.send("hi")
        client.expect("hi", hint="the server must send each message back to its sender "
                                 "(docs/students.md § Stage 1).")
    carol.close()
    alice.send("anyone?")   # a round trip after carol's close: the server is settled
    alice.expect("anyone?", hint="after a client leaves, the server serves the others "
                                 "(docs/students.md § Stage 1).")
    program = server.program
    # No reading from a running server: the system can't tell (one that has exited
    # fails below, in busy_share, rather than leave the score's maximum).
    if program.exit_status() is None and busy_seconds(program.proc.pid) is None:
        pytest.skip("this system does not tell the grader how much CPU a program uses "
                    "(no /proc, no ps, not Windows); this check runs on Linux, macOS and "
                    "Windows.")
    # Two windows at most: a spinning server is busy in both, while a correct one that a
    # crowded machine kept from finishing its last step in time is idle in the second.
    for _ in range(2):
        share, count = busy_share(program, conversation)
        conversation.log("(for %.1f s, the server%s wanted the CPU %.0f%% of the time, while "
                         "its clients were idle)" % (CPU_WINDOW, processes_note(count),
                                                     100 * share))
        if share <= BUSY_LIMIT:
            return
    conversation.fail(
        "the server sleeps in select() while no client sends anything",
        "\n".join(["it wanted the CPU %.0f%% of the time, twice in a row: it is spinning"
                   % (100 * share)] + samples(program, conversation)),
        getattr(conversation, "spin_hint", None) or
        "select() returns at once, again and again, when it does not wait: a socket it "
        "watches is always ready, or its timeout is 0. Three usual causes: a departed "
        "client's socket left in the read set (recv() returned b'' and the client was not "
        "removed), every client in the write set (a socket can almost always take more "
        "bytes: watch a socket for writing only while its queue holds bytes), or a "
        "timeout of 0 (give select() one above 0, or None).")


def processes_note(count: int) -> str:
    return "" if count <= 1 else " (its %d processes together)" % count


def busy_share(program, conversation) -> tuple[float, int]:
    """(the share of the next CPU_WINDOW seconds during which the program wanted the CPU,
    how many processes it had); fails if it exited meanwhile (processes.busy_share)."""
    measured = busy_share_of(program, CPU_WINDOW)
    if measured is None:
        conversation.fail("the server keeps running", conversation.exit_note("server") or
                          "it could no longer be measured", "")
    return measured
