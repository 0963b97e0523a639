"""The chat client's loop: send what the user types, print what the server sends.

You write this file in stage 1, and every later stage runs it as it is
(`python -m grader next` carries it into the next stage's folder).  Each
stage's chat_client.py starts it with main(), giving the examples its
greeting shows and, where a stage changes them, what to do with a typed line
and with a received message (stage 4: leaving with EXIT and BYE).

The difficulty: input() blocks until the user presses Enter, but messages
must show up while the user types nothing.  And select() cannot watch the
keyboard on Windows.  So a helper thread does nothing but wait for lines and
queue them; after each one it rings a "doorbell", a byte on a socket pair.
The main thread then needs only select() on two sockets: the server and the
doorbell.
"""

import argparse
import queue
import select
import socket
import sys
import threading

import protocol

RECV_SIZE = 4096    # the most bytes we take from a socket in one recv()
WAKE_UP = 0.5       # seconds: the longest select() waits (see chat())


def strip_line_ending(line):
    """Remove the line ending: "\\n", or "\\r\\n" as Windows writes it."""
    if line.endswith(b"\n"):
        line = line[:-1]
    if line.endswith(b"\r"):
        line = line[:-1]
    return line


def read_lines(stdin, lines, doorbell):
    """Run in a helper thread: queue every line typed, None at end of input.

    We read bytes (stdin.buffer), not text, so the payload is exactly what
    was typed, whatever the console's encoding is.  `stdin` is sys.stdin,
    passed in so that this thread holds on to it: when the program ends while
    this thread still waits for a line, Python then leaves stdin alone instead
    of aborting with "could not acquire lock ... possibly due to daemon threads".
    """
    for line in stdin.buffer:
        lines.put(strip_line_ending(line))
        doorbell.send(b"!")   # wake up the main thread's select()
    lines.put(None)
    doorbell.send(b"!")


# At a terminal, what arrives is set off from what you type (which the terminal
# shows too): "< HELLO alice" under "NAME alice".  Through a pipe (a script, the
# grader), each payload is printed as it is.
RECEIVED_MARK = b"< " if sys.stdin.isatty() and sys.stdout.isatty() else b""


def show(payload):
    """Print one received payload on its own line, byte for byte."""
    sys.stdout.buffer.write(RECEIVED_MARK + payload + b"\n")
    sys.stdout.buffer.flush()


def send_line(server, line):
    """Send one typed line as a message, unless it is too long for one."""
    if len(line) > protocol.MAX_MSG_LENGTH:
        print("error: line is %d bytes; the limit is %d. Not sent."
              % (len(line), protocol.MAX_MSG_LENGTH), file=sys.stderr, flush=True)
        return
    server.sendall(protocol.frame(line))


# --- What a line typed and a message received do (stages 1 to 3) --------------
# Each returns the exit status once the chat is over, else None.

def send_typed(server, line):
    """A line typed (None: the end of input, which ends the chat): send it."""
    if line is None:
        return 0
    if line:   # empty lines are not sent
        send_line(server, line)
    return None


def show_received(payload):
    """A message received: print it."""
    show(payload)
    return None


def keep_waiting():
    """Nothing happened for a while: go on waiting (a later stage may give up)."""
    return None


# --- The loop ----------------------------------------------------------------

def receive_messages(server, decoder, received):
    """The server's socket is readable: hand every whole message to received().

    Returns the exit status once the conversation is over, else None.
    """
    data = server.recv(RECV_SIZE)   # if the connection failed, this raises: see main()
    if not data:   # b"": the server closed the connection
        print("The server closed the connection.", file=sys.stderr)
        return 1
    for payload in decoder.feed(data):
        status = received(payload)
        if status is not None:
            return status
    if decoder.error is not None:   # a bad header: nothing after it can be read
        print("The server broke the framing rules: %s." % decoder.error, file=sys.stderr)
        return 1
    return None


def chat(server, typed, received, idle):
    """Show what the server sends and send what the user types; return the exit status."""
    lines = queue.Queue()
    doorbell_receiver, doorbell = socket.socketpair()
    threading.Thread(target=read_lines, args=(sys.stdin, lines, doorbell), daemon=True).start()
    decoder = protocol.Decoder()
    while True:
        # Wake up at least every WAKE_UP seconds, even when nothing happens: on
        # Windows, Ctrl-C is noticed only once select() returns.
        ready, _, _ = select.select([server, doorbell_receiver], [], [], WAKE_UP)
        status = idle() if not ready else None
        if status is None and server in ready:
            status = receive_messages(server, decoder, received)
        if status is None and doorbell_receiver in ready:
            doorbell_receiver.recv(RECV_SIZE)   # empty the doorbell; the lines are in the queue
            while status is None and not lines.empty():
                status = typed(server, lines.get())
        if status is not None:
            return status


def greet(host, port, examples):
    """Tell the person at the keyboard where the client is connected and what to type.

    Only when standard input is a terminal: when it is a pipe (a script, the
    grader), nobody reads a greeting, so the client stays as quiet as it was.
    It goes to standard error, as everything the client says itself does:
    standard output holds nothing but what the server sends.
    """
    if not sys.stdin.isatty():
        return
    print("Connected to %s:%d. Type a line and press Enter to send it. Try:" % (host, port),
          file=sys.stderr)
    for example, what_it_does in examples:
        print("  %-20s %s" % (example, what_it_does), file=sys.stderr)
    print("To leave: end of input (Ctrl-D, or Ctrl-Z then Enter on Windows), or Ctrl-C.",
          file=sys.stderr, flush=True)


def parse_arguments(stage):
    """Read --host and --port from the command line."""
    parser = argparse.ArgumentParser(description="Chat client, stage %d." % stage)
    parser.add_argument("--host", default=protocol.SERVER_IP, help="the server's address")
    parser.add_argument("--port", type=int, default=protocol.SERVER_PORT, help="the server's port")
    arguments = parser.parse_args()
    if not 0 <= arguments.port <= 65535:   # else connecting would fail with a traceback
        parser.error("argument --port: %d is not a port number (0 to 65535)" % arguments.port)
    return arguments


def main(stage, examples, typed=send_typed, received=show_received, idle=keep_waiting):
    """Connect, chat, and exit with the right status, never with a traceback.

    The stage's chat_client.py gives the examples the greeting shows, and may
    change what a typed line, a received message and a quiet moment do:
      typed(server, line)   a line typed (bytes), None at the end of input;
      received(payload)     a message received;
      idle()                nothing happened for WAKE_UP seconds;
    each returning the exit status once the chat is over, else None.
    """
    arguments = parse_arguments(stage)
    try:
        server = socket.create_connection((arguments.host, arguments.port))
    except OSError as error:
        sys.exit("Cannot connect to %s:%d: %s" % (arguments.host, arguments.port, error))
    greet(arguments.host, arguments.port, examples)
    try:
        status = chat(server, typed, received, idle)
    except OSError:   # recv() or send() failed, e.g. ConnectionResetError: it is gone
        print("The server closed the connection.", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:   # Ctrl-C
        status = 130            # what shells report for a program stopped by Ctrl-C
    server.close()
    sys.exit(status)
