"""The student copy of the kit: `python -m grader handout --out PATH [--stages N]`.

Everything a student needs and nothing else: protocol.py, the skeletons in
stages/, the grader (without grader/teach/, the teachers' tools), the setup
files, and the students' guide (docs/students.md), which is also the copy's
README.md. Never solutions/ or tests/ (which holds working variants of the
solutions), nor the teachers' and developers' guides. PATH is a new folder, or
a .zip when it ends in .zip.

--stages N hands out the first N stages only: each stage's skeleton starts
from a working copy of the stage before it, so handing out stage 3 hands out
the answers of stages 1 and 2. --classroom adds the GitHub Classroom workflow
(classroom/classroom.yml) as .github/workflows/classroom.yml, with the steps
of the stages handed out.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

from grader.stages import STAGES
from grader.teach.submissions import KIT, is_junk

TOP_FILES = ["LICENSE", "protocol.py", "requirements.txt", "pyproject.toml", ".gitignore"]
GUIDE = "docs/students.md"
WORKFLOW = KIT / "classroom" / "classroom.yml"
WORKFLOW_IN_HANDOUT = ".github/workflows/classroom.yml"


def guide_for_students(text: str, stages: int) -> str:
    """The students' guide as the handout carries it: with fewer than all stages,
    a note at the end of its 'Start here' section says which it holds."""
    if stages >= len(STAGES):
        return text
    note = textwrap.fill(
        "This copy holds the first %d stage%s (%s): the next ones come later. Until "
        "then, grade what you have with `--stage`: without it the grader also lists "
        "the later stages, whose folders you don't have yet."
        % (stages, "" if stages == 1 else "s", ", ".join(STAGES[:stages])), 76)
    start = text.index("## Start here")
    end = text.index("\n## ", start + 1)
    return text[:end].rstrip("\n") + "\n\n" + note + "\n" + text[end:]


def workflow_for(text: str, stages: int) -> str:
    """The Classroom workflow with only the steps (and reporter lines) of stages 1..N."""
    blocks, current = [], []
    for line in text.splitlines(keepends=True):
        if line.startswith("    - name: ") and current:
            blocks.append(current)
            current = []
        current.append(line)
    blocks.append(current)

    def wanted(block):
        found = re.search(r"^\s+id: stage(\d+)\s*$", "".join(block), re.M)
        return found is None or int(found.group(1)) <= stages

    text = "".join(line for block in blocks if wanted(block) for line in block)
    text = re.sub(r"^\s+STAGE(\d+)_RESULTS: .*\n",
                  lambda m: m.group(0) if int(m.group(1)) <= stages else "", text, flags=re.M)
    return re.sub(r"^(\s+runners: ).*$",
                  lambda m: m.group(1) + ",".join("stage%d" % k for k in range(1, stages + 1)),
                  text, flags=re.M)


def handout_files(stages: int, classroom: bool) -> dict[str, bytes]:
    """Every file of the handout: {path inside it: contents}."""
    files: dict[str, bytes] = {}
    for name in TOP_FILES:
        path = KIT / name
        if path.is_file():
            files[name] = path.read_bytes()
    guide = guide_for_students((KIT / GUIDE).read_text(encoding="utf-8"), stages)
    files["README.md"] = files[GUIDE] = guide.encode("utf-8")
    for path in sorted((KIT / "grader").glob("*.py")) + sorted(
            (KIT / "grader" / "startup").glob("*.py")):   # not grader/teach/: teachers' tools
        files[path.relative_to(KIT).as_posix()] = path.read_bytes()
    for stage in STAGES[:stages]:
        folder = KIT / "stages" / stage
        for root, dirs, names in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not is_junk(d))
            for name in sorted(names):
                if not is_junk(name):
                    path = Path(root) / name
                    files[path.relative_to(KIT).as_posix()] = path.read_bytes()
    if classroom:
        files[WORKFLOW_IN_HANDOUT] = workflow_for(
            WORKFLOW.read_text(encoding="utf-8"), stages).encode("utf-8")
    return files


def write_folder(out: Path, files: dict[str, bytes]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def write_zip(out: Path, files: dict[str, bytes]) -> None:
    """A .zip whose files sit in one folder named like the zip (chat-kit.zip: chat-kit/)."""
    top = out.stem
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=out.name, suffix=".partial", dir=out.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in files.items():
                zf.writestr("%s/%s" % (top, name), data)
        os.replace(partial, out)
    except BaseException:
        os.unlink(partial)
        raise


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m grader handout",
        description="Write the student copy of the kit: everything but solutions/, tests/ "
                    "and the teachers' tools, with the students' guide as its README.")
    parser.add_argument("--out", required=True, metavar="PATH",
                        help="a new folder, or a .zip file name")
    parser.add_argument("--stages", type=int, default=len(STAGES), metavar="N",
                        help="hand out the first N stages only (default: all %d)" % len(STAGES))
    parser.add_argument("--classroom", action="store_true",
                        help="add the GitHub Classroom workflow as %s" % WORKFLOW_IN_HANDOUT)
    args = parser.parse_args(argv)
    if not 1 <= args.stages <= len(STAGES):
        parser.error("--stages must be 1 to %d" % len(STAGES))
    out = Path(args.out)
    as_zip = out.name.lower().endswith(".zip")
    problem = None
    if as_zip and out.is_dir():
        problem = "%s is a folder" % out
    elif not as_zip and out.exists() and (not out.is_dir() or any(out.iterdir())):
        problem = "%s already exists and is not an empty folder: remove it or pick another" % out
    elif not as_zip and out.resolve() in [KIT.resolve(), *KIT.resolve().parents]:
        problem = "%s would overwrite the kit itself" % out
    if problem:
        print("python -m grader handout: %s" % problem, file=sys.stderr)
        return 2
    try:
        files = handout_files(args.stages, args.classroom)
        (write_zip if as_zip else write_folder)(out, files)
    except OSError as error:
        print("python -m grader handout: %s" % error, file=sys.stderr)
        return 1
    print("Wrote %s: %d files, stages %s%s. No solutions/, no tests/."
          % (out, len(files), ", ".join(STAGES[:args.stages]),
             ", with the GitHub Classroom workflow" if args.classroom else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
