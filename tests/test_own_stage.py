"""A teacher's own stage and own check, added exactly as docs/teachers.md says, on a copy
of the kit.

§ A stage of your own: the five steps, done to the letter with the worked example in
docs/examples/5_shout/. Then the reference scores full marks in all five stages, a
stage-5 skeleton started from the reference of stage 4 scores 0 (its kept checks
pass), stages 1 to 4 are declared exactly as before, and the handout, the Gradescope
bundle and batch (its grades.csv column) take the new stage. § A check of your own:
its two steps; the reference passes the new check, the stage's total grows by its
points, and the mistake it is about fails it with its hint.
"""

import csv
import json
import shutil
import subprocess
import sys
import zipfile

import pytest

from gradekit import KIT, STAGES

sys.path.insert(0, str(KIT))
from grader import catalog  # noqa: E402
from grader.moving_on import carry  # noqa: E402

EXAMPLE = KIT / "docs" / "examples" / "5_shout"
KIT_FILES = ["grader", "stages", "solutions", "docs", "classroom", "protocol.py", "todo.py",
             "requirements.txt", "pyproject.toml", "LICENSE", "README.md"]
LIMIT = 300   # seconds for any one command here: a guard against a hang


def copy_of_the_kit(folder):
    folder.mkdir(parents=True)
    for name in KIT_FILES:
        source = KIT / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.is_file():
            shutil.copy(source, folder / name)
    return folder


def run(kit, *command):
    done = subprocess.run([sys.executable, *command], cwd=kit, capture_output=True, text=True,
                          timeout=LIMIT)
    return done.returncode, done.stdout + done.stderr


def grade(kit, impl, *args):
    """The copy's own grader on `impl`: its results.json."""
    results = kit / ("results-%d.json" % len(list(kit.glob("results-*.json"))))
    code, output = run(kit, "-m", "pytest", "grader", "--impl", str(impl), "--results",
                       str(results), "-q", "-p", "no:cacheprovider", *args)
    assert results.is_file(), output[-3000:]
    return json.loads(results.read_text(encoding="utf-8")), output


def follow_the_five_steps(kit):
    """docs/teachers.md § A stage of your own, step by step."""
    shutil.copytree(EXAMPLE / "stages" / "5_shout", kit / "stages" / "5_shout")       # 1
    shutil.copytree(EXAMPLE / "solutions" / "5_shout", kit / "solutions" / "5_shout")
    shutil.copy(EXAMPLE / "grader" / "test_5_shout.py", kit / "grader")               # 2
    stages = kit / "grader" / "stages.py"                                             # 3
    text = stages.read_text(encoding="utf-8")
    last = text.index("client_says_exit=True),\n", text.index('"4_exit"')) + len(
        "client_says_exit=True),\n")
    stages.write_text(text[:last] + (EXAMPLE / "declaration.txt").read_text(encoding="utf-8")
                      + text[last:], encoding="utf-8")
    code, output = run(kit, "-m", "grader", "next", "--impl", "solutions")            # 4
    assert code == 0 and "Stage 5_shout now starts from" in output, output
    guide = kit / "docs" / "students.md"                                              # 5
    text = guide.read_text(encoding="utf-8")
    after = text.index("\n### ", text.index("### Stage 4: exit"))
    guide.write_text(text[:after] + "\n" + (EXAMPLE / "students.md").read_text(
        encoding="utf-8") + text[after:], encoding="utf-8")


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    kit = copy_of_the_kit(tmp_path_factory.mktemp("own") / "kit")
    follow_the_five_steps(kit)
    return kit


def test_the_reference_scores_full_marks_in_all_five_stages(kit, report):
    results, output = grade(kit, kit / "solutions")
    failed = [t["name"] for t in results["tests"] if t["status"] != "passed"]
    assert not failed, output[-3000:]
    stage5 = [t for t in results["tests"] if t["tags"] == ["5_shout"]]
    assert {t["number"] for t in stage5} >= {"5.1", "5.2", "5.3", "5.20", "5.30"}
    assert sum(t["max_score"] for t in stage5) == 3   # 5.1 and 5.2; 5.3 and the client's kept
    report("a stage of your own: 5 steps, %d files added or changed (3 skeleton, 3 solution, "
           "1 checks, stages.py, students.md); the reference %d/%d in five stages"
           % (9, results["score"], results["max_score"]))


def test_a_started_skeleton_of_the_new_stage_scores_nothing(kit, tmp_path):
    impl = tmp_path / "started"
    shutil.copytree(kit / "stages" / "5_shout", impl / "5_shout")
    carry(kit / "solutions" / "4_exit", impl / "5_shout")
    for name in ("protocol.py", "todo.py"):
        shutil.copy(kit / name, tmp_path / name)
    results, output = grade(kit, impl, "--stage", "5")
    assert results["score"] == 0 < results["max_score"], output[-3000:]
    kept = [t for t in results["tests"] if t["max_score"] == 0]
    assert kept and all(t["status"] == "passed" for t in kept), output[-3000:]
    first = next(t for t in results["tests"] if t["number"] == "5.1")
    assert ("TODO 5.1 is not done yet (its stand-in ran in its place): Shout "
            "(docs/students.md § Stage 5)." in first["output"]), first["output"]


def test_stages_1_to_4_are_declared_as_before(kit):
    code, output = run(kit, "-c", "import json; from grader import catalog; "
                                  "print(json.dumps(catalog.checks(%r)))" % STAGES)
    assert code == 0, output
    assert json.loads(output) == catalog.checks(STAGES)


def test_the_handout_gradescope_and_batch_take_the_new_stage(kit, tmp_path):
    code, output = run(kit, "-m", "grader", "handout", "--out", str(tmp_path / "handout"),
                       "--stages", "5", "--classroom")
    assert code == 0, output
    handed = tmp_path / "handout" / "stages" / "5_shout"
    assert (handed / "shouting.py").is_file() and not (handed / "server.py").exists()
    workflow = (tmp_path / "handout" / ".github" / "workflows" / "classroom.yml").read_text(
        encoding="utf-8")
    assert "- name: Stage 5 (shout)\n      id: stage5\n" in workflow
    assert "--stage 5 --classroom-results" in workflow and "runners: stage5\n" in workflow
    code, output = run(kit, "-m", "grader", "gradescope", "--out", str(tmp_path / "g.zip"),
                       "--stage", "5")
    assert code == 0, output
    with zipfile.ZipFile(tmp_path / "g.zip") as bundle:
        names = bundle.namelist()
        declared = bundle.read(next(n for n in names if n.endswith("grader/stages.py")))
    assert any(n.endswith("grader/test_5_shout.py") for n in names), names
    assert b'"5_shout"' in declared
    subs = tmp_path / "subs"
    shutil.copytree(kit / "solutions", subs / "ada")
    code, output = run(kit, "-m", "grader", "batch", str(subs), "--out", str(tmp_path / "out"),
                       "--stage", "5", "--jobs", "1")
    assert code == 0, output
    with open(tmp_path / "out" / "grades.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert "5_shout" in rows[0] and rows[0]["status"] == "graded", rows
    assert rows[0]["5_shout"] == rows[0]["max_score"] == "3", rows


CHECK = '''

@check(19, "A name of exactly 16 characters is taken", needs=None)
def test_sixteen_characters(server):
    """'NAME abcdefghijklmnop' (16 letters) gets 'HELLO abcdefghijklmnop'."""
    alice = server.connect("alice")
    alice.send("NAME abcdefghijklmnop")
    alice.expect("HELLO abcdefghijklmnop", hint="a name may have 16 characters: "
                 "compare with <=, not < (docs/students.md § Stage 2).")
'''


def test_a_check_of_your_own(tmp_path):
    """docs/teachers.md § A check of your own: the check as it shows it, in stage 2."""
    kit = copy_of_the_kit(tmp_path / "kit")
    module = kit / "grader" / "test_2_naming.py"
    module.write_text(module.read_text(encoding="utf-8") + CHECK, encoding="utf-8")
    before, _ = catalog.stage_maximum("2_naming")
    results, output = grade(kit, kit / "solutions", "--stage", "2")
    assert results["score"] == results["max_score"] == before + 1, output[-3000:]
    assert any(t["number"] == "2.19" for t in results["tests"])
    planted = tmp_path / "planted"
    shutil.copytree(kit / "solutions", planted / "impl")
    for name in ("protocol.py", "todo.py"):
        shutil.copy(kit / name, planted / name)
    naming = planted / "impl" / "2_naming" / "naming.py"
    text = naming.read_text(encoding="utf-8")
    assert "len(name) <= protocol.MAX_NAME_LENGTH" in text
    naming.write_text(text.replace("len(name) <= protocol.MAX_NAME_LENGTH",
                                   "len(name) < protocol.MAX_NAME_LENGTH"), encoding="utf-8")
    results, output = grade(kit, planted / "impl", "--stage", "2")
    failed = {t["number"]: t["output"] for t in results["tests"] if t["status"] != "passed"}
    assert "2.19" in failed, output[-3000:]
    assert "compare with <=, not <" in failed["2.19"], failed["2.19"]
