"""The kit's commands: `python -m grader COMMAND ...`.

    python -m grader next                            start your next stage from your last one

    python -m grader batch SUBMISSIONS --out OUT     grade a whole class
    python -m grader gradescope --out autograder.zip the Gradescope autograder
    python -m grader classroom50 --out DIR            a Classroom 50 assignment's autograder
    python -m grader prairielearn --out DIR           PrairieLearn questions and their grader
    python -m grader handout --out PATH               the student copy of the kit
    python -m grader load --impl DIR --stage N        how many clients, how fast

Grading one implementation stays `pytest grader --impl DIR`. `next` is the
students' (grader/moving_on.py); every other command is a teachers' tool and
lives in its own module (grader/teach/<command>.py), each with a
`main(argv) -> int`. The student copy of the kit (the handout) has no
grader/teach/: there those commands say that they are the teachers' tools.
"""

from __future__ import annotations

import importlib
import sys

from grader.system import speak_utf8_off_the_console

STUDENTS = {"next": "grader.moving_on"}   # the students' commands, and their modules
COMMANDS = {
    "next": "start your next stage from your own code of the stage before it",
    "batch": "grade every submission of a class: grades.csv, checks.csv, report.html",
    "gradescope": "build the autograder zip to upload to Gradescope",
    "classroom50": "write a Classroom 50 assignment's autograder folder",
    "prairielearn": "write PrairieLearn questions graded by the kit (serverFilesCourse too)",
    "handout": "write the student copy of the kit (no solutions/, no tests/)",
    "load": "measure how many clients a server holds, and how fast",
}


def usage() -> str:
    lines = ["usage: python -m grader COMMAND [options]", "", "commands:"]
    lines += ["  %-12s %s" % (name, what) for name, what in COMMANDS.items()]
    lines += ["", "`python -m grader COMMAND --help` tells more; grading one folder is "
                  "`pytest grader --impl DIR`."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    speak_utf8_off_the_console()   # the summaries name students: Zoë, שרה
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print("python -m grader: no command %r\n\n%s" % (command, usage()), file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(STUDENTS.get(command, "grader.teach." + command))
    except ModuleNotFoundError as error:
        if error.name not in ("grader.teach", "grader.teach." + command):
            raise
        print("python -m grader %s: this is one of the teachers' tools, which the student "
              "copy of the kit does not include. Grade your work with `python -m pytest "
              "grader`." % command, file=sys.stderr)
        return 2
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
