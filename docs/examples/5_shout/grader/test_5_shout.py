"""Stage 5, shout (an example of a teacher's own stage): SHOUT reaches every other named
client, and only them. docs/teachers.md § A stage of your own adds it to the kit.
"""

from grader.chat import HINT_NAME, named
from grader.checks import ANSWERING, check

HINT_SHOUT = ("SHOUT <text> queues the push 'SHOUT <sender> <text>' for every other client "
              "that has a name, and replies 'SHOUTED <n>' to the sender, n being how many "
              "got it (docs/students.md § Stage 5).")


@check(1, "SHOUT reaches every other named client", points=2, needs=None)
def test_shout_reaches_everyone(server):
    """alice, bob and carol take names; alice shouts 'hi all'.

    bob and carol get 'SHOUT alice hi all'; alice gets 'SHOUTED 2'.
    """
    alice = named(server, "alice")
    bob = named(server, "bob")
    carol = named(server, "carol")
    alice.send("SHOUT hi all")
    for listener in (bob, carol):
        listener.expect("SHOUT alice hi all", hint=HINT_SHOUT)
    alice.expect("SHOUTED 2", hint="the sender does not hear their own shout: it gets the "
                                   "reply 'SHOUTED <n>' only. " + HINT_SHOUT)


@check(2, "A client without a name is not heard, nor is an empty shout")
def test_shout_needs_a_name_and_a_text(server):
    """An unnamed client's 'SHOUT hello' gets ERROR and bob hears nothing of it; bob's
    'SHOUT' alone gets ERROR; then bob's 'SHOUT ok' is heard by nobody: 'SHOUTED 0'."""
    stranger = server.connect("stranger")
    bob = named(server, "bob")
    stranger.send("SHOUT hello")
    stranger.expect_error(hint="a client must take a name (NAME) before it shouts: refuse "
                               "with 'ERROR <reason>'. " + HINT_NAME)
    bob.send("SHOUT")
    bob.expect_error(hint="'SHOUT' alone has no text: refuse it with 'ERROR <reason>' "
                          "(docs/students.md § Stage 5).")
    bob.send("SHOUT ok")
    bob.expect("SHOUTED 0", hint="nobody else has a name, so the shout reaches nobody, and "
                                 "bob hears nothing of the stranger's refused shout. "
                                 + HINT_SHOUT)


@check(3, "Shouting leaves private messages as they were", needs=ANSWERING, kept=True)
def test_messages_still_work(server):
    """After alice shouts, her 'MSG bob hi' reaches bob alone: 'FROM alice hi', 'SENT bob'."""
    alice = named(server, "alice")
    bob = named(server, "bob")
    alice.send("MSG bob hi")
    bob.expect("FROM alice hi", hint="MSG is stage 3's and still works as it did "
                                     "(docs/students.md § Stage 3).")
    alice.expect("SENT bob", hint="MSG is stage 3's and still works as it did "
                                  "(docs/students.md § Stage 3).")
