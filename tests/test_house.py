"""The kit's structure keeps its promises: the rooms stay as they were laid out.

* The grader's core (everything in grader/ but the pytest plugin, the check
  declarations and the checks themselves) imports no pytest.
* The stages are declared once in the code (grader/stages.py): no other code of
  the grader names a stage folder.
* The handout's tools (grader/teach/) are not needed by the student's grader.
* grader/conftest.py stays the plugin's face: pytest's hooks and the fixtures,
  each handing its job to a room of its own (grading.py, report.py, ...).
"""

import ast

from gradekit import KIT, STAGES

PYTEST_SIDE = {"conftest.py", "options.py", "timer.py",   # the plugin, its options, the
               "checks.py", "attach.py"}   # check's time limit (pytest-timeout's hooks), how a
                                           # check is declared, and the plugin's --attach part


def imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_graders_core_imports_no_pytest():
    core = [p for p in (KIT / "grader").glob("*.py")
            if p.name not in PYTEST_SIDE and not p.name.startswith("test_")]
    assert len(core) >= 10, core
    importing = [p.name for p in core if "pytest" in imported_modules(p)]
    assert not importing, "core modules that import pytest: %s" % importing


def test_the_plugin_is_a_face_its_jobs_have_rooms():
    """conftest.py holds the hooks and the fixtures, each a few lines that hand the job
    on; a job growing there (a class, a long function) belongs in a room of its own."""
    path = KIT / "grader" / "conftest.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    classes = [node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    assert not classes, "classes in grader/conftest.py: %s" % classes
    long = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)
            and node.end_lineno - node.lineno + 1 > 30]
    assert not long, "functions of over 30 lines in grader/conftest.py: %s" % long
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= 250, "grader/conftest.py has %d lines" % lines
    upward = [p.name for p in (KIT / "grader").rglob("*.py")
              if {"grader.conftest", "conftest"} & imported_modules(p)]
    assert not upward, "modules that import the plugin (its rooms must not): %s" % upward


def code_strings(path) -> list[tuple[int, str]]:
    """(line, text) of every string literal in a module's code, not its docstrings."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant):
            docstrings.add(id(body[0].value))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]


def test_the_stages_are_declared_once():
    """No code of the grader names a stage folder but the stages' declaration: the others
    read it (grader/stages.py), so that a teacher's stage is one declaration."""
    naming = []
    for path in sorted((KIT / "grader").rglob("*.py")):
        if path.name == "stages.py":
            continue
        for line, text in code_strings(path):
            if any(stage in text for stage in STAGES):
                naming.append("%s:%d %r" % (path.relative_to(KIT).as_posix(), line, text[:60]))
    assert not naming, "stage folders named outside grader/stages.py:\n" + "\n".join(naming)


def test_the_students_grader_needs_no_teachers_tool():
    for path in (KIT / "grader").glob("*.py"):
        modules = imported_modules(path)
        assert not any(m.startswith("grader.teach") for m in modules), path.name


def test_the_readme_ci_and_every_systems_workflow_run_the_same_two_commands():
    """The README's set-up and test commands are what .ci/run runs, and what the kit's
    workflow runs on Linux, macOS and Windows (.github/workflows/kit.yml)."""
    import re
    readme = (KIT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Set up and test.*?```\n(.*?)```", readme, re.S).group(1)
    commands = [line.strip() for line in block.splitlines() if line.strip()]
    assert commands == ["python -m pip install -r requirements.txt", "python -m pytest tests"]
    ci = [line.strip() for line in (KIT / ".ci" / "run").read_text().splitlines()
          if line.startswith("python")]
    assert ci == commands
    workflow = (KIT / ".github" / "workflows" / "kit.yml").read_text(encoding="utf-8")
    assert re.findall(r"run: (.+)", workflow) == commands
    systems = re.search(r"os: \[(.*?)\]", workflow).group(1)
    assert [name.strip() for name in systems.split(",")] == [
        "ubuntu-latest", "macos-latest", "windows-latest"]
