"""The chat server's event loop: many clients, one thread, select.

You write this file in stage 1, and every later stage runs it as it is
(`python -m grader next` carries it into the next stage's folder).  What the
server does with each message is not here: each stage's chat_server.py gives
main() its answer() (stage 1: echo), and the functions that free what a stage
keeps for a client that leaves, and stop the server.

Messages may arrive in any pieces: the loop rebuilds each one from its framing
(see protocol.py) and answers bytes that break the framing with
"ERROR <reason>" before closing that connection.  A client that closes, or
whose connection fails, is removed; the others carry on.

Sockets are non-blocking and a selector tells us which ones are ready, so the
server never waits on a single client:

    while True:
        for each socket that is ready:
            listening socket readable  -> accept a new client
            client socket readable     -> receive bytes, answer whole messages
            client socket writable     -> send the bytes that did not fit before
        send each client what this round queued for it (one send() each)

Your part: TODO 1.1 to 1.3 below (docs/students.md § Framing, § Stage 1), and
TODO 1.4 in chat_server.py.  The rest, the select loop and the sending side,
is given and works.  Until a TODO is done, a stand-in runs in its place and
says so once on standard error.
"""

import argparse
import os
import selectors
import socket
import sys

import protocol
from todo import not_implemented   # the TODOs' stand-ins (todo.py, next to protocol.py)

RECV_SIZE = 4096       # the most bytes we take from a socket in one recv()
SELECT_TIMEOUT = 1.0   # seconds; see serve_forever()
DROP_SIZE = 1 << 20    # hang_up(): the most unread bytes dropped before a close

selector = selectors.DefaultSelector()   # which sockets to watch, and for what
clients_to_send = set()                  # clients with messages queued this round
verbose = False                          # set by --verbose
answer = None                            # the stage's answer(client, payload): see main()
forget = None                            # the stage's forget(client), or None: see main()
limit_backlog = None                     # the stage's limit_backlog(client), or None: main()


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


# --- Clients arriving and leaving -------------------------------------------

def accept_client(listener):
    """The listening socket is readable: a new client is connecting."""
    try:
        sock, address = listener.accept()
    except OSError:
        return   # it gave up (reset) before we got to it; the listener is fine
    # Send small messages at once.  TCP holds a small write back while an earlier
    # one is not yet acknowledged, to merge it with more (Nagle's algorithm), and
    # a client that only receives acknowledges late on purpose (delayed ACK: 40 ms
    # on Linux, more elsewhere): together they would make some messages wait.
    # send_queued() already sends all that waits for a client in one send().
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # TODO 1.1: Start serving the new client (docs/students.md § Stage 1).
    #   Goal: from now on select() reports when this client sends something, and
    #   hands serve_forever() its Client (its decoder and its queue: the class
    #   above), which it passes on to serve_client(); --verbose logs the arrival.
    #   The rule: the server never waits on one client, so no call on this socket
    #   may block: recv() and send() must do what they can at once, or say so.
    #   Pitfall: a blocking socket freezes the server, and every other client with
    #   it, as soon as one client is slow.
    #   The calls: sock.setblocking(False); Client(sock, address);
    #   selector.register(sock, selectors.EVENT_READ, client) (select() hands its
    #   last argument back as key.data); log().
    # Until then, every new client is hung up on at once.  (It must be accepted all
    # the same: a connection nobody accepts keeps the listening socket readable, so
    # select() would return at once, again and again, and spin the processor.)
    not_implemented("1.1", "new clients are accepted, then hung up on at once")
    sock.close()


def remove_client(client, reason):
    """Forget a client and free everything it held: its socket, and what the stage kept."""
    log("%s:%d %s" % (client.address[0], client.address[1], reason))
    selector.unregister(client.sock)
    client.sock.close()
    client.connected = False
    if forget is not None:
        forget(client)


# --- Receiving --------------------------------------------------------------

def receive_from(client):
    """The socket is readable: take the bytes that arrived, and handle them."""
    # TODO 1.2: Take the bytes that arrived, and notice a client that has gone
    #   (docs/students.md § Stage 1).  Call client.sock.recv(RECV_SIZE) once, and hand what it
    #   returns to handle_received().  recv() returns what has arrived so far, up to
    #   RECV_SIZE bytes: maybe half a message, maybe several.  Never loop for more:
    #   select() calls this function again when more arrives.
    #   A client goes in one of two ways: recv() returns b"" (it closed its end), or
    #   raises an OSError (its connection failed: reset, say).  Treat both alike:
    #   remove_client(), and the others carry on.  One kind of OSError is harmless:
    #   BlockingIOError only says there was nothing to read after all.
    #   Pitfall: a client whose b"" is ignored stays in select(), which then reports
    #   it readable again and again: the server spins at full speed.
    # Until then, we hang up on a client as soon as it sends anything:
    not_implemented("1.2", "received bytes are not read: the client is hung up on")
    remove_client(client, "hung up on (TODO 1.2)")


def handle_received(client, data):
    """Rebuild whole messages from the bytes that arrived; handle each one."""
    # TODO 1.3: Rebuild whole messages from the bytes, and handle each one
    #   (docs/students.md § Framing).  The client's own decoder (a protocol.Decoder) keeps an
    #   unfinished message until the rest arrives: its feed() returns the payloads
    #   now complete, none, one or several.  Hand each, in order, to handle_payload().
    #   A bad header is a framing error: feed() still returns the whole payloads that
    #   came before it, and sets client.decoder.error.  Handle those first, then
    #   send "ERROR <reason>" (protocol.refusal) and hang up: start_closing(),
    #   then queue_message(); send_queued() closes the connection once it is sent.
    #   (Unless the client is leaving already, client.closing: a later stage's EXIT
    #   queues its last message, and nothing it sent after that is answered.)
    #   Pitfall: closing the socket at once loses the ERROR and the replies before it.
    # Until then, every client that sends something gets this ERROR, then a close:
    start_closing(client)
    queue_message(client, not_implemented("1.3", "messages are not rebuilt from the bytes"))


def handle_payload(client, payload):
    """Answer one whole message the stage's way (chat_server.py's answer())."""
    if client.closing or not client.connected:
        return   # it is leaving (EXIT), or was cut off: nothing more is answered
    answer(client, payload)


# --- Sending ----------------------------------------------------------------
# We never wait to send: a client that stops reading fills its socket's buffer,
# and a send() that waited for room would freeze the server and every client.
#   * while a round of select() is handled, messages only go into the client's
#     queue (queue_message);
#   * at the end of the round, each client gets all that the round queued for
#     it in one send() (send_round_output).  On a non-blocking socket send()
#     never waits: it takes what fits in the system's buffer, often all of it;
#   * only when bytes did not fit (the client reads slowly, or not at all) do
#     we ask select to report when its socket is writable again.

def queue_message(client, payload):
    """Queue one message for the client; it is sent at the end of this round."""
    client.outgoing += protocol.frame(payload)
    clients_to_send.add(client)
    if limit_backlog is not None and client.connected:
        limit_backlog(client)   # a client that never reads may be cut off (stage 3 on)


def send_round_output():
    """End of a round of select(): send each client what the round queued for it."""
    for client in clients_to_send:
        if client.connected:   # it may have been removed since (a reset, say)
            send_queued(client)
    clients_to_send.clear()


def update_events(client):
    """Tell the selector what to report for this client's socket.

    Readable: always, unless the client is leaving.  Writable: only while its
    queue holds bytes that did not fit.  (A socket is writable almost all the
    time, so asking with an empty queue would wake select() again and again.)
    """
    events = selectors.EVENT_WRITE if client.outgoing else 0
    if not client.closing:
        events |= selectors.EVENT_READ
    selector.modify(client.sock, events, client)


def send_queued(client):
    """Send as much of the client's queue as its socket's buffer takes now."""
    try:
        sent = client.sock.send(client.outgoing)
    except BlockingIOError:
        sent = 0   # its buffer is full: nothing fits now
    except OSError:   # reset or broken pipe: it closed without reading all we sent
        remove_client(client, "disconnected")
        return
    del client.outgoing[:sent]
    if client.closing and not client.outgoing:
        hang_up(client)
    else:
        update_events(client)   # writable wanted only while bytes are left


def start_closing(client):
    """Stop reading from the client; close it as soon as its queue is sent.

    Call it just before queueing the client's last message.  What the stage
    kept for the client is freed now: it is leaving.
    """
    client.closing = True
    if forget is not None:
        forget(client)


def hang_up(client):
    """Its last message is sent: end the connection so that the message arrives.

    Closing a socket that still holds bytes the client sent, unread, makes the
    system reset the connection (RST) instead of ending it, and a reset can throw
    away what the client has not read yet: our last message too (Windows does).
    So we end our side of the stream after what we sent (shutdown), read and drop
    what the client sent that we will never handle, and only then close.
    """
    try:
        client.sock.shutdown(socket.SHUT_WR)
        client.sock.recv(DROP_SIZE)   # non-blocking: only what has already arrived
    except OSError:
        pass   # nothing had arrived (BlockingIOError), or the client is gone already
    remove_client(client, "left")


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
        send_round_output()


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


def parse_arguments(stage):
    """Read --host, --port and --verbose from the command line."""
    parser = argparse.ArgumentParser(description="Chat server, stage %d." % stage)
    parser.add_argument("--host", default=protocol.LISTEN_IP, help="address to listen on")
    parser.add_argument("--port", type=int, default=protocol.SERVER_PORT, help="port to listen on")
    parser.add_argument("--verbose", action="store_true", help="print what happens to each client")
    arguments = parser.parse_args()
    if not 0 <= arguments.port <= 65535:   # else bind() would fail with a traceback
        parser.error("argument --port: %d is not a port number (0 to 65535)" % arguments.port)
    return arguments


def main(stage, answer_message, forget_client=None, stop=None, backlog_limit=None):
    """Listen, then serve clients until the program is stopped.

    The stage's chat_server.py says what the server does:
      answer_message(client, payload)  answers one message (queue_message());
      forget_client(client)            frees what the stage keeps for a client
                                       that leaves (its name, from stage 2 on);
      backlog_limit(client)            runs each time a message is queued for a
                                       client: it may cut off one that does not
                                       read (from stage 3 on);
      stop()                           ends the server on Ctrl-C; without it,
                                       Ctrl-C ends it with a traceback.
    """
    global verbose, answer, forget, limit_backlog
    arguments = parse_arguments(stage)
    verbose, answer, forget = arguments.verbose, answer_message, forget_client
    limit_backlog = backlog_limit
    try:
        listener = create_listener(arguments.host, arguments.port)
    except OSError as error:
        sys.exit("Cannot listen on %s:%d: %s" % (arguments.host, arguments.port, error))
    selector.register(listener, selectors.EVENT_READ)
    print("Chat server (stage %d) listening on %s:%d" % (stage, arguments.host, arguments.port),
          flush=True)
    try:
        serve_forever(listener)
    except KeyboardInterrupt:
        if stop is None:
            raise   # no stop() given: Ctrl-C ends the server with a traceback
        stop()
