"""`python -m grader handout` and the GitHub Classroom workflow.

The handout is written, looked at (no solutions/, no tests/, a README made for
students) and graded where it lands, as a student would: `python -m pytest
grader --stage 1` in the handout. The Classroom workflow is read as plain
text (PyYAML is not a dependency), and each of its grading steps is run for
real in a student repository made from the handout with the reference
solutions in stages/: every step must pass and its max-score must be that
stage's points in the grader.
"""

import json
import re
import sys
import zipfile
from pathlib import Path

from gradekit import KIT, STAGES, run_bounded, stage_maximum, workflow_steps

STAGE1_POINTS, STAGE1_CHECKS = stage_maximum("1_echo")   # as the grader declares them


def run(command: list[str], cwd: Path, limit: float = 120) -> tuple[int, str]:
    code, output, _ = run_bounded(command, cwd, limit, merged=True)
    return code, output


def handout(out: Path, *args) -> str:
    code, output = run([sys.executable, "-m", "grader", "handout", "--out", str(out), *args],
                       KIT, limit=60)
    assert code == 0, output
    return output


def graders(text: str) -> list[dict]:
    """The workflow's grading steps: one per stage, each with an id stageN."""
    return [s for s in workflow_steps(text) if re.fullmatch(r"stage\d", s.get("id", ""))]


def test_handout_has_no_solutions_and_a_students_readme(tmp_path):
    out = tmp_path / "chat-kit"
    handout(out, "--stages", "2", "--classroom")
    top = sorted(p.name for p in out.iterdir())
    assert top == sorted([".github", ".gitignore", "LICENSE", "README.md", "docs", "grader",
                          "protocol.py", "pyproject.toml", "requirements.txt", "stages",
                          "todo.py"])
    assert sorted(p.name for p in (out / "stages").iterdir()) == STAGES[:2]
    assert sorted(p.name for p in (out / "docs").iterdir()) == ["grader-reference.md",
                                                                "students.md"]
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert readme == (out / "docs" / "students.md").read_text(encoding="utf-8")
    assert readme.index("## Start here") < readme.index("## For students")
    assert "python -m pytest grader --stage 1" in readme
    assert "(/docs/grader-reference.md)" in readme, "the link works from README.md and docs/"
    reference = (out / "docs" / "grader-reference.md").read_text(encoding="utf-8")
    debugging = readme[readme.index("### Debugging a failing check"):]   # students.md's
    for move in ("--show-exchange", "--check 1.9 --attach 7777", '"type": "debugpy"',
                 "PyCharm", "python -m pdb stages/1_echo/chat_server.py --port 7777",
                 "python -m grader.keyboard 7777 stages/1_echo/chat_client.py"):
        assert move in debugging, "the handout's § Debugging a failing check lacks %r" % move
    for absent in ("pytest tests", "kit-only", "handout-only", "## For instructors",
                   "## Layout", "solutions/", "teachers.md", "developing.md", "batch"):
        assert absent not in readme, "the handout README mentions %r" % absent
        assert absent not in reference, "the handout's grader-reference.md mentions %r" % absent
    note = " ".join(readme.split())
    assert "This copy holds stages 1_echo and 2_naming." in note
    assert "starts from your own code of the stage before it" in note
    assert "python -m grader next" in note and "reference solutions" not in note
    kit_readme = (KIT / "README.md").read_text(encoding="utf-8")
    assert "python -m pip install -r requirements.txt" in kit_readme
    assert "python -m pytest tests" in kit_readme and len(kit_readme.splitlines()) <= 80
    assert "python -m grader batch" in (KIT / "docs" / "teachers.md").read_text(encoding="utf-8")
    workflow = (out / ".github" / "workflows" / "classroom.yml").read_text(encoding="utf-8")
    assert [s["id"] for s in graders(workflow)] == ["stage2"], "it grades stage 2 only"
    assert "runners: stage2\n" in workflow and "STAGE1_RESULTS" not in workflow
    assert not (out / "grader" / "teach").exists(), "the teachers' tools are not handed out"
    handed = {p.relative_to(out).as_posix() for p in (out / "grader").rglob("*.py")}
    kit = {p.relative_to(KIT).as_posix() for p in (KIT / "grader").rglob("*.py")
           if "teach" not in p.parts and "__pycache__" not in p.parts}
    assert handed == kit, "the student's grader, whole: missing %s" % sorted(kit - handed)


def test_every_section_a_hint_names_is_in_the_students_guide():
    """The grader's hints and the skeletons' TODOs send students to 'docs/students.md §
    Stage 2': each section they name is a heading of that guide."""
    guide = (KIT / "docs" / "students.md").read_text(encoding="utf-8")
    headings = {line.lstrip("#").strip() for line in guide.splitlines() if line.startswith("#")}
    named = set()
    for folder in ("grader", "stages", "solutions"):
        for path in (KIT / folder).rglob("*.py"):
            named |= set(re.findall(r"docs/students\.md § ([A-Z][\w ]*?\w)(?=[).,:;]|$)",
                                    " ".join(path.read_text(encoding="utf-8").split())))
    assert named, "no hint names a section"
    missing = sorted(n for n in named if not any(h.startswith(n) for h in headings))
    assert not missing, "sections named but not in docs/students.md: %s" % missing


def student_visible_strings(path: Path) -> list[tuple[int, str]]:
    """The string constants of a handed-out file that can reach a student (hints, failure
    texts, check docstrings, option help): all but the module's own docstring."""
    import ast
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstring = ast.get_docstring(tree, clean=False)
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and node.value != docstring]


def test_every_guide_a_hint_names_is_in_the_handout():
    """A hint that sends a student to docs/developing.md or docs/teachers.md sends them to
    a file the handout does not have: the handed-out grader, skeletons and protocol.py name
    only the students' guide (the handout's docs/students.md, and its README)."""
    wrong = []
    files = [p for p in (KIT / "grader").rglob("*.py") if "teach" not in p.parts]
    files += list((KIT / "stages").rglob("*.py")) + [KIT / "protocol.py"]
    for path in files:
        for line, text in student_visible_strings(path):
            for named in re.findall(r"[\w/.-]+\.md\b", text):
                if named not in ("docs/students.md", "README.md"):
                    wrong.append("%s line %d: %s" % (path.relative_to(KIT), line, named))
    assert not wrong, "hints name files the handout lacks:\n" + "\n".join(wrong)


def test_the_teachers_tools_say_they_are_not_in_the_handout(tmp_path):
    out = tmp_path / "chat-kit"
    handout(out)
    for command in ("batch", "gradescope", "handout", "load"):
        code, output = run([sys.executable, "-m", "grader", command, "--help"], out, limit=30)
        assert code == 2 and "teachers' tools" in output and "Traceback" not in output, output


def test_handout_is_graded_where_it_lands(tmp_path):
    out = tmp_path / "chat-kit"
    handout(out)
    code, output = run([sys.executable, "-m", "pytest", "grader", "--stage", "1", "-q",
                        "--results", "r.json"], out)
    assert code == 1, "the skeletons should fail stage 1:\n" + output
    results = json.loads((out / "r.json").read_text(encoding="utf-8"))
    assert results["max_score"] == STAGE1_POINTS and results["score"] < STAGE1_POINTS
    assert len(results["tests"]) == STAGE1_CHECKS
    assert "not implemented yet" in results["tests"][0]["output"]
    assert "INTERNALERROR" not in output


def test_handout_as_a_zip_and_bad_paths(tmp_path):
    handout(tmp_path / "kit.zip", "--stages", "1")
    with zipfile.ZipFile(tmp_path / "kit.zip") as zf:
        names = zf.namelist()
    assert all(n.startswith("kit/") for n in names)
    assert "kit/stages/1_echo/chat_server.py" in names and "kit/README.md" in names
    assert not [n for n in names if n.split("/")[1] in ("solutions", "tests", ".ci")]
    assert not [n for n in names if n.startswith("kit/stages/2_naming")]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    for args, phrase in [(["--out", str(tmp_path / "full")], "not an empty folder"),
                         (["--out", str(tmp_path / "h"), "--stages", "5"], "--stages")]:
        code, output = run([sys.executable, "-m", "grader", "handout", *args], KIT, limit=30)
        assert code == 2 and phrase in output and "Traceback" not in output, output


def solution_files(folder: Path) -> dict[str, bytes]:
    """Every .py file of a folder of stage folders: {stage/name: bytes}."""
    return {path.relative_to(folder).as_posix(): path.read_bytes()
            for path in folder.glob("*/*.py")}


def test_each_handout_says_what_it_holds_and_gives_nothing_away(tmp_path):
    """Week by week: the README of the copy holding stages 1..N names them; no file of it
    is a solution's file holding the work of a TODO (each later stage starts from the
    student's own: python -m grader next); with --reference it holds the solutions of
    stages 1..N-1 under reference/ and says so, in the README and in what the command
    says; with --classroom, its workflow grades N alone, unless --grade says otherwise."""
    kits = solution_files(KIT / "stages")
    answers = {name: data for name, data in solution_files(KIT / "solutions").items()
               if kits.get(name) != data}   # a TODO's work, or a stage's carried code
    for stages in range(1, len(STAGES) + 1):
        out = tmp_path / ("week%d" % stages)
        said = " ".join(handout(out, "--stages", str(stages), "--classroom").split())
        note = " ".join((out / "README.md").read_text(encoding="utf-8").split())
        held, before = STAGES[:stages], STAGES[:stages - 1]
        assert sorted(p.name for p in (out / "stages").iterdir()) == held
        given = set(answers.values()) & set(solution_files(out / "stages").values())
        assert not given and not (out / "reference").exists(), "week %d gives away" % stages
        for stage in STAGES[stages:]:
            assert stage not in note.split("## Start here")[1].split("## ")[0]
        if before:
            assert "starts from your own code of the stage before it" in note, note[:1500]
        else:
            assert "This copy holds the first stage, 1_echo." in note
        assert "reference solutions" not in said and "reference solutions" not in note
        workflow = (out / ".github" / "workflows" / "classroom.yml").read_text(encoding="utf-8")
        assert [s["id"] for s in graders(workflow)] == ["stage%d" % stages]
        assert "workflow grades %s, with the student's own copy of grader/" % held[-1] in said
        if before:
            out = tmp_path / ("week%d-reference" % stages)
            said = " ".join(handout(out, "--stages", str(stages), "--reference").split())
            note = " ".join((out / "README.md").read_text(encoding="utf-8").split())
            assert sorted(p.name for p in (out / "reference").iterdir()) == before
            assert solution_files(out / "reference") == {
                name: data for name, data in solution_files(KIT / "solutions").items()
                if name.split("/")[0] in before}
            assert "reference solutions of %s in reference/" % ", ".join(before) in said
            assert "python -m grader next --from reference/%s" % before[-1] in note, note[:1500]
    out = tmp_path / "cumulative"
    said = handout(out, "--stages", "3", "--classroom", "--grade", "1,2,3",
                   "--grader-from", "my-course/chat-kit@1a2b3c4")
    workflow = (out / ".github" / "workflows" / "classroom.yml").read_text(encoding="utf-8")
    assert [s["id"] for s in graders(workflow)] == ["stage1", "stage2", "stage3"]
    assert "GRADER_REPOSITORY: 'my-course/chat-kit'" in workflow
    assert "GRADER_COMMIT: '1a2b3c4'" in workflow and "with the grader of my-course" in said
    for args, phrase in [(["--stages", "2", "--classroom", "--grade", "3"], "only stages 1 to 2"),
                         (["--grade", "1"], "go with --classroom"),
                         (["--classroom", "--grader-from", "my-course/chat-kit"], "OWNER/NAME@")]:
        code, output = run([sys.executable, "-m", "grader", "handout", "--out",
                            str(tmp_path / "bad"), *args], KIT, limit=30)
        assert code == 2 and phrase in output and "Traceback" not in output, output
