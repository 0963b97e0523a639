"""Chat server, stage 4 (exit): clients leave with EXIT, or just vanish.

New in this stage: EXIT is answered with BYE, the connection closes once BYE
is sent, and whatever the client sent after EXIT is ignored.  Its name is
freed at once, as for a client that vanishes without EXIT (closed, reset).
Ctrl-C stops the server cleanly.

One thread serves every client.  Sockets are non-blocking and a selector
tells us which ones are ready, so the server never waits on a single client:

    while True:
        for each socket that is ready:
            listening socket readable  -> accept a new client
            client socket readable     -> receive bytes, handle whole messages
            client socket writable     -> send the bytes that did not fit before
        send each client what this round queued for it (one send() each)

Your part: TODO 4.1 to 4.3 below (docs/students.md § Stage 4).  Everything from
stages 1 to 3 is here and works, clients that close or vanish included.
Until TODO 4.2 is done, EXIT gets the reply
"ERROR not implemented yet: EXIT (TODO 4.2)", and the server says so once
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

STAGE = 4
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
    # Send small messages at once.  TCP holds a small write back while an earlier
    # one is not yet acknowledged, to merge it with more (Nagle's algorithm), and
    # a client that only receives, like the recipient of a FROM, acknowledges
    # late on purpose (delayed ACK: 40 ms on Linux, more elsewhere).  Together
    # they make some messages wait tens of milliseconds.  send_queued() already
    # sends all that waits for a client in one send(): we need no merging.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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
        if not client.connected:
            return   # removed: too much waited for it to read (see queue_message)
        # TODO 4.1: Nothing after EXIT (docs/students.md § Stage 4).  Once a command has made
        #   the client leave (EXIT sets client.closing: TODO 4.2), ignore the rest of
        #   what it sent, even what came in the same recv().  BYE must be its last
        #   reply, and a later command (a NAME, say) must not act for a client that
        #   is leaving.  Pitfall: leaving the loop with break still runs the framing
        #   check below it, so a bad header after EXIT would get an ERROR after BYE.
    if client.decoder.error is not None:
        # A bad header: we can no longer tell where its messages start.  The
        # messages before it were handled as usual; now say why, then hang up.
        start_closing(client)
        queue_message(client, protocol.refusal(client.decoder.error))


def handle_payload(client, payload):
    """Run one command and queue its reply (every command gets exactly one)."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        queue_message(client, protocol.refusal("messages must be UTF-8 text"))
        return
    command, _, argument = text.partition(" ")
    if command == protocol.CMD_NAME:
        reply = take_name(client, argument)
    elif text == protocol.CMD_GET_NAMES:
        reply = list_names()
    elif command == protocol.CMD_MSG:
        reply = send_private_message(client, argument)
    elif text == protocol.CMD_EXIT:
        reply = leave(client)
    else:
        reply = protocol.refusal("unknown command")
    queue_message(client, reply)


# --- Commands: each returns the reply for the client that sent it -----------

def is_valid_name(name):
    """1 to 16 characters (not bytes), none of them whitespace."""
    return (1 <= len(name) <= protocol.MAX_NAME_LENGTH
            and not any(character.isspace() for character in name))


def take_name(client, name):
    """NAME <name>: the client gets the name if it is valid and nobody else has it."""
    if not is_valid_name(name):
        return protocol.refusal("a name is 1 to %d characters, without spaces"
                                % protocol.MAX_NAME_LENGTH)
    holder = names.get(name)
    if holder is not None and holder is not client:
        return protocol.refusal("the name %s is taken" % name)
    release_name(client)   # renaming frees the old name at once
    client.name = name
    names[name] = client
    return "%s %s" % (protocol.REPLY_HELLO, name)


def release_name(client):
    """Free the client's name, if it has one, so that others can take it."""
    if client.name is not None:
        del names[client.name]
        client.name = None


def list_names():
    """GET_NAMES: "NAMES" and every name now held, sorted."""
    return " ".join([protocol.REPLY_NAMES] + sorted(names))


def send_private_message(sender, argument):
    """MSG <name> <text>: push FROM to the recipient, reply SENT to the sender."""
    recipient_name, _, text = argument.partition(" ")
    if sender.name is None:
        return protocol.refusal("take a name (NAME <name>) before sending messages")
    if not text:
        return protocol.refusal("usage: MSG <name> <text>")
    if recipient_name == sender.name:
        return protocol.refusal("you cannot send a message to yourself")
    recipient = names.get(recipient_name)
    if recipient is None:
        return protocol.refusal("nobody has that name")
    push = "%s %s %s" % (protocol.PUSH_FROM, sender.name, text)
    if len(push.encode("utf-8")) > protocol.MAX_MSG_LENGTH:
        return protocol.refusal("the text is too long to deliver with your name in front")
    queue_message(recipient, push)
    return "%s %s" % (protocol.REPLY_SENT, recipient_name)


def leave(client):
    """EXIT: reply BYE; the connection closes once BYE is sent."""
    # TODO 4.2: Say goodbye (docs/students.md § Stage 4): the reply is "BYE"; then
    #   the server stops reading this client, frees its name at once, and closes
    #   the connection once everything queued for it, BYE last, is sent
    #   (start_closing(), below, does exactly that); return the reply,
    #   protocol.REPLY_BYE.
    #   Pitfall: closing the socket here loses BYE, and every reply still queued.
    return not_implemented("4.2", "EXIT")


# --- Sending ----------------------------------------------------------------
# We never wait to send: a client that stops reading fills its socket's buffer,
# and a send() that waited for room would freeze the server and every client.
#   * while a round of select() is handled, replies and pushes only go into
#     the client's queue (queue_message);
#   * at the end of the round, each client gets all that the round queued for
#     it in one send() (send_round_output).  On a non-blocking socket send()
#     never waits: it takes what fits in the system's buffer, often all of it;
#   * only when bytes did not fit (the client reads slowly, or not at all) do
#     we ask select to report when its socket is writable again.

def queue_message(client, payload):
    """Queue one message for the client; it is sent at the end of this round."""
    client.outgoing += protocol.frame(payload)
    if len(client.outgoing) > protocol.MAX_BACKLOG:
        # It is not reading. Keeping its messages forever would eat our memory.
        remove_client(client, "did not read its messages (over 1 MiB waiting)")
        return
    clients_to_send.add(client)


def send_round_output():
    """End of a round of select(): send each client what the round queued for it."""
    for client in clients_to_send:
        if client.connected:   # it may have been removed since (reset, over 1 MiB)
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

    Call it just before queueing the client's last message (ERROR or BYE).
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


def close_everything():
    """Close every socket the selector watches (the listener and all clients)."""
    # TODO 4.3 (also in main): Close every socket the selector watches, the
    #   listener and every client, then the selector itself (docs/students.md § Stage 4).
    #   selector.get_map() maps each watched socket to its key, and key.fileobj is
    #   the socket.  Pitfall: selector.close() alone closes none of the sockets.
    not_implemented("4.3", "close_everything() closes nothing")


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
    """Listen, then serve clients until Ctrl-C."""
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
    # TODO 4.3 (also in close_everything): Stop cleanly on Ctrl-C (docs/students.md § Stage 4).
    #   Ctrl-C raises KeyboardInterrupt wherever the program is, most likely inside
    #   select().  It is how a server is meant to stop, not an error: catch it around
    #   serve_forever(), close_everything(), and print "Server stopped."; the program
    #   then ends with status 0, and no traceback.
    #   Pitfall: a bare "except:" catches KeyboardInterrupt too, and a server that
    #   carries on after it can't be stopped.
    serve_forever(listener)


if __name__ == "__main__":
    main()
