"""Realistic mistakes, graded as a student sees them: the hint names the cause.

Each mistake below is one line of a reference solution changed as students
change it (a line deleted, a constant, a comparison, a call on the wrong
socket), in a copy of solutions/, not in a fault library. Each is graded by
the real grader on its stage, and must fail a check whose hint names the
mistake that happened: `cause`, a regular expression, must match the Hint: of
at least one failed check. The closing summary lists each mistake with the
hint of its first failed check, and the share whose hints name their cause.
"""

import re
import shutil
from collections import namedtuple

import pytest

from gradekit import KIT, STAGES, grade_many

WORKERS = 3

# `old` is the text changed, found once in the stage's folder (the program's file, or a
# module of it); a tuple lists the forms it takes in different layouts of the solutions,
# each with its `new` when `new` is a tuple too.
Mistake = namedtuple("Mistake", "name stage program old new cause what")

SERVER, CLIENT = "chat_server.py", "chat_client.py"

MISTAKES = [
    # --- stage 1 ----------------------------------------------------------------------------
    Mistake("close_without_unregister", "1_echo", SERVER,
            "    selector.unregister(client.sock)\n", "",
            r"already registered|[Uu]nregister",
            "closes a departed client's socket without selector.unregister()"),
    Mistake("select_timeout_zero", "1_echo", SERVER,
            "SELECT_TIMEOUT = 1.0   # seconds; see serve_forever()",
            "SELECT_TIMEOUT = 0     # so the loop never waits",
            r"timeout of 0", "select() with a timeout of 0, 'so the loop never waits'"),
    Mistake("eof_not_noticed", "1_echo", SERVER,
            "    if not data:   # b\"\": it closed", "    if data is None:   # b\"\": it closed",
            r"b''", "recv() returning b'' is not taken as the client leaving"),
    Mistake("always_writable", "1_echo", SERVER,
            "    events = selectors.EVENT_WRITE if client.outgoing else 0",
            "    events = selectors.EVENT_WRITE",
            r"write set", "every client is watched for writing, queue or not"),
    Mistake("blocking_client_socket", "1_echo", SERVER,
            "    sock.setblocking(False)\n", "",
            r"blocking|setblocking", "client sockets left blocking"),
    Mistake("reset_crashes", "4_exit", SERVER,
            "    except OSError:\n        # The connection failed: most often reset",
            "    except ConnectionAbortedError:\n        # The connection failed: most often "
            "reset", r"vanish|ConnectionResetError",
            "catches only ConnectionAbortedError around recv(): a reset crashes the server"),
    Mistake("client_sends_newline", "1_echo", CLIENT,
            "        lines.put(strip_line_ending(line))", "        lines.put(line)",
            r"line ending|newline|\\n", "the client sends each line with its line ending"),
    Mistake("client_no_length_check", "1_echo", CLIENT,
            "    if len(line) > protocol.MAX_MSG_LENGTH:", "    if False:",
            r"1024", "the client sends lines over 1024 bytes"),
    # --- stage 2 ----------------------------------------------------------------------------
    Mistake("release_without_check", "2_naming", SERVER,
            ("    if client.name is not None:\n        del names[client.name]",
             "    if client in name_of:\n        del names[name_of.pop(client)]"),
            ("    if hasattr(client, \"name\"):\n        del names[client.name]",
             "    if names:\n        del names[name_of.pop(client)]"),
            r"never took a name|no such key",
            "'del names[client.name]' for a client that never took a name"),
    Mistake("decode_without_try", "2_naming", SERVER,
            "    except UnicodeDecodeError:\n", "    except UnicodeEncodeError:\n",
            r"UTF-8", "catches UnicodeEncodeError, not UnicodeDecodeError, around decode()"),
    Mistake("names_unsorted", "2_naming", SERVER,
            "    return \" \".join([protocol.REPLY_NAMES] + sorted(names))",
            "    return \" \".join([protocol.REPLY_NAMES] + list(names))",
            r"sort", "GET_NAMES lists the names in the order they were taken"),
    Mistake("names_trailing_space", "2_naming", SERVER,
            "    return \" \".join([protocol.REPLY_NAMES] + sorted(names))",
            "    return protocol.REPLY_NAMES + \" \" + \" \".join(sorted(names))",
            r"space", "'NAMES ' with a space when nobody has a name"),
    Mistake("name_length_in_bytes", "2_naming", SERVER,
            "    return (1 <= len(name) <= protocol.MAX_NAME_LENGTH",
            "    return (1 <= len(name.encode()) <= protocol.MAX_NAME_LENGTH",
            r"characters", "a name's length counted in bytes"),
    Mistake("rename_keeps_old", "2_naming", SERVER,
            "    release_name(client)   # renaming frees the old name at once\n", "",
            r"old name", "a rename does not free the old name"),
    # --- stage 3 ----------------------------------------------------------------------------
    Mistake("push_not_measured", "3_messaging", SERVER,
            "    if len(push.encode(\"utf-8\")) > protocol.MAX_MSG_LENGTH:",
            "    if len(push) > 10 * protocol.MAX_MSG_LENGTH:",
            r"1024 bytes|MAX_MSG_LENGTH", "the push 'FROM <sender> <text>' is never measured"),
    Mistake("push_sent_at_once", "3_messaging", SERVER,
            ("    queue_message(recipient, push)", "    server.queue_message(recipient, push)"),
            ("    recipient.sock.sendall(protocol.frame(push))",
             "    recipient.sock.sendall(protocol.frame(push))"),
            r"queue", "sendall() of the push straight to the recipient's non-blocking socket"),
    Mistake("text_split", "3_messaging", SERVER,
            ("recipient_name, _, text = argument.partition(\" \")",
             "recipient_name, _, text = (argument or \"\").partition(\" \")"),
            ("recipient_name, text = argument.split(\" \", 1)",
             "recipient_name, text = (argument or \"\").split(\" \", 1)"),
            r"unpack|partition", "'MSG bob' (no text) crashes the split into two"),
    Mistake("text_stripped", "3_messaging", SERVER,
            ("recipient_name, _, text = argument.partition(\" \")",
             "recipient_name, _, text = (argument or \"\").partition(\" \")"),
            ("recipient_name, _, text = argument.strip().partition(\" \")",
             "recipient_name, _, text = (argument or \"\").strip().partition(\" \")"),
            r"kept exactly", "the MSG's text loses its trailing spaces"),
    Mistake("no_backlog_limit", "3_messaging", SERVER,
            ("if len(client.outgoing) > protocol.MAX_BACKLOG:",
             "if len(recipient.outgoing) > protocol.MAX_BACKLOG:"), "if False:",
            r"MAX_BACKLOG|1 MiB", "no 1 MiB limit on what waits for one client"),
    # --- stage 4 ----------------------------------------------------------------------------
    Mistake("client_bye_compared_with_str", "4_exit", CLIENT,
            "if payload == protocol.REPLY_BYE.encode():", "if payload == protocol.REPLY_BYE:",
            r"compares bytes with a str", "the client compares the payload (bytes) with 'BYE'"),
    Mistake("no_reuseaddr", "4_exit", SERVER,
            "        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)",
            "        pass",
            r"SO_REUSEADDR", "no SO_REUSEADDR: the port can't be bound again at once"),
    Mistake("empty_block", "4_exit", SERVER,
            "        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n", "",
            r"indentation", "a line deleted leaves an if with nothing in it: IndentationError"),
    Mistake("ctrl_c_traceback", "4_exit", SERVER,
            ("    except KeyboardInterrupt:\n        # Ctrl-C: not an error",
             "    except KeyboardInterrupt:\n        if stop is None:"),
            ("    except SystemExit:\n        # Ctrl-C: not an error",
             "    except SystemExit:\n        if stop is None:"),
            r"KeyboardInterrupt|Ctrl-C", "Ctrl-C is not caught: a traceback"),
]


def mutated(root, mistake):
    """A copy of the solutions with the mistake made: root/<name>/<stage>/..."""
    impl = root / mistake.name
    shutil.copytree(KIT / "solutions", impl)
    folder = impl / mistake.stage
    files = [folder / mistake.program] + sorted(set(folder.glob("*.py")) -
                                                {folder / mistake.program})
    olds = mistake.old if isinstance(mistake.old, tuple) else (mistake.old,)
    news = mistake.new if isinstance(mistake.new, tuple) else (mistake.new,) * len(olds)
    for old, new in zip(olds, news):
        found = [path for path in files if old in path.read_text(encoding="utf-8")]
        if not found:
            continue
        text = found[0].read_text(encoding="utf-8")
        assert len(found) == 1 and text.count(old) == 1, (
            "%s: the text to change is in the solution more than once" % mistake.name)
        found[0].write_text(text.replace(old, new), encoding="utf-8")
        return impl
    raise AssertionError("%s: the text to change is not in solutions/%s: the solution changed; "
                         "make this mistake in its new form" % (mistake.name, mistake.stage))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("mistakes")
    shutil.copy(KIT / "protocol.py", root / "protocol.py")   # two folders up, as in the kit
    jobs = [(mutated(root, m), ("--stage", m.stage[0]), None) for m in MISTAKES]
    return dict(zip([m.name for m in MISTAKES], grade_many(jobs, workers=WORKERS)))


def hints(grade, stage):
    """[(check, its Hint: text)] of the failed checks of `stage`, in order."""
    found = []
    for test in grade.tests(stage):
        if test["status"] != "failed" or test["output"].startswith("Blocked by"):
            continue
        hint = re.search(r"^Hint: +(.*)$", test["output"], re.M)
        found.append((test["number"], hint.group(1) if hint else ""))
    return found


def test_the_corpus_is_what_the_issue_asks():
    assert len(MISTAKES) >= 20
    assert len({m.name for m in MISTAKES}) == len(MISTAKES)
    assert all(m.stage in STAGES for m in MISTAKES)


@pytest.mark.parametrize("name", [m.name for m in MISTAKES])
def test_a_check_fails_and_a_hint_names_the_cause(graded, name):
    mistake = next(m for m in MISTAKES if m.name == name)
    failed = hints(graded[name], mistake.stage)
    assert failed, "%s (%s): no check failed" % (name, mistake.what)
    named = [number for number, hint in failed if re.search(mistake.cause, hint)]
    assert named, "%s (%s): no hint names the cause (/%s/):\n%s" % (
        name, mistake.what, mistake.cause,
        "\n".join("%s: %s" % pair for pair in failed))


def test_the_share_named(graded, report):
    named = 0
    for mistake in MISTAKES:
        failed = hints(graded[mistake.name], mistake.stage)
        hit = [number for number, hint in failed if re.search(mistake.cause, hint)]
        named += bool(hit)
        first = failed[0] if failed else ("-", "no check failed")
        report("  %-30s %s %s: %s" % (mistake.name, "named " if hit else "NOT   ",
                                       ",".join(hit) or first[0],
                                       (dict(failed).get(hit[0]) if hit else first[1])[:150]))
    report("mistakes whose hint names their cause: %d of %d" % (named, len(MISTAKES)))
