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
            client socket writable     -> send queued bytes

Your part: TODO 2.1 to 2.5 below (README § Stage 2).  Everything from
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

# Let `import protocol` find the kit's protocol.py, two folders up, from any working directory.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import protocol  # noqa: E402  (must come after the sys.path line)

STAGE = 2
RECV_SIZE = 4096       # the most bytes we take from a socket in one recv()
SELECT_TIMEOUT = 1.0   # seconds; see serve_forever()

selector = selectors.DefaultSelector()   # which sockets to watch, and for what
names = {}                               # name -> the Client holding it
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
    Its name is free from now on.
    """
    client.closing = True
    release_name(client)


# --- Receiving --------------------------------------------------------------

def receive_from(client):
    """The socket is readable: take the bytes that arrived, handle whole messages."""
    try:
        data = client.sock.recv(RECV_SIZE)
    except BlockingIOError:
        return   # nothing to read after all; select will tell us again
    except ConnectionError:
        # It closed its socket before reading everything we sent it, so its
        # system reset the connection instead of closing it quietly.
        remove_client(client, "disconnected")
        return
    if not data:   # b"" means the client closed its end of the connection
        remove_client(client, "disconnected")
        return
    try:
        payloads = client.decoder.feed(data)
    except protocol.ProtocolError as error:
        # We can no longer tell where its messages start: say why, then hang up.
        start_closing(client)
        queue_message(client, "%s %s" % (protocol.REPLY_ERROR, error))
        return
    for payload in payloads:
        handle_payload(client, payload)


def handle_payload(client, payload):
    """Run one command and queue its reply (every command gets exactly one)."""
    # TODO 2.1: Run the command (README § Stage 2).  Echo is gone: every payload
    #   is one command now, and gets exactly one reply, queued for its sender.
    #   - Decode the payload: text = payload.decode("utf-8").  Bytes that are not
    #     UTF-8 raise UnicodeDecodeError: reply "ERROR <reason>" (the connection
    #     stays open) and return.
    #   - Split off the command: command, _, argument = text.partition(" ").
    #     partition() cuts at the first space only, so the argument of "NAME a b"
    #     is "a b" (an invalid name, which take_name() must refuse).
    #   - Choose the reply:
    #       command == protocol.CMD_NAME    -> reply = take_name(client, argument)
    #       text == protocol.CMD_GET_NAMES  -> reply = list_names()
    #         (the whole text: "GET_NAMES now" is an unknown command)
    #       anything else, the empty payload too -> reply = "ERROR <reason>"
    #   - queue_message(client, reply).
    # Until then, every command gets an ERROR that names it:
    command = payload.decode("utf-8", "replace").partition(" ")[0]
    queue_message(client, not_implemented("2.1", command[:30] or "commands"))


# --- Commands: each returns the reply for the client that sent it -----------

def is_valid_name(name):
    """1 to 16 characters (not bytes), none of them whitespace."""
    # TODO 2.2: Return True only for a valid name (README § Stage 2): 1 to
    #   protocol.MAX_NAME_LENGTH characters, and no whitespace among them (test each
    #   character with str.isspace(), which knows tabs and Unicode spaces too).
    #   `name` is a str, so len(name) counts characters: "zoë" is 3 (and 4 bytes).
    # Until then, every name is accepted:
    not_implemented("2.2", "the name rules: every name is accepted")
    return True


def take_name(client, name):
    """NAME <name>: the client gets the name if it is valid and nobody else has it."""
    # TODO 2.3: Give the client the name, if it may have it (README § Stage 2).
    #   Return the reply; handle_payload() queues it.
    #   - not is_valid_name(name): return "ERROR <reason>"; nothing changes.
    #   - `names` maps every name held to its Client, so names.get(name) tells at
    #     once who holds it.  Another client: return "ERROR <reason>" (taken).
    #     This same client: fine, asking for your own name again gets HELLO.
    #   - Otherwise call release_name(client) first (a rename frees the old name at
    #     once), then record the new one in client.name and in names[name], and
    #     return "HELLO <name>" (protocol.REPLY_HELLO).
    return not_implemented("2.3", "NAME")


def release_name(client):
    """Free the client's name, if it has one, so that others can take it."""
    # TODO 2.4: Delete the client's name from `names`, and set client.name to None
    #   (README § Stage 2).  take_name() calls this for a rename; remove_client()
    #   and start_closing() call it when a client leaves, so that no name outlives
    #   its client.
    if client.name is not None:
        not_implemented("2.4", "names are never freed")


def list_names():
    """GET_NAMES: "NAMES" and every name now held, sorted."""
    # TODO 2.5: Return "NAMES" (protocol.REPLY_NAMES) followed by every name now held,
    #   sorted, each after one space: "NAMES alice bob", or "NAMES" alone when nobody
    #   has a name (README § Stage 2).  sorted(names) gives the keys of `names` in
    #   order, and " ".join(...) puts single spaces between strings.
    return not_implemented("2.5", "GET_NAMES")



# --- Clients arriving and leaving -------------------------------------------

def accept_client(listener):
    """The listening socket is readable: a new client is connecting."""
    sock, address = listener.accept()
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
