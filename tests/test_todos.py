"""Every TODO is graded: leave exactly one TODO undone, and the grader notices.

A stage's folder in stages/ holds the files the stage adds (its chat_server.py
and chat_client.py, and its modules): each is the solution's file of that name
with each TODO's code cut out and replaced by a `# TODO N.k:` block and a
stand-in.  So the program with exactly one TODO left undone is derived from the
skeleton itself: line by line, the solution's file and the skeleton's differ in
places (difflib), and each place belongs to one TODO (its `# TODO N.k` line is
there) or is a pure addition with no TODO (the import of the stand-ins'
helper, the "Your part" paragraph), which changes nothing while nothing calls
it.  The variant for TODO N.k is the solution's stage folder (what the stage
carries from the stages before it included, as `python -m grader next` brings
it) with that TODO's places and the pure additions taken from the skeleton.

TODO_MAP names, for every TODO, the checks that must fail when it is left
undone.  Each variant is graded by the real grader (only its stage, and only
the server's or the client's checks, whichever program the TODO's file is
part of); the named checks must fail and the stage must lose points.  With no
TODO undone, each file must be the solution's code once docstrings and the
stand-ins' helper are taken out (compared as syntax trees): the pure additions
are inert.  And the map's keys must be exactly the TODO numbers in stages/: a
new TODO without a check that catches it fails here.
"""

import ast
import difflib
import re
import shutil

import pytest

from gradekit import KIT, STAGES, grade_many, imported_modules
from verdicts import compare

PROGRAMS = {"server": "chat_server.py", "client": "chat_client.py"}


def stage_files(stage):
    """The files a stage adds (its skeleton folder's .py files), in order."""
    return sorted(path.name for path in (KIT / "stages" / stage).glob("*.py"))


def program_of(stage, name):
    """'server' or 'client': the program a file of the stage is part of (a module is the
    client's when the solution's chat_client.py imports it)."""
    client = KIT / "solutions" / stage / PROGRAMS["client"]
    return "client" if name == PROGRAMS["client"] or name[:-3] in imported_modules(client) \
        else "server"


FILES = [(stage, name) for stage in STAGES for name in stage_files(stage)]
TODO_LINE = re.compile(r"^\s*# TODO (\d+\.\d+)\b", re.MULTILINE)
WORKERS = 3   # gradings at once

# TODO -> the checks that catch it when it is left undone.
TODO_MAP = {
    "1.1": ["1.1"],            # new clients hung up on: not even one echo
    "1.2": ["1.1"],            # bytes never read: hung up on
    "1.3": ["1.1"],            # no messages rebuilt: ERROR and a close
    "1.4": ["1.1"],            # no echo
    "1.5": ["1.20"],           # client: typed lines not sent
    "1.6": ["1.24", "1.25"],   # client: received messages not printed
    "2.1": ["2.1"],            # no command runs
    "2.2": ["2.6", "2.7"],     # every name accepted: spaces, 17 characters
    "2.3": ["2.1"],            # NAME never gives a name
    "2.4": ["2.4"],            # a rename keeps the old name taken
    "2.5": ["2.2"],            # GET_NAMES not answered
    "3.1": ["3.1", "3.17"],    # MSG not delivered (nor a push of exactly 1024 bytes)
    "3.2": ["3.14"],           # no 1 MiB limit: the lagging client is never disconnected
    "4.1": ["4.1", "4.12"],    # EXIT not answered (nor what comes after it ignored)
    "4.2": ["4.8"],            # Ctrl-C: a traceback, sockets left open
    "4.3": ["4.26", "4.27", "4.29"],   # client: BYE does not end it
    "4.4": ["4.27"],           # client: end of input leaves without EXIT
}


# --- deriving the variants from the skeletons ---------------------------------

def read_lines(path):
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def places(stage, name):
    """The places where skeleton and solution differ: [(todo or None, solution, skeleton)].

    Equal stretches come as (None, lines, lines).  A place with no TODO must be a
    pure addition to the solution; a place may not hold two TODOs.
    """
    solution = read_lines(KIT / "solutions" / stage / name)
    skeleton = read_lines(KIT / "stages" / stage / name)
    matcher = difflib.SequenceMatcher(None, solution, skeleton, autojunk=False)
    found = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        ours, theirs = solution[i1:i2], skeleton[j1:j2]
        todos = set(TODO_LINE.findall("".join(theirs)))
        where = "stages/%s/%s, lines %d-%d" % (stage, name, j1 + 1, j2)
        assert len(todos) <= 1, "%s: one change holds TODOs %s; keep them apart" % (
            where, sorted(todos))
        assert todos or tag in ("equal", "insert"), (
            "%s: this change to the solution belongs to no TODO (no '# TODO N.k' line in it):\n%s"
            % (where, "".join(theirs) or "(lines deleted)"))
        found.append((todos.pop() if todos else None, ours, theirs))
    return found


def variant(stage, name, undone):
    """The file's text with TODO `undone` (None: no TODO) left as in the skeleton."""
    text = []
    for todo, ours, theirs in places(stage, name):
        pure_addition = todo is None and not ours
        text += theirs if pure_addition or (todo is not None and todo == undone) else ours
    return "".join(text)


def todos_in(stage, name):
    return sorted(set(TODO_LINE.findall(
        (KIT / "stages" / stage / name).read_text(encoding="utf-8"))))


def all_todos():
    """{todo: (stage, file)} for every TODO in stages/."""
    return {todo: (stage, name) for stage, name in FILES for todo in todos_in(stage, name)}


def todo_key(todo):
    return tuple(int(part) for part in todo.split("."))


def batches():
    """The variants, grouped so that one grading covers at most one of each stage.

    Returns [(program, {stage: todo})]: a grader run costs a Python and pytest
    start-up, so the server's 1.1, 2.1, 3.1 and 4.1 are graded in one run.
    """
    todos = {}   # (program, stage) -> its TODOs, in order
    for todo, (stage, name) in sorted(all_todos().items(), key=lambda kv: todo_key(kv[0])):
        todos.setdefault((program_of(stage, name), stage), []).append(todo)
    grouped = []
    for program in PROGRAMS:
        lists = {stage: found for (p, stage), found in todos.items() if p == program}
        for i in range(max(len(found) for found in lists.values())):
            grouped.append((program, {stage: found[i] for stage, found in lists.items()
                                      if i < len(found)}))
    return grouped


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Every variant graded: {todo: (Grade, stage)}."""
    root = tmp_path_factory.mktemp("todos")
    for name in ("protocol.py", "todo.py"):   # two folders up, as in the kit
        shutil.copy(KIT / name, root / name)
    jobs, contents = [], []
    for n, (program, batch) in enumerate(batches()):
        impl = root / ("%s-%d" % (program, n))
        for stage, todo in batch.items():
            shutil.copytree(KIT / "solutions" / stage, impl / stage,
                            ignore=shutil.ignore_patterns("__pycache__"))
            for name in stage_files(stage):
                text = variant(stage, name, todo if all_todos()[todo][1] == name else None)
                (impl / stage / name).write_text(text, encoding="utf-8")
        only = "test_client_" if program == "client" else "not test_client_"
        stages = ",".join(stage[0] for stage in batch)
        jobs.append((impl, ("--stage", stages, "-k", only), None))
        contents.append(batch)
    runs = grade_many(jobs, workers=WORKERS)
    return {todo: (run, stage)
            for run, batch in zip(runs, contents) for stage, todo in batch.items()}


# --- the tests -------------------------------------------------------------------

def test_the_map_names_every_todo_in_the_skeletons():
    found = sorted(all_todos())
    assert found, "no '# TODO N.k:' line found in stages/"
    missing = sorted(set(found) - set(TODO_MAP))
    stale = sorted(set(TODO_MAP) - set(found))
    assert not missing, ("TODOs with no check in TODO_MAP: %s. Say which check fails when "
                         "each is left undone." % missing)
    assert not stale, "TODO_MAP names TODOs the skeletons no longer have: %s" % stale
    for todo, checks in TODO_MAP.items():
        assert checks and all(c.split(".")[0] == todo.split(".")[0] for c in checks), (
            todo, checks)


@pytest.mark.parametrize("stage, name", FILES)
def test_every_change_belongs_to_one_todo_or_adds_code(stage, name):
    """The derivation holds: each place holds one TODO at most, and a place with none
    only adds lines (places() checks both); the solutions hold no TODO."""
    solution = (KIT / "solutions" / stage / name).read_text(encoding="utf-8")
    assert not TODO_LINE.search(solution)
    found = {todo for todo, _, _ in places(stage, name)} - {None}
    assert found == set(todos_in(stage, name))


def without_additions(tree):
    """The module with docstrings and the import of the stand-ins' helper taken out."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]   # the docstring
        node.body = [n for n in body
                     if not (isinstance(n, ast.ImportFrom) and n.module == "todo")]
    return ast.dump(tree)


@pytest.mark.parametrize("stage, name", FILES)
def test_the_pure_additions_change_nothing(stage, name):
    """With no TODO undone, each file is the solution's plus docstrings and the import of
    the stand-ins' helper: the same code once those are taken out."""
    solution = (KIT / "solutions" / stage / name).read_text(encoding="utf-8")
    assert without_additions(ast.parse(variant(stage, name, None))) == without_additions(
        ast.parse(solution))
    assert "not_implemented(" not in solution and "import todo" not in solution


@pytest.mark.parametrize("todo", sorted(TODO_MAP, key=todo_key))
def test_each_todo_left_undone_is_caught(graded, todo):
    run, stage = graded[todo]
    numbers = {t["number"] for t in run.tests(stage)}
    absent = [c for c in TODO_MAP[todo] if c not in numbers]
    assert not absent, ("TODO %s: the grader has no check %s (graded: %s)"
                        % (todo, ", ".join(absent), ", ".join(sorted(numbers, key=todo_key))))
    failed = run.failed(stage)
    escaped = [c for c in TODO_MAP[todo] if c not in failed]
    assert not escaped, ("TODO %s left undone, yet check %s passed. Failed: %s"
                         % (todo, ", ".join(escaped), ", ".join(failed) or "none"))
    got, out_of = run.stage_score(stage)
    assert got < out_of, "TODO %s left undone, yet %s scored %d of %d" % (todo, stage, got, out_of)



# --- the hint names the TODO whose stand-in answered ------------------------------------

def todo_blocks(stage, name):
    """{todo: [the text of each of its '# TODO N.k' blocks, comment marks taken out]}."""
    blocks = {}
    lines = read_lines(KIT / "stages" / stage / name)
    for number, line in enumerate(lines):
        found = TODO_LINE.match(line)
        if not found:
            continue
        text = [line.strip().lstrip("#").strip()]
        for more in lines[number + 1:]:
            if not more.strip().startswith("#   "):
                break
            text.append(more.strip().lstrip("#").strip())
        blocks.setdefault(found.group(1), []).append(" ".join(text))
    return blocks


def test_the_grader_knows_what_each_todo_asks_and_where_the_guide_explains_it():
    """grader/diagnosis.py's TODOS is the skeletons' own words: each TODO's one line is
    the lead of one of its blocks, up to the section of the students' guide it names."""
    from grader.diagnosis import TODOS
    assert set(TODOS) == set(all_todos())
    for todo, (stage, name) in all_todos().items():
        what, section = TODOS[todo]
        leads = [re.sub(r"^TODO [\d.]+( \(also in \w+\))?: ", "", block)
                 for block in todo_blocks(stage, name)[todo]]
        assert any(lead.startswith("%s (docs/students.md § %s" % (what, section))
                   for lead in leads), (todo, what, section, [lead[:120] for lead in leads])


STAND_IN_RAN = re.compile(r"\(TODO (\d+\.\d+)\)|^\s*\| TODO (\d+\.\d+) not implemented yet",
                          re.M)


def stand_in_runs(stage, name, todo):
    """Whether the skeleton has a stand-in for `todo` that runs when it is left undone."""
    text = (KIT / "stages" / stage / name).read_text(encoding="utf-8")
    return 'not_implemented("%s"' % todo in text


@pytest.mark.parametrize("todo", sorted(TODO_MAP, key=todo_key))
def test_a_check_the_stand_in_answered_names_its_todo_first(graded, todo, report):
    """Every failed check of the variant whose text shows the stand-in at work (its reply,
    or its line on standard error) begins its hint with that TODO; a stand-in that runs
    answers at least one failed check."""
    run, stage = graded[todo]
    named = []
    for test in run.tests(stage):
        text = test["output"]
        if test["status"] != "failed" or text.startswith("Blocked by"):
            continue
        ran = {a or b for a, b in STAND_IN_RAN.findall(text)}
        if not ran:
            continue
        assert ran == {todo}, (todo, test["number"], ran)
        hint = re.search(r"^Hint: +(.*)$", text, re.M)
        assert hint and hint.group(1).startswith("TODO %s is not done yet" % todo), (
            "TODO %s: check %s shows its stand-in, but its hint does not name it first:\n%s"
            % (todo, test["number"], text))
        named.append(test["number"])
    if stand_in_runs(stage, all_todos()[todo][1], todo):
        assert named, "TODO %s: no failed check shows its stand-in" % todo
    if named:
        report("TODO %s left undone: %d checks show its stand-in, each hint names it first (%s)"
               % (todo, len(named), ", ".join(named)))


def test_each_todo_left_undone_fails_the_same_checks_as_before(graded):
    """Each one-TODO-left program fails exactly the checks of its stage that
    tests/verdicts.json stores for it, from the gradings above (tests/verdicts.py)."""
    problems = compare("tests/test_todos.py",
                       {todo: run.failed(stage) for todo, (run, stage) in graded.items()},
                       shown=lambda todo, check: graded[todo][0].output_of(check))
    assert not problems, "\n".join(problems)
