"""Planted bugs: the grader must catch every realistic student mistake.

tests/impls/faulty/ is one implementation of all four stages in which each
mistake below can be switched on with the environment variable CHATKIT_FAULT
(the grader passes its environment on to the programs it starts). With no
fault it is correct and must score full marks. With a fault, the real grader
is run on the fault's FIRST stage (the earliest stage whose rule, as the
docs/students.md states it, the mistake breaks); that stage must lose points, and at
least one of the checks named in the catalog must be among the failed ones.
"""

import os
import re
from collections import namedtuple

import pytest

from gradekit import (IMPLS, STAGES, grade_many, left_running, processes_mentioning,
                      started_by, unexplained_failures)
from verdicts import CLEAN, compare

FAULTY = IMPLS / "faulty"
WORKERS = 3
# Every program this module's gradings start carries this in its environment (the grader
# passes its environment on), so the leftover-process check ignores other people's runs.
RUN_MARKER = "CHATKIT_MUTANT_RUN=%d" % os.getpid()

Fault = namedtuple("Fault", "name stage catches what")

# One row per planted mistake: its CHATKIT_FAULT name, its first stage, the checks
# expected to catch it (any one of them failing is enough), and what the student did.
CATALOG = [
    # --- stage 1: framing and select ------------------------------------------------
    Fault("one_recv_one_message", "1_echo", ["1.3", "1.4"],
          "takes each recv() as exactly one message"),
    Fault("header_single_recv", "1_echo", ["1.3"],
          "reads the header with one recv(4): a partial header is lost"),
    Fault("blocking_payload_recv", "1_echo", ["1.9"],
          "waits for the rest of a payload with a blocking recv() inside the select loop"),
    Fault("length_in_chars", "1_echo", ["1.6"],
          "server counts the length in characters, not bytes"),
    Fault("reject_1024", "1_echo", ["1.5"],
          "off by one: a payload of exactly 1024 bytes is a framing error"),
    Fault("no_error_on_bad_header", "1_echo", ["1.7"],
          "a bad header closes the connection without an ERROR"),
    Fault("header_int_lenient", "1_echo", ["1.7"],
          "reads the header with int() alone: '+012', ' 12 ' and '1_23' pass as lengths"),
    Fault("crash_on_bad_header", "1_echo", ["1.7"],
          "int(header) on a non-digit header crashes the server"),
    Fault("no_limit_check", "1_echo", ["1.7"],
          "a header over 1024 is accepted (the server waits for 9999 bytes)"),
    Fault("error_no_close", "1_echo", ["1.7"],
          "sends ERROR for a bad header but keeps the connection open"),
    Fault("close_without_flush", "1_echo", ["1.7"],
          "queues the ERROR, then closes at once: the ERROR is never sent"),
    Fault("closed_left_in_select", "1_echo", ["1.10"],
          "closes a departed client's socket but leaves it in the select set (crash)"),
    Fault("only_first_client", "1_echo", ["1.7", "1.8"],
          "accepts one client and never accepts again"),
    Fault("no_accept_after_first_message", "1_echo", ["1.10"],
          "rebuilds the select list without the listening socket after the first message"),
    Fault("wrong_client_reply", "1_echo", ["1.7", "1.8"],
          "replies to the last connected client instead of the sender"),
    Fault("exit_when_last_leaves", "1_echo", ["1.10"],
          "the server exits when its last client leaves"),
    Fault("lifo_out_queue", "1_echo", ["1.4"],
          "writes the newest queued message first (LIFO), reordering replies"),
    Fault("bad_header_loses_messages", "1_echo", ["1.7"],
          "a bad header loses the whole messages before it in the same recv() (unanswered)"),
    Fault("error_misspelt", "1_echo", ["1.7"],
          "every error reply starts with 'EROR' instead of 'ERROR'"),
    Fault("ignores_eof", "1_echo", ["1.11", "1.12"],
          "ignores recv() returning b'': the dead socket stays in the select set, and spins"),
    Fault("always_in_write_set", "1_echo", ["1.12"],
          "every client is always in the write set: select() never sleeps, the server spins"),
    Fault("select_timeout_zero", "1_echo", ["1.12"],
          "select() with timeout 0, 'so the loop never waits': the server spins"),
    Fault("blocking_client_sockets", "1_echo", ["1.7"],
          "client sockets left blocking: hang_up()'s recv() waits for a client that sent nothing"),
    # --- stage 2: names -------------------------------------------------------------
    Fault("crash_invalid_utf8", "2_naming", ["2.12"],
          "payload.decode() without try: invalid UTF-8 crashes the server"),
    Fault("invalid_utf8_closes", "2_naming", ["2.12"],
          "invalid UTF-8 gets ERROR, then the connection is closed"),
    Fault("crash_empty_payload", "2_naming", ["2.11"],
          "text.split()[0] on an empty payload crashes the server"),
    Fault("crash_unknown_command", "2_naming", ["2.10", "2.11"],
          "commands[word] raises KeyError on an unknown command: crash"),
    Fault("echo_in_stage2", "2_naming", ["2.1", "2.10"],
          "the stage 1 echo is still on: every command is echoed before its reply"),
    Fault("taken_name_lowercase_error", "2_naming", ["2.11"],
          "refuses a taken name with 'error: …': the contract's word is ERROR"),
    Fault("duplicate_names", "2_naming", ["2.3"],
          "a name held by another client is given out again"),
    Fault("rename_keeps_old", "2_naming", ["2.4"],
          "renaming does not release the old name"),
    Fault("own_name_error", "2_naming", ["2.5"],
          "asking again for one's own name gets ERROR"),
    Fault("names_unsorted", "2_naming", ["2.8"],
          "NAMES lists the names in the order they were taken"),
    Fault("names_comma", "2_naming", ["2.9"],
          "NAMES separates the names with commas"),
    Fault("names_trailing_space", "2_naming", ["2.9"],
          "'NAMES ' + ' '.join(names): 'NAMES ' with a space when no one has a name"),
    Fault("whitespace_names", "2_naming", ["2.6"],
          "names with spaces or tabs are accepted"),
    Fault("long_names", "2_naming", ["2.7"],
          "names over 16 characters are accepted"),
    Fault("name_len_bytes", "2_naming", ["2.7"],
          "name length counted in bytes: 16 Hebrew letters are refused"),
    Fault("name_split_words", "2_naming", ["2.6"],
          "name = text.split()[1]: 'NAME a b' gives the name 'a'"),
    Fault("names_space_after_each", "2_naming", ["2.9"],
          "each name is followed by a space: 'NAMES alice bob ', and 'NAMES ' when empty"),
    Fault("crash_unnamed_leaves", "2_naming", ["2.16"],
          "'del names[client.name]' when a client leaves: one without a name crashes it"),
    Fault("decode_each_chunk", "2_naming", ["2.17"],
          "decodes each recv() chunk: a character split across two reads gets ERROR"),
    Fault("validates_only_renames", "2_naming", ["2.18"],
          "checks the name only on a rename: a client's first NAME may hold spaces"),
    # --- stage 3: messages ----------------------------------------------------------
    Fault("bob_sent_hi", "3_messaging", ["3.1"],
          "the push reads 'bob sent hi' instead of 'FROM bob hi'"),
    Fault("no_sent", "3_messaging", ["3.1"],
          "the sender gets no SENT reply"),
    Fault("text_stripped", "3_messaging", ["3.2"],
          "the message text is stripped of its outer spaces"),
    Fault("msg_text_first_word", "3_messaging", ["3.2"],
          "text = text.split()[2]: only the first word of the message is delivered"),
    Fault("broadcast", "3_messaging", ["3.3"],
          "a MSG is pushed to every other client, not only the recipient"),
    Fault("self_message_capitalised_error", "3_messaging", ["3.5"],
          "refuses a MSG to oneself with 'Error …': the contract's word is ERROR"),
    Fault("msg_self_allowed", "3_messaging", ["3.6"],
          "a client may send a MSG to itself"),
    Fault("msg_unnamed_allowed", "3_messaging", ["3.4"],
          "a client without a name may send (the push says 'FROM None ...')"),
    Fault("msg_empty_text_allowed", "3_messaging", ["3.7"],
          "'MSG bob ' and 'MSG bob' are delivered with an empty text"),
    Fault("crash_unknown_recipient", "3_messaging", ["3.5"],
          "names[recipient] raises KeyError for an unknown name: crash"),
    Fault("blocking_sendall", "3_messaging", ["3.10"],
          "replies and pushes are written with a blocking sendall(): a slow reader stalls all"),
    Fault("remove_while_iterating", "3_messaging", ["3.13"],
          "sends at once when it can, and removes sent messages from the queue it loops over"),
    Fault("no_backlog_limit", "3_messaging", ["3.14"],
          "no 1 MiB limit: a client that never reads makes the server's queue grow for ever"),
    Fault("backlog_keeps_name", "3_messaging", ["3.14"],
          "cuts off a client past 1 MiB but keeps its name held"),
    Fault("overlong_push_crash", "3_messaging", ["3.17"],
          "no length check on the push: frame() raises on 'FROM <long name> <text>' past 1024 bytes"),
    Fault("overlong_push_sent", "3_messaging", ["3.17"],
          "no length check on the push: a frame announcing 1025 bytes is sent, and SENT"),
    # --- stage 4: leaving -----------------------------------------------------------
    Fault("no_bye", "4_exit", ["4.1"],
          "EXIT closes the connection without replying BYE"),
    Fault("bye_not_flushed", "4_exit", ["4.1"],
          "EXIT queues BYE, then closes at once: the BYE is never sent"),
    Fault("exit_keeps_connection", "4_exit", ["4.1"],
          "EXIT replies BYE and releases the name, but never closes the connection"),
    Fault("name_kept_after_exit", "4_exit", ["4.2"],
          "EXIT closes the connection but does not release the name"),
    Fault("name_kept_after_close", "4_exit", ["4.5"],
          "a client that closes without EXIT keeps its name"),
    Fault("name_kept_after_reset", "4_exit", ["4.6", "4.7"],
          "a client whose connection is reset keeps its name"),
    Fault("crash_on_reset", "4_exit", ["4.6", "4.7"],
          "no except around recv(): a connection reset crashes the server"),
    Fault("exit_on_exit", "4_exit", ["4.2", "4.3"],
          "the server ends itself (status 0) once a client's EXIT has had its BYE"),
    Fault("ctrl_c_traceback", "4_exit", ["4.8"],
          "Ctrl-C is not caught: the server dies with a traceback"),
    Fault("no_reuseaddr", "4_exit", ["4.8"],
          "no SO_REUSEADDR: after Ctrl-C the port can't be bound again at once"),
    Fault("commands_after_exit", "4_exit", ["4.12"],
          "goes on handling the commands that follow EXIT in the same recv()"),
    # --- the client, every stage ----------------------------------------------------
    Fault("client_blocking_input", "1_echo", ["1.24"],
          "client blocks in input(): nothing is printed while the user types nothing"),
    Fault("client_peeks_then_blocks", "1_echo", ["1.24"],
          "client looks at the socket for 0.1 s after connecting, then blocks in input()"),
    Fault("client_sends_newline", "1_echo", ["1.20"],
          "client sends the line with its newline"),
    Fault("client_sends_empty", "1_echo", ["1.22"],
          "client sends empty lines as empty messages"),
    Fault("client_no_header", "1_echo", ["1.20"],
          "client sends the bare line, without a header"),
    Fault("client_header_chars", "1_echo", ["1.21"],
          "client's header counts characters, not bytes"),
    Fault("client_long_lines", "1_echo", ["1.23"],
          "client sends lines over 1024 bytes"),
    Fault("client_length_chars", "1_echo", ["1.23"],
          "client checks the 1024 limit in characters, so sends 1200-byte lines"),
    Fault("client_rejects_1024", "1_echo", ["1.23"],
          "off by one: client refuses a line of exactly 1024 bytes"),
    Fault("client_crlf", "1_echo", ["1.22"],
          "client strips only '\\n', so a CRLF line is sent with its '\\r'"),
    Fault("client_prints_bytes_repr", "1_echo", ["1.25"],
          "client prints the bytes object (b'...'), garbling non-ASCII text"),
    Fault("client_one_recv_one_message", "1_echo", ["1.25"],
          "client takes each recv() as exactly one message"),
    Fault("client_traceback_eof", "1_echo", ["1.26"],
          "client dies with a traceback (EOFError) at the end of input"),
    Fault("client_hangs_on_eof", "1_echo", ["1.26"],
          "client ignores the end of input and never exits"),
    Fault("client_partial_payload", "1_echo", ["1.30"],
          "client takes whatever one recv() returns after a header as the whole payload"),
    # --- the client, stage 4 --------------------------------------------------------
    Fault("client_eof_no_exit", "4_exit", ["4.27"],
          "client closes at the end of input without sending EXIT"),
    Fault("client_no_wait_bye", "4_exit", ["4.29"],
          "client exits right after sending EXIT, without waiting for BYE"),
    Fault("client_bye_exit_1", "4_exit", ["4.26", "4.27", "4.29"],
          "client ignores BYE and exits 1 when the server then closes"),
    Fault("client_server_close_exit_0", "4_exit", ["4.28"],
          "client exits 0 when the server closes the connection"),
    Fault("client_server_close_traceback", "4_exit", ["4.28"],
          "client dies with a traceback when the server closes the connection"),
    Fault("client_ignores_server_close", "4_exit", ["4.28"],
          "client stops watching the socket when the server closes, and hangs"),
]

BY_NAME = {fault.name: fault for fault in CATALOG}


@pytest.fixture(scope="module")
def graded():
    """Every fault graded on its first stage, and the fault-free run on every stage, in parallel."""
    marker, value = RUN_MARKER.split("=")
    jobs = [(FAULTY, (), {"CHATKIT_FAULT": "", marker: value})]
    jobs += [(FAULTY, ("--stage", fault.stage[0]), {"CHATKIT_FAULT": fault.name, marker: value})
             for fault in CATALOG]
    grades = grade_many(jobs, workers=WORKERS)
    return dict(zip([None] + [fault.name for fault in CATALOG], grades))


def describe_failed(grade, stage):
    failed = [t for t in grade.tests(stage) if t["status"] == "failed"]
    return ", ".join("%s (%d/%d)" % (t["number"], t["score"], t["max_score"])
                     for t in failed) or "none"


def is_caught(grade, fault):
    """A check the catalog names failed, and the stage lost points, unless every such
    check is a kept one: then the fault breaks what an earlier stage or the given code
    built, and is shown as a REGRESSION for no points (docs/developing.md § Points)."""
    failed = set(fault.catches) & set(grade.failed(fault.stage))
    got, out_of = grade.stage_score(fault.stage)
    kept = {t["number"] for t in grade.tests(fault.stage) if t["max_score"] == 0}
    return bool(failed) and (got < out_of or failed <= kept)


def test_catalog_matches_the_faulty_implementation():
    """Every fault in the catalog is planted in the code, and every planted fault is cataloged."""
    source = (FAULTY / "faulty_chat.py").read_text(encoding="utf-8")
    planted = set(re.findall(r'FAULT [!=]= "(\w+)"', source))
    assert len(BY_NAME) == len(CATALOG), "a fault name appears twice in the catalog"
    assert planted - set(BY_NAME) == set(), "planted but not cataloged"
    assert set(BY_NAME) - planted == set(), "cataloged but not planted"
    unnamed = [fault.name for fault in CATALOG if not fault.catches]
    assert not unnamed, "catalog rows that name no check expected to catch them: %s" % unnamed
    for fault in CATALOG:
        assert fault.stage in STAGES, fault
        assert all(number.startswith(fault.stage[0] + ".") for number in fault.catches), fault


def test_without_a_fault_full_marks_on_every_stage(graded):
    clean = graded[None]
    assert clean.status == 0, clean.output[-3000:]
    for stage in STAGES:
        got, out_of = clean.stage_score(stage)
        assert out_of > 0 and got == out_of, "%s: %d/%d, failed: %s\n%s" % (
            stage, got, out_of, describe_failed(clean, stage), clean.output[-3000:])


@pytest.mark.parametrize("name", [fault.name for fault in CATALOG])
def test_fault_is_caught(graded, name):
    fault = BY_NAME[name]
    grade = graded[name]
    assert fault.catches, "the catalog names no check expected to catch %r" % name
    known = {t["number"] for t in grade.tests(fault.stage)}
    assert set(fault.catches) <= known, "the catalog names checks the grader does not have: %s" % (
        sorted(set(fault.catches) - known))
    got, out_of = grade.stage_score(fault.stage)
    assert is_caught(grade, fault), (
        "planted fault %r (%s) not caught on %s: %d/%d; expected one of %s to fail; failed: %s"
        % (name, fault.what, fault.stage, got, out_of, ", ".join(fault.catches),
           describe_failed(grade, fault.stage)))


@pytest.mark.parametrize("name", [None] + [fault.name for fault in CATALOG])
def test_every_failure_is_explained(graded, name):
    """What the student reads for each failed check is the grader's explanation (the
    conversation, Expected, Got, Hint; or Blocked by), never a grader traceback."""
    unexplained = unexplained_failures(graded[name])
    assert not unexplained, "fault %r:\n%s" % (name, "\n\n".join(unexplained))


# Words of hints written for a live program (stuck, not reading, not accepting).
LIVE_WORDS = ("select set", "stuck", "keep accepting", "blocking", "stopped reading",
              "still running", "endless loop", "is the server")


@pytest.mark.parametrize("name", [fault.name for fault in CATALOG])
def test_a_program_that_exited_gets_no_hint_for_a_live_one(graded, name):
    """Wherever a failure says the program crashed or ended itself (grader/diagnosis.py),
    its hint is about that exit, never one written for a live program."""
    for test in graded[name].tests():
        text = test["output"]
        got = re.search(r"^Got: +(.*)$", text, re.M)
        hint = re.search(r"^Hint: +(.*)$", text, re.M)
        if not got or not re.match(r"the (server|client) (crashed: |exited with status "
                                   r"\d+ \(no error: it ended itself\))", got.group(1)):
            continue
        live = [word for word in LIVE_WORDS if hint and word in hint.group(1)]
        assert not live, "fault %r, check %s: a hint for a live program (%s):\n%s" % (
            name, test["number"], ", ".join(live), text)


def test_mutation_score(graded, record_property, report):
    caught = [f.name for f in CATALOG if is_caught(graded[f.name], f)]
    missed = [f.name for f in CATALOG if f.name not in caught]
    seconds = sorted(round(graded[f.name].seconds, 1) for f in CATALOG)
    record_property("mutation_score", "%d/%d" % (len(caught), len(CATALOG)))
    report("planted faults, the stage graded, and the checks that caught each:")
    for fault in CATALOG:
        grade = graded[fault.name]
        caught_by = sorted(set(fault.catches) & set(grade.failed(fault.stage)))
        report("  %-28s %-12s %5s/%-3s caught by %s" % (
            fault.name, fault.stage, *grade.stage_score(fault.stage), ", ".join(caught_by) or "-"))
    report("mutation score: %d/%d caught (%.0f%%); missed: %s; grading time per fault: "
          "median %.1f s, max %.1f s" % (len(caught), len(CATALOG),
                                         100.0 * len(caught) / len(CATALOG),
                                         ", ".join(missed) or "none",
                                         seconds[len(seconds) // 2], seconds[-1]))
    assert not missed, "planted faults the grader missed: %s" % ", ".join(missed)


def test_each_fault_fails_the_same_checks_as_before(graded):
    """Every fault fails exactly the checks tests/verdicts.json stores for it (the
    fault-free run: none), from the gradings above (tests/verdicts.py)."""
    problems = compare("tests/test_mutants.py", {
        CLEAN if name is None else name: grade.failed() for name, grade in graded.items()},
        shown=lambda fault, check: graded[None if fault == CLEAN else fault].output_of(check))
    assert not problems, "\n".join(problems)


# Where a stuck program waits (grader/whereabouts.py): for each fault whose program gets
# stuck in a call, the code of the line where it waits (found in faulty_chat.py) and
# words of the hint written for that call. Every check that waited on it in vain must
# show that file and line, and that hint.
STUCK = {
    "blocking_client_sockets": ("conn.sock.recv(4096)", "recv() on a blocking socket"),
    "blocking_payload_recv": ("more = conn.sock.recv(end - len(conn.inbuf))",
                              "the server loops on recv() until it has the bytes it wants"),
    "blocking_sendall": ("conn.sock.sendall(data)", "sendall() waits while the client is not "
                                                    "reading"),
    "client_blocking_input": ("typed = input()", "the client waits for a line you type"),
}
# A vain wait, as a failure's Got line says it.
WAITED_IN_VAIN = re.compile(r"^Got: .*(nothing within|did not finish|nothing matching within|"
                            r"still running)", re.M)


def line_of(code: str) -> int:
    """The line of faulty_chat.py that holds `code` (exactly one does)."""
    lines = (FAULTY / "faulty_chat.py").read_text(encoding="utf-8").splitlines()
    found = [number for number, line in enumerate(lines, 1) if line.strip() == code]
    assert len(found) == 1, (code, found)
    return found[0]


@pytest.mark.parametrize("name", sorted(STUCK))
def test_a_stuck_program_says_where(graded, name):
    """Each check that waited in vain on the stuck program shows the student's file and
    the line where it waits, that line's code, and the hint for the call it waits in."""
    code, hint = STUCK[name]
    place = "at faulty/faulty_chat.py line %d:" % line_of(code)
    waited = [t for t in graded[name].tests(BY_NAME[name].stage)
              if t["status"] == "failed" and WAITED_IN_VAIN.search(t["output"])]
    assert waited, "no check waited on %r in vain: %s" % (name, graded[name].failed())
    for test in waited:
        text = test["output"]
        where = re.search(r"^Where: +the (server|client) is waiting in \w+\(\), in \w+\(\) "
                          r"(.*)\n +(.*)$", text, re.M)
        assert where and where.group(2) == place and where.group(3) == code, (
            "%s: not told where the program waits (%s):\n%s" % (test["number"], place, text))
        assert re.search(r"^Hint: +%s" % re.escape(hint), text, re.M), (
            "%s: the hint is not the one for that call:\n%s" % (test["number"], text))


@pytest.mark.parametrize("name", ["select_timeout_zero", "always_in_write_set", "ignores_eof"])
def test_a_spinning_server_says_where_it_spins(graded, name):
    """1.12's failure shows where the server spent its time, the student's lines first,
    each with how many of the looks found it there; a select() that never waits (timeout
    0), on its select() line."""
    text = graded[name].output_of("1.12")
    looks = re.search(r"^Where: .* (\d+) looks", text, re.M)
    counts = re.findall(r"^ +(\d+) × in \w+\(\) at faulty/faulty_chat.py line (\d+)", text, re.M)
    assert looks and counts, text
    if name == "select_timeout_zero":
        line = line_of("readable, writable, _ = select.select(readers, writers, [], timeout)")
        assert int(counts[0][1]) == line and int(counts[0][0]) >= int(looks.group(1)) // 2, text


def test_a_spinning_server_waited_on_is_running_not_waiting(graded):
    """ignores_eof spins through recv() once alice closes her sending side: 1.11, which
    waits in vain for her connection to close, finds it in recv() as it would a blocked
    server, but says it runs, and gives the hint for a server that never waits."""
    text = graded["ignores_eof"].output_of("1.11")
    assert re.search(r"^Where: +the server is not waiting but running \(\d+% of a CPU", text,
                     re.M), text
    assert re.search(r"^Hint: +your server runs all the time instead of waiting", text,
                     re.M), text


def ours(process: str) -> bool:
    """Whether a process was started by this module's gradings (gradekit.started_by)."""
    return started_by(process, RUN_MARKER)


def test_no_faulty_process_left_behind(graded):
    left = left_running(lambda: [p for p in processes_mentioning("impls/faulty") if ours(p)])
    assert not left, "processes of the faulty implementation still running:\n%s" % "\n".join(left)
