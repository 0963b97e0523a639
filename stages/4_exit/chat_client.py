"""Chat client, stage 4 (exit): type commands, see replies and messages at once.

Each line you type is sent as one message; everything the server sends is
printed on a line of its own, the moment it arrives.  The line EXIT, or the
end of input (Ctrl-D, or Ctrl-Z Enter on Windows), says goodbye: the client
sends EXIT, waits for BYE, and exits with status 0.  If the server closes the
connection, the client says so and exits with status 1.  Ctrl-C: status 130.

The difficulty: input() blocks until the user presses Enter, but messages
must show up while the user types nothing.  And select() cannot watch the
keyboard on Windows.  So a helper thread does nothing but wait for lines and
queue them; after each one it rings a "doorbell", a byte on a socket pair.
The main thread then needs only select() on two sockets: the server and the
doorbell.

Your part: TODO 4.5 to 4.7 below (README § Stage 4, § The client).
Everything from stages 1 to 3 works: lines are sent, messages are printed,
and the end of input ends the client (without a goodbye, for now).  Until a
TODO is done, the client says so once on standard error.

    python chat_client.py [--host HOST] [--port PORT]
"""

import argparse
import os
import queue
import select
import socket
import sys
import threading
import time

# Let `import protocol` find the kit's protocol.py, two folders up, from any working directory.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import protocol  # noqa: E402  (must come after the sys.path line)

RECV_SIZE = 4096    # the most bytes we take from a socket in one recv()
BYE_TIMEOUT = 5.0   # seconds to wait for BYE after sending EXIT


todos_reported = set()   # the TODOs not_implemented() has already reported


def not_implemented(todo, what):
    """The stand-in for a TODO not done yet: say so, once, on standard error.

    Once every TODO is done, nothing calls it any more: delete it.
    """
    if todo not in todos_reported:
        todos_reported.add(todo)
        print("TODO %s not implemented yet: %s (README § Stage 4)" % (todo, what),
              file=sys.stderr, flush=True)


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


def show(payload):
    """Print one received payload on its own line, byte for byte."""
    sys.stdout.buffer.write(payload + b"\n")
    sys.stdout.buffer.flush()


def send_line(server, line):
    """Send one typed line as a message, unless it is too long for one."""
    if len(line) > protocol.MAX_MSG_LENGTH:
        print("error: line is %d bytes; the limit is %d. Not sent."
              % (len(line), protocol.MAX_MSG_LENGTH), file=sys.stderr, flush=True)
        return
    server.sendall(protocol.frame(line))


def chat(server):
    """Show what the server sends and send what the user types; return the exit status."""
    lines = queue.Queue()
    doorbell_receiver, doorbell = socket.socketpair()
    threading.Thread(target=read_lines, args=(sys.stdin, lines, doorbell), daemon=True).start()
    decoder = protocol.Decoder()
    bye_deadline = None   # once EXIT is sent: when we stop waiting for BYE
    while True:
        timeout = None if bye_deadline is None else max(0, bye_deadline - time.monotonic())
        ready, _, _ = select.select([server, doorbell_receiver], [], [], timeout)
        if not ready:   # select() timed out: no BYE in time
            print("The server did not answer EXIT with BYE.", file=sys.stderr)
            return 1
        if server in ready:
            data = server.recv(RECV_SIZE)
            if not data:
                # TODO 4.7 (also in main): The server closed the connection without BYE:
                #   it is gone (README § Stage 4).  Tell the user so on sys.stderr ("The
                #   server closed the connection.") before returning 1, the exit status
                #   for "it ended badly".
                # Until then, the client ends without a word, and the user can't tell why:
                return 1
            for payload in decoder.feed(data):
                show(payload)
                if payload == protocol.REPLY_BYE.encode():
                    # TODO 4.6: BYE is the server's last word: return 0 (README § Stage 4).
                    #   Show it first, as above: the user sees the goodbye went through.
                    not_implemented("4.6", "BYE does not end the client")
        if doorbell_receiver in ready:
            doorbell_receiver.recv(RECV_SIZE)   # empty the doorbell; the lines are in the queue
            while not lines.empty():
                line = lines.get()
                # TODO 4.5: Leave politely (README § Stage 4).  The line EXIT, or the end
                #   of input (line is None), sends EXIT, framed, and starts the wait for
                #   BYE: bye_deadline = time.monotonic() + BYE_TIMEOUT.  Do not return:
                #   the loop goes on printing what arrives until BYE (TODO 4.6), and the
                #   select() above gives up at bye_deadline.  Once leaving (bye_deadline
                #   is not None), send nothing more: skip every later line.
                if line is None:   # end of input: for now, we leave without a goodbye
                    not_implemented("4.5", "the end of input closes without EXIT")
                    return 0
                elif line:   # empty lines are not sent
                    send_line(server, line)


def parse_arguments():
    """Read --host and --port from the command line."""
    parser = argparse.ArgumentParser(description="Chat client, stage 4.")
    parser.add_argument("--host", default=protocol.SERVER_IP, help="the server's address")
    parser.add_argument("--port", type=int, default=protocol.SERVER_PORT, help="the server's port")
    return parser.parse_args()


def main():
    """Connect, chat, and exit with the right status, never with a traceback."""
    arguments = parse_arguments()
    try:
        server = socket.create_connection((arguments.host, arguments.port))
    except OSError as error:
        sys.exit("Cannot connect to %s:%d: %s" % (arguments.host, arguments.port, error))
    # TODO 4.7 (also in chat): No traceback, whatever the server does (README § Stage 4).
    #   Around chat(server): an OSError (ConnectionResetError when the server vanished,
    #   BrokenPipeError when we send to it) or a protocol.ProtocolError (it sent bytes
    #   that break the framing) means the server is gone: say so on sys.stderr, and
    #   status = 1.  KeyboardInterrupt (Ctrl-C): quietly, status = 130, what shells
    #   report for a program stopped by Ctrl-C.
    status = chat(server)
    server.close()
    sys.exit(status)


if __name__ == "__main__":
    main()
