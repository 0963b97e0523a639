"""Stage 4, exit: EXIT and BYE, names freed when clients leave (or vanish), Ctrl-C.

A check needs only what it uses: 4.1 judges that EXIT's BYE is followed by the
close, and nothing else needs it (the other EXIT checks judge what comes before
and after BYE; the vanished clients, Ctrl-C and the regressions do not use EXIT).
Every check but 4.1 needs a server that answers at all (grader/chat.py).
"""

import re
import time

from grader.chat import (exchange, expect_names, expect_names_reply, named,
                         names_listed, overlong_push, same_names, split_character_message,
                         unnamed_clients_leave)
from grader.checks import ANSWERING, check
from grader.framing import frame
from grader.wire import MESSAGE, CheckFailed, show


HINT_EXIT = ("'EXIT' gets the reply 'BYE'; then the server closes that connection and frees "
             "the client's name (docs/students.md § Stage 4).")
HINT_FREED = ("A freed name is free at once: GET_NAMES no longer lists it, NAME can take it, "
              "and MSG to it gets ERROR. Delete it from your names table in the same place "
              "you forget the client (docs/students.md § Stage 4).")
HINT_VANISH = ("A client may leave without EXIT: recv() returns b'' (it closed) or raises "
               "ConnectionResetError (it was reset). Either way, unregister and close its "
               "socket, free its name, and keep serving the others (docs/students.md § Stage 4).")
HINT_FRAMING = ("TCP is a byte stream: keep a buffer per client and take out only complete "
                "messages (docs/students.md § Framing).")
HINT_BYE_LAST = ("BYE is the client's last reply: anything it sent after EXIT, even in the same "
                 "write, is ignored. Once a client has said EXIT, handle none of its messages "
                 "and queue nothing more for it (docs/students.md § Stage 4).")

POLL_LIMIT = 2.0        # how long a vanished client's name may take to disappear
POLL_PAUSE = 0.02       # the pause between two GET_NAMES while we wait for that
CTRL_C_LIMIT = 5.0      # how long the server may take to exit after Ctrl-C
RESET_BURST = 50        # check 7: GET_NAMES sent just before the connection is reset


def says_exit(peer, hint=HINT_EXIT):
    """peer sends EXIT: it must get BYE, and nothing after it (the close that should come
    then is check 4.1's business)."""
    peer.send("EXIT")
    peer.expect("BYE", hint=hint)
    peer.expect_end(hint=HINT_BYE_LAST)


def wait_for_names(asker, expected, hint):
    """asker sends GET_NAMES until the reply lists the names `expected` (in any order, however
    spaced: the format is stage 2's business), for at most POLL_LIMIT seconds.

    A client that vanishes sends no command: the server learns of it on its own
    time (recv() returns b'' or raises), possibly after it has answered someone
    else, so one GET_NAMES right after the close may still list the name. We ask
    again until the name is gone. Each try waits for its reply (a real event);
    only the short pause between tries is fixed. Any reply other than NAMES, or
    none at all, fails at once.
    """
    limit = asker.conv.patient(POLL_LIMIT)   # longer for a server at a breakpoint
    deadline = time.monotonic() + limit
    tries = 0
    while True:
        asker.send("GET_NAMES", log=False)   # each try is summed up in one line below
        tries += 1
        kind, payload = asker.read_event()
        if kind != MESSAGE or names_listed(payload) is None:
            asker.conv.log("%-8s → server  'GET_NAMES' (try %d)" % (asker.label, tries))
            asker.conv.fail("%s ← server  'NAMES …'" % asker.label,
                            asker.describe_event(kind, payload),
                            "the server must keep answering the others when a client "
                            "vanishes. " + HINT_VANISH)
        if same_names(payload, expected) or time.monotonic() >= deadline:
            break
        time.sleep(POLL_PAUSE)   # not a synchronisation: only spaces out the tries
    asker.conv.log("%-8s → server  'GET_NAMES' (asked %d time%s)"
                   % (asker.label, tries, "" if tries == 1 else "s"))
    asker.conv.log("%-8s ← server  %s" % (asker.label, show(payload)))
    if not same_names(payload, expected):
        asker.conv.fail("%s ← server  %s (the names in any order) within %.0f s"
                        % (asker.label, show(" ".join(["NAMES"] + sorted(expected))), limit),
                        "after %d tries in %.0f s, still %s" % (tries, limit, show(payload)),
                        hint)


@check(1, "EXIT gets BYE, then the connection is closed", points=2, needs=None)
def test_exit_bye_close(server):
    """alice takes a name and sends 'EXIT': she gets 'BYE', then the server closes her connection."""
    alice = named(server, "alice")
    alice.send("EXIT")
    alice.expect("BYE", hint="reply 'BYE' to EXIT, and make sure it is actually written before "
                             "you close: queue it, and close only once the queue is empty. "
                             + HINT_EXIT)
    alice.expect_closed(hint="after BYE the server closes the connection itself: once BYE is "
                             "sent, unregister the socket and close it (docs/students.md § Stage 4).")


@check(2, "After EXIT the name is free at once (GET_NAMES, MSG, NAME)", points=2, needs=ANSWERING)
def test_exit_frees_name(server):
    """alice exits; bob's GET_NAMES lists only him, his 'MSG alice' gets ERROR, carol may take 'alice'."""
    alice = named(server, "alice")
    bob = named(server, "bob")
    says_exit(alice)
    # A select server frees the name as it handles EXIT, before bob asks; a threaded one
    # may free it just after closing, so bob asks again (bounded) if it is still listed.
    wait_for_names(bob, ["bob"], hint="alice said EXIT, so her name must leave the list. "
                                          + HINT_FREED)
    bob.send("MSG alice are you there?")
    bob.expect_error(hint="nobody holds 'alice' any more, so a MSG to her gets ERROR (and must "
                          "not crash on her closed socket). " + HINT_FREED)
    carol = named(server, "carol")
    carol.send("NAME alice")
    carol.expect("HELLO alice", hint="alice's name was freed by her EXIT, so another client may "
                                     "take it. " + HINT_FREED)
    exchange(bob, carol, "bob", "alice", "hi new alice",
             hint="'alice' now belongs to carol: a MSG to alice must reach carol's connection, "
                  "not the old one. " + HINT_FREED)


@check(3, "A client without a name may EXIT too", needs=ANSWERING)
def test_unnamed_exit(server):
    """A client that never took a name sends 'EXIT': BYE, then the close; others are served."""
    nameless = server.connect("nameless")
    says_exit(nameless, hint="EXIT works for every client, named or not: with no name there is "
                             "simply no name to free. " + HINT_EXIT)
    bob = named(server, "bob")
    expect_names(bob, ["bob"], hint="after an unnamed client leaves, the server serves on "
                                    "(docs/students.md § Stage 4).")


@check(4, "EXIT after a burst: every earlier reply comes before BYE", needs=ANSWERING)
def test_exit_after_burst(server):
    """alice sends 20 × 'GET_NAMES' and 'EXIT' in one write: 20 × 'NAMES alice', then 'BYE',
    then nothing more."""
    alice = named(server, "alice")
    count = 20
    alice.send_raw(b"".join([frame("GET_NAMES")] * count) + frame("EXIT"),
                   note="%d × 'GET_NAMES', then 'EXIT', all in one write" % count)
    for _ in range(count):
        expect_names_reply(alice, ["alice"],
                           hint="every command before EXIT gets its reply, in order, and all of "
                                "them are sent before the connection closes: close only when "
                                "the client's queue is empty. " + HINT_FRAMING)
    alice.expect("BYE", hint="EXIT's reply BYE comes after the replies to the earlier commands. "
                             + HINT_EXIT)
    alice.expect_end(hint=HINT_BYE_LAST)


def check_name_freed(server, watcher, name, still_held, hint):
    """`name`'s holder has vanished: wait until the server has noticed (GET_NAMES lists
    only the names `still_held`), then prove the name is free for MSG and NAME too."""
    wait_for_names(watcher, still_held, hint=hint)
    watcher.send("MSG %s anyone there?" % name)
    watcher.expect_error(hint="'%s' left, so a MSG to that name gets ERROR. " % name + HINT_FREED)
    newcomer = server.connect("newcomer")
    newcomer.send("NAME " + name)
    newcomer.expect("HELLO " + name, hint="'%s' left, so another client may take the name. "
                                          % name + HINT_FREED)
    return newcomer


@check(5, "A client that closes without EXIT loses its name", points=2, needs=ANSWERING, kept=True)
def test_close_frees_name(server):
    """alice closes her socket without EXIT; the server frees 'alice' (bob's GET_NAMES, within 2 s)."""
    alice = named(server, "alice")
    bob = named(server, "bob")
    alice.close("closes its connection, without EXIT")
    check_name_freed(server, bob, "alice", ["bob"],
                     hint="alice closed her connection without EXIT, yet her name is still "
                          "listed: when recv() returns b'', remove the client completely: "
                          "unregister and close its socket, and free its name "
                          "(docs/students.md § Stage 4).")


@check(6, "A reset connection loses its name; the server serves on", points=2, needs=ANSWERING, kept=True)
def test_reset_frees_name(server):
    """alice's connection is reset (SO_LINGER 0); the server frees 'alice' and serves bob and a newcomer."""
    alice = named(server, "alice")
    bob = named(server, "bob")
    alice.reset()
    newcomer = check_name_freed(server, bob, "alice", ["bob"],
                                hint="alice's connection was reset, yet her name is still "
                                     "listed: recv() raises ConnectionResetError for a reset; "
                                     "catch it (or any OSError) and clean up exactly as for "
                                     "b'': unregister, close, free the name "
                                     "(docs/students.md § Stage 4).")
    exchange(bob, newcomer, "bob", "alice", "hello again",
             hint="after a reset the server keeps serving. " + HINT_VANISH)


@check(7, "A reset with replies waiting does not stop the server", needs=ANSWERING, kept=True)
def test_reset_with_replies_waiting(server):
    """rude sends 50 × 'GET_NAMES' in one write and is reset without reading; bob is still served."""
    bob = named(server, "bob")
    rude = named(server, "rude")
    rude.send_raw(b"".join([frame("GET_NAMES")] * RESET_BURST),
                  note="%d × 'GET_NAMES' in one write" % RESET_BURST)
    rude.reset()
    check_name_freed(server, bob, "rude", ["bob"],
                     hint="rude was reset while the server still had replies for it: recv() "
                          "and send() on its socket then raise ConnectionResetError or "
                          "BrokenPipeError. Catch OSError around both, and clean up as for a "
                          "close: unregister, close, free the name (docs/students.md § Stage 4).")


@check(8, "Ctrl-C: a clean exit, and the port can be bound at once", points=2, needs=ANSWERING,
       fresh_server=True)
def test_ctrl_c(server, another_server, conversation):
    """With alice connected, Ctrl-C (SIGINT): the server exits within 5 s, no traceback; a new
    server binds the same port at once and serves."""
    alice = named(server, "alice")
    server.interrupt()
    hint_stop = ("catch KeyboardInterrupt around your select loop (try: … except "
                 "KeyboardInterrupt:), close the listening socket and every client socket, "
                 "and let the program end (docs/students.md § Stage 4).")
    status = server.program.wait_exit(CTRL_C_LIMIT)
    if status is None:
        conversation.fail("the server exits within %.0f s of Ctrl-C" % CTRL_C_LIMIT,
                          "it was still running after %.0f s" % CTRL_C_LIMIT,
                          "Ctrl-C must stop the server: does something catch KeyboardInterrupt "
                          "and carry on (a bare 'except:' does)? " + hint_stop)
    conversation.log("(the server exited with status %s)" % status)
    # The server closed first, so its end of alice's connection now lingers (TIME_WAIT):
    # without SO_REUSEADDR, binding the port again fails for a minute or two.
    alice.close("closes its end too")
    if b"Traceback" in server.program.stderr():
        conversation.fail("the server stops quietly on Ctrl-C",
                          "a traceback on its standard error (below)",
                          "a user pressing Ctrl-C should never see a traceback: " + hint_stop)
    port = server.port
    conversation.log("(a new server starts at once on the same port, %d)" % port)
    failed = None
    try:
        fresh = another_server(port=port)
    except CheckFailed as failure:   # add the usual cause to its report
        failed = str(failure)
    if failed is not None:   # the usual cause is the hint: the server's own exit hint is not
        why = ("a stopped server's connections linger for a minute or two (TIME_WAIT), and "
               "bind() fails with 'Address already in use' unless the listening socket sets "
               "SO_REUSEADDR before bind(): listener.setsockopt(socket.SOL_SOCKET, "
               "socket.SO_REUSEADDR, 1) (docs/students.md § Stage 4).")
        told, found = re.subn(r"^Hint: .*$", lambda _: "Hint:     " + why, failed, count=1,
                              flags=re.M)
        raise CheckFailed(told if found else "%s\nHint:     %s" % (failed, why))
    carol = fresh.connect("carol")
    carol.send("NAME carol")
    carol.expect("HELLO carol", hint="the server started again on the same port must serve "
                                     "as usual (docs/students.md § Stage 4).")


@check(9, "Naming still works: a taken name, a rename, GET_NAMES", needs=ANSWERING, kept=True)
def test_naming_still_works(server):
    """carol's 'NAME alice' (taken) gets ERROR; alice renames to ann; GET_NAMES lists ann and
    bob."""
    bob = named(server, "bob")  # noqa: F841 (kept open: it holds the name)
    alice = named(server, "alice")
    carol = server.connect("carol")
    carol.send("NAME alice")
    carol.expect_error(hint="a name held by another client is refused with ERROR, in stage 4 "
                            "too (docs/students.md § Stage 2).")
    alice.send("NAME ann")
    alice.expect("HELLO ann", hint="a named client may rename (docs/students.md § Stage 2).")
    expect_names(carol, ["ann", "bob"], hint="GET_NAMES lists every held name; a rename frees "
                                             "the old name (docs/students.md § Stage 2).")


@check(10, "Messaging still works: FROM, SENT, ERROR for unknown name", needs=ANSWERING, kept=True)
def test_messaging_still_works(server):
    """alice and bob exchange messages (spaces kept); 'MSG zoe hi' gets ERROR."""
    alice = named(server, "alice")
    bob = named(server, "bob")
    hint = ("'MSG <name> <text>' pushes 'FROM <sender> <text>' to the recipient, text kept "
            "exactly, and replies 'SENT <name>' to the sender, in stage 4 too (docs/students.md § Stage 3).")
    exchange(alice, bob, "alice", "bob", "hi  there ", hint=hint)
    exchange(bob, alice, "bob", "alice", "hello back", hint=hint)
    alice.send("MSG zoe hi")
    alice.expect_error(hint="a MSG to a name nobody holds gets ERROR (docs/students.md § Stage 3).")


@check(11, "Framing still works: a bad header, a MSG in pieces", needs=ANSWERING, kept=True)
def test_framing_still_works(server):
    """A bad header gets ERROR and a close; a MSG sent byte by byte is delivered."""
    alice = named(server, "alice")
    bob = named(server, "bob")
    bad = server.connect("bad")
    bad.send_raw(b"abcdEXIT", note="bad header 'abcd'")
    bad.expect_error(hint="a header that is not 4 digits gets 'ERROR <reason>' "
                          "(docs/students.md § Framing).")
    bad.expect_closed(hint="after the ERROR for a bad header, close that connection "
                           "(docs/students.md § Framing).")
    alice.send_bytewise("MSG bob byte by byte")
    bob.expect("FROM alice byte by byte", hint="the MSG arrived in 24 pieces. " + HINT_FRAMING)
    alice.expect("SENT bob", hint="the sender of a delivered MSG gets 'SENT <name>' "
                                  "(docs/students.md § Stage 3).")


@check(12, "Commands after EXIT, even in the same write, are ignored", needs=ANSWERING)
def test_commands_after_exit_ignored(server):
    """alice sends 'EXIT', 'GET_NAMES' and 'NAME zed' in one write: BYE is her last reply,
    and afterwards nobody holds 'zed' (nor 'alice')."""
    bob = named(server, "bob")
    alice = named(server, "alice")
    alice.send_raw(frame("EXIT") + frame("GET_NAMES") + frame("NAME zed"),
                   note="'EXIT', 'GET_NAMES', 'NAME zed', all in one write")
    alice.expect("BYE", hint=HINT_EXIT)
    alice.expect_end(hint=HINT_BYE_LAST)
    wait_for_names(bob, ["bob"], hint="alice said EXIT before 'NAME zed', so she left without "
                                      "taking 'zed', and her own name is free. " + HINT_BYE_LAST)


@check(13, "Clients without a name leave (close, reset); the server goes on", needs=ANSWERING, kept=True)
def test_unnamed_clients_leave(server):
    """ghost (no name) asks GET_NAMES and closes; rude (no name) asks and is reset; alice is
    still served (two round trips), and a newcomer can take a name."""
    unnamed_clients_leave(server)


@check(14, "A MSG whose character is split across two reads", needs=ANSWERING, kept=True)
def test_character_split_across_reads(server):
    """'MSG bob héllo' is sent in two writes, 30 ms apart, cut between the two bytes of
    'é': bob gets 'FROM alice héllo'."""
    split_character_message(server)


@check(15, "A push over 1024 bytes gets ERROR; one of exactly 1024 is delivered",
       needs=ANSWERING, kept=True)
def test_overlong_push(server):
    """max (a 16-character name) sends bo a text whose push 'FROM maximilian_the_2 <text>'
    is exactly 1024 bytes: delivered. Texts one byte longer (in ASCII, then in 'é's) get
    ERROR, bo gets nothing of them, and the server carries on."""
    overlong_push(server)
