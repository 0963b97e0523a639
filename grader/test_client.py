"""The client, every stage: the grader plays the server and the user at the keyboard.

Each check starts the student's chat_client.py against the grader's own
scripted server (grader/clientside.py), types lines into it, pushes messages
to it, and watches what it sends, prints, and how it ends.
"""

import time

import pytest

from grader import attach
from grader.checks import check
from grader.clientside import ClientUnderTest
from grader.stages import DECLARED
from grader.framing import frame
from grader.wire import MESSAGE

# Which stages a client check runs in, by the clients' traits (grader/stages.py): a check
# earns its points in the first of them and is kept in the others (grader/catalog.py).
ALL_STAGES = [stage.folder for stage in DECLARED]
BEFORE_EXIT = [stage.folder for stage in DECLARED if not stage.client_says_exit]
EXIT_STAGES = [stage.folder for stage in DECLARED if stage.client_says_exit]

IDLE_PAUSE = 0.2    # check 24: the longest wait for the client to wait for input
BYE_DELAY = 0.2     # check 29: how long the server takes to say BYE
PIECE_PAUSE = 0.03  # check 30: the longest wait for a piece to be read before the next

HINT_SEND = ("the client must send each line the user types as one framed message: a 4-digit "
             "length header, then the line without its newline (docs/students.md § The client, § Framing).")
HINT_NO_TRACEBACK = ("catch the errors of a normal ending (EOFError, a closed socket) and end "
                     "quietly: a user should never see a traceback (docs/students.md § The client).")


@pytest.fixture
def client_program(request, stage_dir, conversation, sandbox):
    """The student's client for this check: started on client_program.start(), always stopped
    (attached: the one the student started, through grader/keyboard.py)."""
    under_test = (attach.attached_client(request.config, stage_dir, conversation, sandbox)
                  or ClientUnderTest(stage_dir, conversation, sandbox))
    yield under_test
    under_test.stop()


# --- every stage ---------------------------------------------------------------

@check(20, "Client connects and sends a typed line, framed", points=2, needs=None, tests="client")
@pytest.mark.parametrize("stage", ALL_STAGES)
def test_client_sends_typed_line(client_program):
    """The client connects to --host/--port; typing 'hello' sends '0005hello'."""
    server = client_program.start()
    client_program.type("hello")
    server.expect("hello", hint=HINT_SEND)


@check(21, "Client frames non-ASCII text with its length in bytes", tests="client")
@pytest.mark.parametrize("stage", ALL_STAGES)
def test_client_length_in_bytes(client_program):
    """'héllo שלום' is 10 characters but 15 bytes: the client sends header '0015'."""
    server = client_program.start()
    client_program.type("héllo שלום")
    server.expect("héllo שלום", hint="the header counts bytes, not characters: count and "
                                     "send the line's UTF-8 bytes. Read standard input as "
                                     "bytes (sys.stdin.buffer) and len() counts bytes; a str "
                                     "line must be encoded first (docs/students.md § Framing).")


@check(22, "Client skips empty lines and strips the line ending", tests="client")
@pytest.mark.parametrize("stage", ALL_STAGES)
def test_client_skips_empty_lines(client_program):
    """An empty line sends nothing; the next, ending in '\\r\\n' (Windows), is sent without it."""
    server = client_program.start()
    client_program.type("")
    client_program.type("after", ending="\r\n")
    kind, payload = server.read_event()
    if kind == MESSAGE and payload == b"after":
        server.conv.log("client → server  'after'")
        return
    if kind != MESSAGE:
        hint = "after an empty line (not sent), the next line must be sent (docs/students.md § The client)."
    elif payload == b"":
        hint = "an empty line is not a message: skip it and read the next line " \
               "(docs/students.md § The client)."
    elif payload.rstrip(b"\r\n") == b"after":
        hint = "the line ending is not part of the message, and on Windows it is '\\r\\n': " \
               "strip both characters, not just '\\n' (docs/students.md § The client)."
    else:
        hint = "send exactly the line that was typed, without its line ending " \
               "(docs/students.md § The client)."
    server.conv.fail("client → server  'after'", server.describe_event(kind, payload), hint)


@check(23, "Client refuses a line over 1024 bytes and goes on", tests="client")
@pytest.mark.parametrize("stage", ALL_STAGES)
def test_client_refuses_long_line(client_program):
    """Lines of 1100 and 1200 bytes (600 'é') are refused with an error; 1024 bytes is sent."""
    server = client_program.start()
    client_program.type("x" * 1100)
    client_program.type("é" * 600, note="'éééé…' (600 characters, 1200 bytes)")
    client_program.type("y" * 1024)
    server.expect("y" * 1024, hint="check each line's length in bytes (of the bytes read from "
                                   "sys.stdin.buffer, or of a str line once encoded to UTF-8) "
                                   "before sending: over 1024 bytes, print an error and read the "
                                   "next line; never send it, cut it, or crash. Exactly 1024 "
                                   "bytes is allowed (docs/students.md § The client).")
    client_program.expect_running(hint="a line that is too long is the user's mistake: print an "
                                       "error and keep going (docs/students.md § The client).")
    if client_program.output_size() == 0:
        client_program.conv.fail("the client prints an error about the lines that are too long",
                                 "it printed nothing at all",
                                 "tell the user the line was not sent and why, e.g. "
                                 "'error: line is 1100 bytes; the limit is 1024' "
                                 "(docs/students.md § The client).")


@check(24, "Client prints a message while the user types nothing", points=2,
       tests="client")
@pytest.mark.parametrize("stage", ALL_STAGES)
def test_client_prints_while_idle(client_program):
    """Once the client waits for input (or after 0.2 s where that can't be seen), a
    pushed 'FROM alice are you there?' is printed within 2 s."""
    server = client_program.start()
    # The point of this check: the message comes while the client waits for the user
    # to type, so a client that only looks at the socket after reading a line is
    # stuck in input() when it comes.
    client_program.wait_until_reading_input(IDLE_PAUSE)
    server.send("FROM alice are you there?")
    client_program.expect_printed(
        "FROM alice are you there?",
        hint="a client blocked in input() can't print anything: read standard input in a "
             "thread of its own, so the main loop can receive and print at any time "
             "(docs/students.md § The client).")


@check(25, "Client prints several messages that arrive together", tests="client")
@pytest.mark.parametrize("stage", ALL_STAGES)
def test_client_splits_messages(client_program):
    """Three framed messages in one write are printed on three lines, in order, as text."""
    server = client_program.start()
    payloads = ["FROM bob first", "FROM zoë héllo שלום", "NAMES bob zoë"]
    server.send_many(payloads)
    for payload in payloads:
        client_program.expect_printed(
            payload,
            hint="one recv() can return several messages: keep a buffer, take out every "
                 "complete message and print each on a line of its own, as text (decode the "
                 "UTF-8, or write the bytes to sys.stdout.buffer; never print a b'...' "
                 "object) (docs/students.md § Framing, § The client).")


# --- stages 1 to 3: end of input ends the client -------------------------------

@check(26, "End of input: the client closes and exits with status 0", tests="client")
@pytest.mark.parametrize("stage", BEFORE_EXIT)
def test_client_end_of_input(client_program):
    """After Ctrl-D the client closes its socket and exits with status 0, no traceback."""
    server = client_program.start()
    client_program.end_input()
    server.expect_closed(hint="when the input ends (readline() returns '', or input() raises "
                              "EOFError), close the socket and exit (docs/students.md § The client).")
    client_program.expect_exit((0,), within=3.0,
                               hint="at the end of input the client exits with status 0; make "
                                    "sure no thread keeps it alive (docs/students.md § The client).")
    client_program.expect_no_traceback(hint=HINT_NO_TRACEBACK)


# --- stage 4: EXIT and BYE -------------------------------------------------------

@check(26, "Typing EXIT sends EXIT; after BYE the client exits 0", tests="client")
@pytest.mark.parametrize("stage", EXIT_STAGES)
def test_client_types_exit(client_program):
    """The line 'EXIT' is sent; when the server replies BYE the client exits 0, no traceback."""
    server = client_program.start()
    client_program.type("EXIT")
    server.expect("EXIT", hint="the line EXIT is sent like any other line "
                               "(docs/students.md § Stage 4, § The client).")
    server.say_bye()
    client_program.expect_exit((0,), within=3.0,
                               hint="after BYE the client is done: close the socket and exit "
                                    "with status 0 (docs/students.md § Stage 4).")
    client_program.expect_no_traceback(hint=HINT_NO_TRACEBACK)


@check(27, "End of input sends EXIT; after BYE the client exits 0", tests="client")
@pytest.mark.parametrize("stage", EXIT_STAGES)
def test_client_end_of_input_sends_exit(client_program):
    """After Ctrl-D the client sends 'EXIT', waits for BYE, and exits 0, no traceback."""
    server = client_program.start()
    client_program.end_input()
    server.expect("EXIT", hint="in stage 4 the end of input leaves politely: send EXIT, as if "
                               "the user had typed it (docs/students.md § Stage 4, § The client).")
    server.say_bye()
    client_program.expect_exit((0,), within=3.0,
                               hint="after BYE the client is done: exit with status 0, even "
                                    "though the input has ended (docs/students.md § Stage 4).")
    client_program.expect_no_traceback(hint=HINT_NO_TRACEBACK)


@check(28, "Server closes: the client says so and exits with status 1", tests="client", kept=True)
@pytest.mark.parametrize("stage", EXIT_STAGES)
def test_client_server_closes(client_program):
    """The server closes without BYE: the client prints a message and exits 1, no traceback."""
    server = client_program.start()
    client_program.type("hello")
    server.expect("hello", hint=HINT_SEND)
    printed_before = client_program.output_size()
    server.close()
    client_program.expect_exit((1,), within=3.0,
                               hint="when recv() returns b'' without a BYE, the server is gone: "
                                    "say so and exit with status 1, even while another thread "
                                    "waits for input (docs/students.md § Stage 4, § The client).")
    client_program.expect_no_traceback(hint=HINT_NO_TRACEBACK)
    if client_program.output_size() == printed_before:
        client_program.conv.fail("the client tells the user the server closed the connection",
                                 "it exited without printing anything",
                                 "print a short message such as 'The server closed the "
                                 "connection.' before exiting (docs/students.md § Stage 4).")


@check(29, "After EXIT the client keeps printing until BYE comes", tests="client")
@pytest.mark.parametrize("stage", EXIT_STAGES)
def test_client_waits_for_bye(client_program):
    """A 'NAMES a b' that comes after EXIT is printed; the client exits 0 only after BYE."""
    server = client_program.start()
    client_program.type("EXIT")
    server.expect("EXIT", hint="the line EXIT is sent like any other line (docs/students.md § Stage 4).")
    server.send("NAMES a b")
    client_program.expect_printed("NAMES a b", hint="after sending EXIT the client keeps "
                                                    "receiving, and printing what comes, until "
                                                    "BYE arrives (docs/students.md § Stage 4).")
    # A deliberate delay, and the point of this check: the server is slow to say BYE,
    # and the client must still be there, waiting for it.
    time.sleep(BYE_DELAY)
    client_program.expect_running(hint="sending EXIT is not the end: wait for the BYE reply "
                                       "before exiting (docs/students.md § Stage 4).")
    server.say_bye()
    client_program.expect_exit((0,), within=3.0,
                               hint="after BYE the client exits with status 0 "
                                    "(docs/students.md § Stage 4).")
    client_program.expect_no_traceback(hint=HINT_NO_TRACEBACK)


# --- every stage, again -----------------------------------------------------------

@check(30, "Client puts together a message that arrives in pieces", tests="client")
@pytest.mark.parametrize("stage", ALL_STAGES)
def test_client_message_in_pieces(client_program):
    """The server sends a header alone, then part of the payload, then the rest, each
    once the client has read the one before: the client prints the whole message on
    one line."""
    server = client_program.start()
    payload = "FROM alice this one came in three pieces"
    data = frame(payload)
    server.send_pieces([data[:4], data[4:15], data[15:]], PIECE_PAUSE)
    client_program.expect_printed(
        payload,
        hint="one recv() may return a header alone, or part of a payload: keep what arrived "
             "in a buffer and print a message only once all of its bytes are there; one "
             "recv(length) is not enough, it may return fewer bytes (docs/students.md § Framing, "
             "§ The client).")
