"""Chat server, stage 1 (echo): every message comes back to its sender.

Many clients at once, and messages may arrive in any pieces: the server
rebuilds each message from its framing (see protocol.py), sends it back
unchanged, and answers bytes that break the framing with "ERROR <reason>"
before closing that connection.

One thread serves every client.  Sockets are non-blocking and a selector
tells us which ones are ready, so the server never waits on a single client:

    while True:
        for each socket that is ready:
            listening socket readable  -> accept a new client
            client socket readable     -> receive bytes, handle whole messages
            client socket writable     -> send queued bytes

Your part: TODO 1.1 to 1.4 below (README § Framing, § Stage 1).  The rest,
the select loop and the sending side, is given and works.  Until a TODO is
done, a stand-in runs in its place and says so once on standard error.

    python chat_server.py [--host HOST] [--port PORT] [--verbose]
"""

import argparse
import os
import selectors
import socket
import sys

# Let `import protocol` find the kit's protocol.py, two folders up, from any working directory.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import protocol  # noqa: E402  (must come after the sys.path line)

STAGE = 1
RECV_SIZE = 4096       # the most bytes we take from a socket in one recv()
SELECT_TIMEOUT = 1.0   # seconds; see serve_forever()

selector = selectors.DefaultSelector()   # which sockets to watch, and for what
verbose = False                          # set by --verbose


class Client:
    """Everything the server keeps about one connected client."""

    def __init__(self, sock, address):
        self.sock = sock
        self.address = address              # (ip, port): only for log lines
        self.decoder = protocol.Decoder()   # rebuilds its messages from the byte stream
        self.outgoing = bytearray()         # framed bytes not yet sent to it
        self.closing = False                # True: send what is queued, then close
        self.connected = True               # False once remove_client() is done


def log(text):
    """Print one line about what happens, only with --verbose."""
    if verbose:
        print(text, flush=True)


todos_reported = set()   # the TODOs not_implemented() has already reported


def not_implemented(todo, what):
    """The stand-in for a TODO not done yet: say so, and return an ERROR reply about it.

    It says it once, on standard error, so you see it in the server's window
    (and the grader shows it when a check fails).  Once every TODO is done,
    nothing calls it any more: delete it.
    """
    if todo not in todos_reported:
        todos_reported.add(todo)
        print("TODO %s not implemented yet: %s (README § Stage %d)" % (todo, what, STAGE),
              file=sys.stderr, flush=True)
    return "%s not implemented yet: %s (TODO %s)" % (protocol.REPLY_ERROR, what, todo)


# --- Sending ----------------------------------------------------------------
# We never call send() just because we have something to say: a client that
# stops reading fills its socket's buffer, and then send() would block (or,
# non-blocking, send only part).  So outgoing bytes wait in the client's queue,
# and we write them when select reports that its socket is writable.

def queue_message(client, payload):
    """Queue one message for the client; it is sent when its socket is writable."""
    client.outgoing += protocol.frame(payload)
    update_events(client)


def update_events(client):
    """Tell the selector what to report for this client's socket.

    Readable: always, unless the client is leaving.  Writable: only while its
    queue holds bytes.  (A socket is writable almost all the time, so asking
    with an empty queue would wake select() again and again for nothing.)
    """
    events = selectors.EVENT_WRITE if client.outgoing else 0
    if not client.closing:
        events |= selectors.EVENT_READ
    selector.modify(client.sock, events, client)


def send_queued(client):
    """The socket is writable: send as much of the queue as the system takes."""
    try:
        sent = client.sock.send(client.outgoing)
    except BlockingIOError:
        return   # not writable after all; select will tell us again
    except ConnectionError:   # reset or broken pipe: it closed without reading
        remove_client(client, "disconnected")
        return
    del client.outgoing[:sent]
    if client.outgoing:
        return   # the rest goes the next time the socket is writable
    if client.closing:
        remove_client(client, "left")
    else:
        update_events(client)


def start_closing(client):
    """Stop reading from the client; close it as soon as its queue is sent.

    Call it just before queueing the client's last message (the ERROR).
    """
    client.closing = True


# --- Receiving --------------------------------------------------------------

def receive_from(client):
    """The socket is readable: take the bytes that arrived, handle whole messages."""
    # TODO 1.2: Take the bytes that arrived, and notice a client that has left
    #   (README § Stage 1).
    #   - data = client.sock.recv(RECV_SIZE) returns what has arrived so far, up to
    #     RECV_SIZE bytes: maybe half a message, maybe several.  Call it once, never
    #     in a loop waiting for more: select() calls us again when more arrives.
    #   - BlockingIOError: nothing to read after all; just return.
    #   - An empty result (b"") means the client closed its end; ConnectionError
    #     means its connection was reset.  Either way it is gone: call
    #     remove_client(client, "disconnected") and return.  The others carry on.
    # TODO 1.3: Rebuild the messages and hand on each one (README § Framing).
    #   - payloads = client.decoder.feed(data).  The client's own Decoder keeps
    #     an unfinished message until the rest arrives, and returns the payloads
    #     now complete: none, one or several.
    #   - It raises protocol.ProtocolError on a bad header: from there on we can't
    #     tell where messages start.  Call start_closing(client), then queue
    #     "ERROR <reason>" with queue_message(); send_queued() sends it and then
    #     closes the connection.  Return.
    #   - For each payload, in order: handle_payload(client, payload).
    # Until both are done, we hang up on a client as soon as it sends anything:
    not_implemented("1.2", "received bytes are not read: the client is hung up on")
    remove_client(client, "hung up on (TODO 1.2)")


def handle_payload(client, payload):
    """Echo: send the payload back to its sender, unchanged (even if empty)."""
    # TODO 1.4: Echo (README § Stage 1): queue the payload, unchanged, for the client
    #   that sent it, with queue_message().  Queued, not sent: send_queued() writes it
    #   when select() reports that the client's socket can take it.
    # Until then, every message gets this ERROR instead of its echo:
    queue_message(client, not_implemented("1.4", "echo"))


# --- Clients arriving and leaving -------------------------------------------

def accept_client(listener):
    """The listening socket is readable: a new client is connecting."""
    sock, address = listener.accept()
    # TODO 1.1: Serve the new client (README § Stage 1).
    #   - sock.setblocking(False).  Non-blocking: recv() and send() never wait.  They
    #     do what can be done now (send() may take only part of the bytes) or raise
    #     BlockingIOError, so one slow client can never freeze the server and all
    #     the others.
    #   - client = Client(sock, address): its decoder and its queue of bytes to send.
    #   - selector.register(sock, selectors.EVENT_READ, client).  From then on,
    #     select() reports when the client sends something, and serve_forever()
    #     hands `client` (the key's data) to serve_client().
    #   - log("%s:%d connected" % (address[0], address[1])), shown with --verbose.
    # Until then, every new client is hung up on at once.  (It must be accepted all
    # the same: a connection nobody accepts keeps the listening socket readable, so
    # select() would return at once, again and again, and spin the processor.)
    not_implemented("1.1", "new clients are accepted, then hung up on at once")
    sock.close()


def remove_client(client, reason):
    """Forget a client and free everything it held: its socket."""
    log("%s:%d %s" % (client.address[0], client.address[1], reason))
    selector.unregister(client.sock)
    client.sock.close()
    client.connected = False


# --- The event loop ---------------------------------------------------------

def serve_client(client, events):
    """Handle what select reported for one client's socket.

    A client removed earlier in this round of select() may still be listed,
    and reading may remove it before writing: hence the `connected` checks.
    """
    if events & selectors.EVENT_READ and client.connected:
        receive_from(client)
    if events & selectors.EVENT_WRITE and client.connected:
        send_queued(client)


def serve_forever(listener):
    """Wait for ready sockets and handle them, forever."""
    while True:
        # The timeout lets Python notice Ctrl-C on Windows, where it cannot
        # interrupt a waiting select(): at least once a second, we wake up.
        for key, events in selector.select(timeout=SELECT_TIMEOUT):
            if key.fileobj is listener:
                accept_client(listener)
            else:
                serve_client(key.data, events)


def create_listener(host, port):
    """Return a non-blocking socket listening on host:port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if os.name != "nt":
        # When a server stops, its closed connections linger for a minute or
        # two (TIME_WAIT), and bind() would fail with "Address already in use"
        # until they are gone.  This lets a restarted server bind at once.
        # (Not on Windows, where it would let another program share the port.)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen()
    listener.setblocking(False)   # accept() must never wait either
    return listener


def parse_arguments():
    """Read --host, --port and --verbose from the command line."""
    parser = argparse.ArgumentParser(description="Chat server, stage %d." % STAGE)
    parser.add_argument("--host", default=protocol.LISTEN_IP, help="address to listen on")
    parser.add_argument("--port", type=int, default=protocol.SERVER_PORT, help="port to listen on")
    parser.add_argument("--verbose", action="store_true", help="print what happens to each client")
    return parser.parse_args()


def main():
    """Listen, then serve clients until the program is stopped."""
    global verbose
    arguments = parse_arguments()
    verbose = arguments.verbose
    try:
        listener = create_listener(arguments.host, arguments.port)
    except OSError as error:
        sys.exit("Cannot listen on %s:%d: %s" % (arguments.host, arguments.port, error))
    selector.register(listener, selectors.EVENT_READ)
    print("Chat server (stage %d) listening on %s:%d" % (STAGE, arguments.host, arguments.port),
          flush=True)
    serve_forever(listener)


if __name__ == "__main__":
    main()
