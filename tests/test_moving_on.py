"""Moving on keeps the student's own code: `python -m grader next`, run as a student runs it.

A student's stage 1 with the quirks real ones have (a helper renamed everywhere,
a function of their own, their own comments, a module and a notes file of their
own) is moved on to stage 2 in a copy of the kit: every line of it is in stage 2,
byte for byte, stage 2's own files are the kit's, and nothing of stage 1 changed.
Graded, stage 2 then shows the student's loop at work (its kept checks pass) and
the new TODOs not done; with them done (the reference's naming), full marks on
the student's own loop. Moving on never replaces a file; it refuses, in one line,
what it can't do; and it starts from another folder (--from) when told to.
"""

import shutil
import subprocess
import sys

import pytest

from gradekit import KIT, STAGES, grade

FIRST, SECOND, THIRD = STAGES[:3]
SOLUTIONS = KIT / "solutions"


def kit_copy(tmp_path):
    """What a student has after unpacking the kit: protocol.py, todo.py, stages/."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name in ("protocol.py", "todo.py"):
        shutil.copy(KIT / name, tmp_path / name)
    shutil.copytree(KIT / "stages", tmp_path / "stages",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "stages"


def quirky_stage_1(stages):
    """The reference stage 1, written as a student would: `log` renamed `note` everywhere,
    a function and comments of their own, a helper module and a notes file."""
    folder = stages / FIRST
    for path in SOLUTIONS.joinpath(FIRST).glob("*.py"):
        shutil.copy(path, folder / path.name)
    server = (folder / "server.py").read_text(encoding="utf-8")
    server = server.replace("def log(", "def note(").replace(" log(", " note(")
    server = server.replace("import protocol\n", "import protocol\nimport my_helpers  "
                            "# my own module\n")
    server += ("\n\n# Mine: how many clients are connected (I print it when debugging).\n"
               "def count_clients():\n"
               "    return my_helpers.how_many(selector.get_map()) - 1\n")
    (folder / "server.py").write_text(server, encoding="utf-8")
    (folder / "my_helpers.py").write_text('"""My helpers."""\n\n\ndef how_many(things):\n'
                                          '    return len(things)\n', encoding="utf-8")
    (folder / "notes.txt").write_text("remember: b'' means the client left\n",
                                      encoding="utf-8")
    return folder


def next_stage(stages, *args):
    return subprocess.run([sys.executable, "-m", "grader", "next", "--impl", str(stages),
                           *args], cwd=KIT, capture_output=True, text=True, timeout=60)


def snapshot(folder):
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}


def test_moving_on_keeps_every_line_of_the_students_stage(tmp_path):
    stages = kit_copy(tmp_path)
    mine = snapshot(quirky_stage_1(stages))
    kits_stage_2 = snapshot(stages / SECOND)
    done = next_stage(stages)
    assert done.returncode == 0, done.stderr
    assert "Stage %s now starts from" % SECOND in done.stdout, done.stdout
    assert "copied: client.py, my_helpers.py, notes.txt, server.py" in done.stdout, done.stdout
    after = snapshot(stages / SECOND)
    for name, data in mine.items():
        if name in ("chat_server.py", "chat_client.py"):
            assert after[name] == kits_stage_2[name]   # each stage's own programs
        else:
            assert after[name] == data, "%s was not carried as it was" % name
    for name, data in kits_stage_2.items():
        assert after[name] == data, "moving on changed the kit's %s" % name
    assert snapshot(stages / FIRST) == mine   # stage 1 stays as it was


def test_the_moved_stage_grades_on_the_students_own_loop(tmp_path):
    stages = kit_copy(tmp_path)
    quirky_stage_1(stages)
    assert next_stage(stages).returncode == 0
    started = grade(stages, "--stage", "2")
    tests = started.tests(SECOND)
    kept = [t for t in tests if t["max_score"] == 0]
    assert kept and all(t["status"] == "passed" for t in kept), [
        (t["number"], t["output"][:300]) for t in kept if t["status"] != "passed"]
    assert started.score == 0 and "TODO 2.1 is not done yet" in started.output
    for name in ("commands.py", "naming.py"):   # the stage's TODOs, done as the reference does
        shutil.copy(SOLUTIONS / SECOND / name, stages / SECOND / name)
    finished = grade(stages, "--stage", "2")
    assert finished.score == finished.max_score > 0, finished.failed(SECOND)


def test_moving_on_never_replaces_a_file(tmp_path):
    """A file the next stage has already (the student copied it there by hand, or moved
    on before and changed it) is kept and said so; the rest still comes."""
    stages = kit_copy(tmp_path)
    quirky_stage_1(stages)
    mine = "# my stage-2 loop, changed by hand\n"
    (stages / SECOND / "server.py").write_text(mine, encoding="utf-8")
    done = next_stage(stages)
    assert done.returncode == 0, done.stderr
    assert (stages / SECOND / "server.py").read_text(encoding="utf-8") == mine
    assert "kept as they were" in done.stdout and "server.py" in done.stdout, done.stdout
    assert (stages / SECOND / "client.py").is_file()


def test_moving_on_from_another_folder(tmp_path):
    """--from: start the next stage from a folder elsewhere (the reference a teacher
    handed out, or last week's copy)."""
    stages = kit_copy(tmp_path)
    quirky_stage_1(stages)
    assert next_stage(stages).returncode == 0     # stage 2 from the student's stage 1
    done = next_stage(stages, "--from", str(SOLUTIONS / SECOND))
    assert done.returncode == 0, done.stderr
    for name in ("server.py", "naming.py", "commands.py"):
        assert (stages / THIRD / name).read_bytes() == (SOLUTIONS / SECOND / name).read_bytes()


def test_what_moving_on_cannot_do_it_says_in_one_line(tmp_path):
    stages = kit_copy(tmp_path)
    shutil.rmtree(stages / FIRST)
    refused = next_stage(stages)
    assert refused.returncode == 2 and "give one with --from" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
    refused = next_stage(stages, "--from", str(tmp_path / "nowhere"))
    assert refused.returncode == 2 and "no such folder" in refused.stderr, refused.stderr
    refused = next_stage(stages, "--from", str(KIT / "stages" / THIRD))
    assert refused.returncode == 2 and "is not started itself" in refused.stderr
    finished = kit_copy(tmp_path / "whole")  # every stage started: nothing to move on to
    for stage in STAGES:
        for path in (SOLUTIONS / stage).glob("*.py"):
            shutil.copy(path, finished / stage / path.name)
    refused = next_stage(finished)
    assert refused.returncode == 2 and "nothing to move on to" in refused.stderr


@pytest.mark.parametrize("stage", STAGES[1:])
def test_each_solution_is_the_stage_before_moved_on(stage, tmp_path):
    """solutions/ grows as a student's stages do: each stage's folder is the stage
    before it, moved on (every file it carries the same), plus what the stage adds."""
    before = STAGES[STAGES.index(stage) - 1]
    for path in (SOLUTIONS / before).glob("*.py"):
        if path.name in ("chat_server.py", "chat_client.py"):
            continue
        assert (SOLUTIONS / stage / path.name).read_bytes() == path.read_bytes(), path.name
