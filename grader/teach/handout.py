"""The student copy of the kit: `python -m grader handout --out PATH [--stages N]`.

Everything a student needs and nothing else: protocol.py, the skeletons in
stages/, the grader (without grader/teach/, the teachers' tools), the setup
files, and the students' guide (docs/students.md), which is also the copy's
README.md, with the page on the grader it links to (docs/grader-reference.md). Never solutions/ or tests/ (which holds working variants of the
solutions), nor the teachers' and developers' guides. PATH is a new folder, or
a .zip when it ends in .zip.

--stages N hands out the first N stages only. A stage's folder holds only what
that stage adds (a student starts it from their own stage before it: `python -m
grader next`), so no copy holds the answers of a stage. --reference adds, under
reference/, the reference solutions of the stages before stage N, for students
whose own stage failed (`python -m grader next --from reference/<stage>`): its
README says so. --classroom adds the GitHub Classroom workflow
(classroom/classroom.yml) as .github/workflows/classroom.yml; it grades stage N
only, or the stages --grade names. --grader-from OWNER/NAME@COMMIT makes the
workflow take the grader from that repository at that commit instead of the
student's own copy of grader/, which the student can change.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import textwrap
import time
import zipfile
from pathlib import Path

from grader.stages import DECLARED, STAGES, stages_named
from grader.teach.submissions import KIT, graders_files, is_junk

TOP_FILES = ["LICENSE", "protocol.py", "todo.py", "requirements.txt", "pyproject.toml",
             ".gitignore"]
GUIDE = "docs/students.md"
GRADER_REFERENCE = "docs/grader-reference.md"   # students.md links to it
WORKFLOW = KIT / "classroom" / "classroom.yml"
WORKFLOW_IN_HANDOUT = ".github/workflows/classroom.yml"


def holding_note(stages: int, reference: bool = False) -> str:
    """What a copy holding the first `stages` stages says about itself: which stages,
    that each starts from the student's own stage before it, and the reference it holds."""
    held = STAGES[:stages]
    if stages == 1:
        text = "This copy holds the first stage, %s." % held[0]
    else:
        text = ("This copy holds stages %s %s %s. Each stage after the first starts from "
                "your own code of the stage before it: `python -m grader next` starts it "
                "(§ Moving on)." % (held[0], "and" if stages == 2 else "to", held[-1]))
    if reference and stages > 1:
        text += (" Your teacher added the reference solutions of %s in reference/: if your "
                 "own %s does not work, start %s from the reference instead "
                 "(`python -m grader next --from reference/%s`)."
                 % (", ".join(held[:-1]), held[-2], held[-1], held[-2]))
    if stages < len(STAGES):
        text += (" The next stages come later. Until then, grade what you have with "
                 "`--stage`: without it the grader also lists the later stages, whose "
                 "folders you don't have yet.")
    return text


def guide_for_students(text: str, stages: int, reference: bool = False) -> str:
    """The students' guide as the handout carries it: a note at the end of its 'Start
    here' section says which stages the copy holds, and the reference it holds."""
    note = textwrap.fill(holding_note(stages, reference), 76)
    start = text.index("## Start here")
    end = text.index("\n## ", start + 1)
    return text[:end].rstrip("\n") + "\n\n" + note + "\n" + text[end:]


def workflow_for(text: str, graded: list[int], grader_from: str = "") -> str:
    """The Classroom workflow with a grading step (and a reporter line) for each stage
    `graded` (numbers), made from its first stage's step as the stages are declared
    (grader/stages.py: a teacher's own stage gets its step too), taking its grader from
    `grader_from` (OWNER/NAME@COMMIT; empty: the student's own copy)."""
    blocks, current = [], []
    for line in text.splitlines(keepends=True):
        if line.startswith("    - name: ") and current:
            blocks.append(current)
            current = []
        current.append(line)
    blocks.append(current)

    def stage_of(block):
        found = re.search(r"^\s+id: stage(\d+)\s*$", "".join(block), re.M)
        return int(found.group(1)) if found else None

    template = "".join(next(block for block in blocks if stage_of(block) is not None))
    first = DECLARED[0]
    steps = [step_for(template, first, stage) for stage in DECLARED if stage.number in graded]
    at = next(i for i, block in enumerate(blocks) if stage_of(block) is not None)
    kept = ["".join(block) for block in blocks if stage_of(block) is None]
    text = "".join(kept[:at] + steps + kept[at:])
    results = re.search(r"^(\s+)STAGE\d+_RESULTS: .*\n", text, re.M)
    lines = "".join('%sSTAGE%d_RESULTS: "${{steps.stage%d.outputs.result}}"\n'
                    % (results.group(1), k, k) for k in graded)
    text = re.sub(r"(^\s+STAGE\d+_RESULTS: .*\n)+", lambda m: lines, text, count=1, flags=re.M)
    text = re.sub(r"^(\s+runners: ).*$",
                  lambda m: m.group(1) + ",".join("stage%d" % k for k in graded),
                  text, flags=re.M)
    repository, _, commit = grader_from.partition("@")
    text = re.sub(r"^(\s+GRADER_REPOSITORY: ).*$", lambda m: m.group(1) + repr(repository),
                  text, count=1, flags=re.M)
    return re.sub(r"^(\s+GRADER_COMMIT: ).*$", lambda m: m.group(1) + repr(commit),
                  text, count=1, flags=re.M)


def step_for(template: str, first, stage) -> str:
    """The first stage's grading step, made the step of `stage`."""
    step = template.replace("Stage %d (%s)" % (first.number, first.title),
                            "Stage %d (%s)" % (stage.number, stage.title))
    step = re.sub(r"\bstage%d\b" % first.number, "stage%d" % stage.number, step)
    return re.sub(r"--stage %d\b" % first.number, "--stage %d" % stage.number, step)


def handout_files(stages: int, classroom: bool, graded: list[int] | None = None,
                  grader_from: str = "", reference: bool = False) -> dict[str, bytes]:
    """Every file of the handout: {path inside it: contents}."""
    files: dict[str, bytes] = {}
    for name in TOP_FILES:
        path = KIT / name
        if path.is_file():
            files[name] = path.read_bytes()
    guide = guide_for_students((KIT / GUIDE).read_text(encoding="utf-8"), stages, reference)
    files["README.md"] = files[GUIDE] = guide.encode("utf-8")
    files[GRADER_REFERENCE] = (KIT / GRADER_REFERENCE).read_bytes()
    for path in graders_files():   # not grader/teach/: teachers' tools
        files[path.relative_to(KIT).as_posix()] = path.read_bytes()
    folders = [KIT / "stages" / stage for stage in STAGES[:stages]]
    if reference:   # the solutions of the stages before the last, as reference/<stage>/
        folders += [KIT / "solutions" / stage for stage in STAGES[:stages - 1]]
    for folder in folders:
        for root, dirs, names in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not is_junk(d))
            for name in sorted(names):
                if not is_junk(name):
                    path = Path(root) / name
                    inside = path.relative_to(KIT).as_posix()
                    if inside.startswith("solutions/"):
                        inside = "reference/" + inside[len("solutions/"):]
                    files[inside] = path.read_bytes()
    if classroom:
        files[WORKFLOW_IN_HANDOUT] = workflow_for(
            WORKFLOW.read_text(encoding="utf-8"), graded or [stages], grader_from
        ).encode("utf-8")
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
                info = zipfile.ZipInfo("%s/%s" % (top, name), date_time=time.localtime()[:6])
                info.create_system = 3                   # Unix: the mode below counts
                info.external_attr = 0o100644 << 16      # rw-r--r--, as a file written here
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
        os.chmod(partial, 0o644)   # mkstemp makes it rw------- : the zip is for sharing
        os.replace(partial, out)
    except BaseException:
        os.unlink(partial)
        raise


GRADER_FROM = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+@[0-9a-f]{7,40}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m grader handout",
        description="Write the student copy of the kit: everything but solutions/, tests/ "
                    "and the teachers' tools, with the students' guide as its README. A "
                    "stage's folder holds only what it adds: students start each stage from "
                    "their own stage before it (python -m grader next).")
    parser.add_argument("--out", required=True, metavar="PATH",
                        help="a new folder, or a .zip file name")
    parser.add_argument("--stages", type=int, default=len(STAGES), metavar="N",
                        help="hand out the first N stages only (default: all %d)"
                             % len(STAGES))
    parser.add_argument("--reference", action="store_true",
                        help="add the reference solutions of the stages before stage N, "
                             "as reference/<stage>/, for students whose own stage failed")
    parser.add_argument("--classroom", action="store_true",
                        help="add the GitHub Classroom workflow as %s; it grades stage N "
                             "only" % WORKFLOW_IN_HANDOUT)
    parser.add_argument("--grade", action="append", default=[], metavar="STAGES",
                        help="with --classroom: the stages the workflow grades, e.g. 1,2,3 "
                             "(default: stage N only)")
    parser.add_argument("--grader-from", default="", metavar="OWNER/NAME@COMMIT",
                        help="with --classroom: grade with the grader of this public GitHub "
                             "repository at this commit, not the student's own copy")
    args = parser.parse_args(argv)
    if not 1 <= args.stages <= len(STAGES):
        parser.error("--stages must be 1 to %d" % len(STAGES))
    if (args.grade or args.grader_from) and not args.classroom:
        parser.error("--grade and --grader-from go with --classroom")
    if args.grader_from and not GRADER_FROM.fullmatch(args.grader_from):
        parser.error("--grader-from %s: give OWNER/NAME@COMMIT, the commit as its hash (7 to "
                     "40 hex digits), e.g. my-course/chat-kit@1a2b3c4" % args.grader_from)
    try:
        graded = [STAGES.index(s) + 1 for s in stages_named(args.grade)]
    except ValueError as error:
        parser.error(str(error).replace("--stage ", "--grade "))
    if any(k > args.stages for k in graded):
        parser.error("--grade: the copy holds only stages 1 to %d" % args.stages)
    graded = graded or [args.stages]
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
        files = handout_files(args.stages, args.classroom, graded, args.grader_from,
                              args.reference)
        (write_zip if as_zip else write_folder)(out, files)
    except OSError as error:
        print("python -m grader handout: %s" % error, file=sys.stderr)
        return 1
    held = STAGES[:args.stages]
    print("Wrote %s: %d files, stages %s. No solutions/, no tests/."
          % (out, len(files), ", ".join(held)))
    if args.reference and len(held) > 1:
        print("It holds the reference solutions of %s in reference/: hand it out once %s "
              "due." % (", ".join(held[:-1]), "that stage is" if len(held) == 2 else
                        "those are"))
    if args.classroom:
        print("Its GitHub Classroom workflow grades %s, with %s."
              % (", ".join(STAGES[k - 1] for k in graded),
                 "the grader of %s" % args.grader_from if args.grader_from else
                 "the student's own copy of grader/, which the student can change "
                 "(--grader-from takes it from your repository instead)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
