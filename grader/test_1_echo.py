"""Stage 1, echo: framing, many clients at once, and clients that leave."""

from grader.checks import check
from grader.wire import QUIET

STAGE = "1_echo"

HINT_FRAMING = ("TCP is a byte stream: one recv() may return part of a message or several "
                "messages. Keep a buffer per client and take out only complete messages "
                "(README § Framing).")


@check(1, "Server starts and echoes one message", points=2, needs=None)
def test_echoes_one_message(server):
    """A client sends 'hello' and gets 'hello' back."""
    alice = server.connect("alice")
    alice.send("hello")
    alice.expect("hello", hint="the server must send each message back, framed, to its sender "
                               "(README § Stage 1).")


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
                                  "MAX_MSG_LENGTH bytes is valid. Also check you loop until "
                                  "all 1024 bytes have arrived.")


@check(6, "Length counts bytes, not characters (UTF-8)")
def test_length_in_bytes(server):
    """'héllo wörld ש' is 13 characters but 16 bytes: header '0016'."""
    alice = server.connect("alice")
    alice.send("héllo wörld ש")
    alice.expect("héllo wörld ש", hint="the header counts bytes: use len(text.encode('utf-8')), "
                                      "and slice the buffer in bytes before decoding.")


@check(7, "Bad headers get ERROR, then the connection is closed", points=2)
def test_bad_headers(server):
    """'abcd', '1025' and '9999' each get ERROR and a close; another client carries on."""
    bystander = server.connect("bystander")
    for header in [b"abcd", b"1025", b"9999"]:
        bad = server.connect("bad")
        bad.send_raw(header + b"xyz", note="bad header %r" % header.decode())
        bad.expect_error(hint="a header that is not 4 digits, or announces more than 1024 "
                              "bytes, is a framing error: send 'ERROR <reason>' to that client.")
        bad.expect_closed(hint="after the ERROR the server must close that connection: the "
                               "stream can't be trusted any more (flush the ERROR first).")
    bystander.send("still here")
    bystander.expect("still here", hint="a framing error ends only that client's connection, "
                                        "never the server.")


@check(8, "Fifty clients at once", points=2)
def test_fifty_clients(server):
    """50 clients connect, each sends its own message, each gets its own echo."""
    clients = server.connect_many(50)
    for i, client in enumerate(clients):
        client.send("I am %d" % i, note="'I am %d'" % i)
    for i, client in enumerate(clients):
        client.expect("I am %d" % i, hint="every connected client must be served: keep all "
                                          "client sockets in the select set, and echo to the "
                                          "client that sent.")


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


@check(10, "Clients that leave (even mid-message) do not stop the server", points=2)
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
    # would exit within milliseconds; we watch the process for a moment to see it.
    stayer.close("closes: no client is left")
    server.expect_running(QUIET, hint="a server runs until it is stopped: when the last "
                                      "client leaves, go back to select() and wait for the next.")
    newcomer = server.connect("newcomer")
    newcomer.send("hello again")
    newcomer.expect("hello again", hint="the server must keep accepting new clients after "
                                        "everyone has left.")
