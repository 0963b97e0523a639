"""Chat server, stage 2 (naming): every message is a command.

New in this stage: echo is gone.  Each payload is UTF-8 text holding one
command, and each command gets exactly one reply:
    NAME <name>   take a name (or change it)      -> HELLO <name>
    GET_NAMES     who is here                     -> NAMES <name> <name> ...
A name belongs to one client at a time; it is free again once that client
renames or leaves.  Anything else gets "ERROR <reason>".

One thread serves every client.  Sockets are non-blocking and a selector
tells us which ones are ready, so the server never waits on a single client:

    while True:
        for each socket that is ready:
            listening socket readable  -> accept a new client
            client socket readable     -> receive bytes, handle whole messages
            client socket writable     -> send the bytes that did not fit before
        send each client what this round queued for it (one send() each)

Your part: TODO 2.1 to 2.5 below (docs/students.md § Stage 2).  Everything from
stage 1 is here and works: the select loop, the framing, the queues, and
removing clients.  Until a TODO is done, a stand-in runs in its place: a
command gets "ERROR not implemented yet: ...", and the server says so once
on standard error.

    python chat_server.py [--host HOST] [--port PORT] [--verbose]
"""

import argparse
import os
import selectors
import socket
import sys

# `import protocol` must find protocol.py from any working directory.  In the kit
# it is two folders up (kit/protocol.py, for kit/stages/1_echo/); a hand-in may
# instead keep it next to the stage folders.  Python looks in both, nearer first.
STAGE_FOLDER = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(STAGE_FOLDER), os.path.dirname(os.path.dirname(STAGE_FOLDER))]

import protocol  # noqa: E402  (must come after the sys.path lines)

STAGE = 2
RECV_SIZE = 4096       # the most bytes we take from a socket in one recv()
SELECT_TIMEOUT = 1.0   # seconds; see serve_forever()
DROP_SIZE = 1 << 20    # hang_up(): the most unread bytes dropped before a close

selector = selectors.DefaultSelector()   # which sockets to watch, and for what
names = {}                               # name -> the Client holding it
clients_to_send = set()                  # clients with messages queued this round
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
        self.name = None                    # its name, once it has one


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
        print("TODO %s not implemented yet: %s (docs/students.md § Stage %d)"
              % (todo, what, STAGE), file=sys.stderr, flush=True)
    return protocol.refusal("not implemented yet: %s (TODO %s)" % (what, todo))


# --- Clients arriving and leaving -------------------------------------------

def accept_client(listener):
    """The listening socket is readable: a new client is connecting."""
    try:
        sock, address = listener.accept()
    except OSError:
        return   # it gave up (reset) before we got to it; the listener is fine
    # Non-blocking: recv() and send() never wait.  They do what can be done
    # now (send() may take only part of the bytes) or raise BlockingIOError,
    # so one slow client can never freeze the server and all the others.
    sock.setblocking(False)
    client = Client(sock, address)
    selector.register(sock, selectors.EVENT_READ, client)
    log("%s:%d connected" % (address[0], address[1]))


def remove_client(client, reason):
    """Forget a client and free everything it held: its socket and its name."""
    log("%s:%d %s" % (client.address[0], client.address[1], reason))
    selector.unregister(client.sock)
    client.sock.close()
    client.connected = False
    release_name(client)


# --- Receiving --------------------------------------------------------------

def receive_from(client):
    """The socket is readable: take the bytes that arrived, and handle them."""
    try:
        data = client.sock.recv(RECV_SIZE)
    except BlockingIOError:
        return   # nothing to read after all; select will tell us again
    except OSError:
        # The connection failed: most often reset (ConnectionResetError), because
        # the client closed its socket before reading all we sent it.  Either way
        # it is gone, just as if it had closed: one way out for both, below.
        data = b""
    if not data:   # b"": it closed its end of the connection (or, above, it failed)
        remove_client(client, "disconnected")
        return
    handle_received(client, data)


def handle_received(client, data):
    """Rebuild whole messages from the bytes that arrived; handle each one."""
    for payload in client.decoder.feed(data):
        handle_payload(client, payload)
    if client.decoder.error is not None:
        # A bad header: we can no longer tell where its messages start.  The
        # messages before it were handled as usual; now say why, then hang up.
        start_closing(client)
        queue_message(client, protocol.refusal(client.decoder.error))


def handle_payload(client, payload):
    """Run one command and queue its reply (every command gets exactly one)."""
    # TODO 2.1: Run the command, and queue exactly one reply for the client that
    #   sent it (docs/students.md § Stage 2).  Echo is gone: every payload is one command now.
    #   Decode it as UTF-8 first: bytes that are not UTF-8 raise UnicodeDecodeError,
    #   and get "ERROR <reason>" (the connection stays open).
    #   The command is the text up to the first space, its argument all the rest
    #   (str.partition()).  NAME goes to take_name() and GET_NAMES to list_names(),
    #   which return the reply; anything else, the empty payload too, gets
    #   "ERROR <reason>".  Compare with protocol.CMD_NAME and protocol.CMD_GET_NAMES.
    #   Pitfalls: GET_NAMES takes no argument ("GET_NAMES now" is unknown); and
    #   str.split() would lose the spaces of "NAME a b", whose name "a b" is invalid.
    # Until then, every command gets an ERROR that names it:
    command = payload.decode("utf-8", "replace").partition(" ")[0]
    queue_message(client, not_implemented("2.1", command[:30] or "commands"))


# --- Commands: each returns the reply for the client that sent it -----------

def is_valid_name(name):
    """1 to 16 characters (not bytes), none of them whitespace."""
    # TODO 2.2: Return True only for a valid name (docs/students.md § Stage 2): 1 to
    #   protocol.MAX_NAME_LENGTH characters, none of them whitespace.  `name` is a
    #   str, so len() counts characters, as the rule does ("zoë" is 3 characters,
    #   4 bytes).  Pitfall: looking only for " " lets tabs and other Unicode spaces
    #   through; str.isspace() knows them all.
    # Until then, every name is accepted:
    not_implemented("2.2", "the name rules: every name is accepted")
    return True


def take_name(client, name):
    """NAME <name>: the client gets the name if it is valid and nobody else has it."""
    # TODO 2.3: Give the client the name if it may have it, and return the reply
    #   (docs/students.md § Stage 2).  An invalid name (is_valid_name()), or one that another
    #   client holds, gets "ERROR <reason>" and changes nothing; asking again for
    #   your own name is fine.  `names` maps every name held to its Client, so one
    #   look-up tells who holds a name.  On success, record the name in client.name
    #   and in `names`, and reply "HELLO <name>" (protocol.REPLY_HELLO).
    #   Pitfall: a rename must free the old name at once (release_name()), or it
    #   stays taken for good.
    return not_implemented("2.3", "NAME")


def release_name(client):
    """Free the client's name, if it has one, so that others can take it."""
    if client.name is not None:
        # TODO 2.4: Free the client's name (docs/students.md § Stage 2): take it out of
        #   `names`, and forget it in client.name.  take_name() calls this for a
        #   rename; remove_client() and start_closing() call it when the client
        #   leaves.  Pitfall: a name left in `names` outlives its client, and then
        #   nobody can ever take it.
        not_implemented("2.4", "names are never freed")


def list_names():
    """GET_NAMES: "NAMES" and every name now held, sorted."""
    # TODO 2.5: Return the reply to GET_NAMES (docs/students.md § Stage 2): "NAMES",
    #   then every name now held, sorted by plain string order (sorted(): capitals
    #   before small letters), each after a single space; "NAMES" alone when nobody
    #   has a name ("NAMES " + ... leaves a space there; str.join() does not).
    #   Pitfall: a space at the end, or two in a row.
    return not_implemented("2.5", "GET_NAMES")



# --- Sending ----------------------------------------------------------------
# We never wait to send: a client that stops reading fills its socket's buffer,
# and a send() that waited for room would freeze the server and every client.
#   * while a round of select() is handled, replies only go into the client's
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


def send_round_output():
    """End of a round of select(): send each client what the round queued for it."""
    for client in clients_to_send:
        if client.connected:   # it may have been removed since (a reset)
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

    Call it just before queueing the client's last message (the ERROR).
    Its name is free from now on.
    """
    client.closing = True
    release_name(client)


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


def parse_arguments():
    """Read --host, --port and --verbose from the command line."""
    parser = argparse.ArgumentParser(description="Chat server, stage %d." % STAGE)
    parser.add_argument("--host", default=protocol.LISTEN_IP, help="address to listen on")
    parser.add_argument("--port", type=int, default=protocol.SERVER_PORT, help="port to listen on")
    parser.add_argument("--verbose", action="store_true", help="print what happens to each client")
    arguments = parser.parse_args()
    if not 0 <= arguments.port <= 65535:   # else bind() would fail with a traceback
        parser.error("argument --port: %d is not a port number (0 to 65535)" % arguments.port)
    return arguments


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
