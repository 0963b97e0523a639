"""The course's stages: one declaration each, which everything else reads.

A stage is declared once, below: its folder, its title, the commands it adds,
the module of its server checks, what a fresh server of it answers, the traffic
the load tool can send it, and its client's traits. The grader's collection,
the client checks, the catalog, batch's columns, the Gradescope bundle, the
Classroom workflow, the load tool and the handout all read this list; no other
code of the grader names a stage folder or picks a stage by its place in the
list. A teacher adds a stage by adding a declaration here (docs/teachers.md §
A stage of your own).

How a command line names a stage is here too (`stages_named`): by its folder,
its number or its name ('2_naming', '2', 'naming').
"""

from __future__ import annotations

from dataclasses import dataclass

ECHO_PROBE = (b"fresh?", b"fresh?")      # an echo server answers a fresh client with its echo
NAMES_PROBE = (b"GET_NAMES", b"NAMES")   # a server with names: a fresh one holds none


@dataclass(frozen=True)
class Stage:
    number: int                 # its place in the course: 1, 2, ...; the N of check N.M
    folder: str                 # '2_naming': the folder of an implementation that holds it
    title: str                  # 'naming': what a person calls it
    adds: tuple[str, ...]       # the commands it adds (stage 1: none; its payloads are echoed)
    checks: str                 # the module of its server checks, in grader/
    probe: tuple[bytes, bytes]  # (sent, answer) of a fresh server (serverside.answers_as_fresh)
    traffic: str | None         # what the load tool sends it: 'echo', 'messages', or None
    client_says_exit: bool      # its client leaves by sending EXIT and waiting for BYE

    @property
    def name(self) -> str:
        """'naming': the folder without its number."""
        return self.folder.split("_", 1)[1] if "_" in self.folder else self.folder

    def __str__(self) -> str:
        return self.folder


DECLARED: tuple[Stage, ...] = (
    Stage(1, "1_echo", "echo", adds=(), checks="test_1_echo", probe=ECHO_PROBE,
          traffic="echo", client_says_exit=False),
    Stage(2, "2_naming", "naming", adds=("NAME", "GET_NAMES"), checks="test_2_naming",
          probe=NAMES_PROBE, traffic=None, client_says_exit=False),
    Stage(3, "3_messaging", "messaging", adds=("MSG",), checks="test_3_messaging",
          probe=NAMES_PROBE, traffic="messages", client_says_exit=False),
    Stage(4, "4_exit", "exit", adds=("EXIT",), checks="test_4_exit",
          probe=NAMES_PROBE, traffic="messages", client_says_exit=True),
)

STAGES = [stage.folder for stage in DECLARED]   # the folders, in the course's order
BY_FOLDER = {stage.folder: stage for stage in DECLARED}


def stage(folder: str) -> Stage:
    """The declaration of the stage in `folder` ('2_naming'); KeyError for none."""
    return BY_FOLDER[folder]


def stage_of_module(module_name: str) -> str | None:
    """'grader.test_2_naming' -> '2_naming': the stage whose server checks it holds."""
    short = module_name.rsplit(".", 1)[-1]
    return next((s.folder for s in DECLARED if s.checks == short), None)


def order(folder: str) -> int:
    """Where a stage comes in the course (for sorting); after every stage if unknown."""
    return stage(folder).number if folder in BY_FOLDER else len(DECLARED) + 1


def label(folder: str, number: int) -> str:
    """'2_naming', 3 -> '2.3': how results.json, the table and students name a check."""
    return "%d.%d" % (stage(folder).number, number)


def weights_example() -> str:
    """'1_echo=10,2_naming=20,...': how --weights is written, for help and errors."""
    return ",".join("%s=%d" % (s.folder, 10 * s.number) for s in DECLARED)


def stages_named(values: list[str]) -> list[str]:
    """['2', 'exit,1_echo'] -> ['1_echo', '2_naming', '4_exit'] (in stage order); [] for none.

    A stage is named by its folder, its number or its name ('2_naming', '2',
    'naming'); several may be comma-separated. Raises ValueError for any other.
    """
    chosen = []
    for value in (v.strip() for value in values for v in value.split(",") if v.strip()):
        matches = [s.folder for s in DECLARED if value in (s.folder, str(s.number), s.name)]
        if not matches:
            raise ValueError("--stage %s: no such stage; use 1-%d or one of %s"
                             % (value, len(DECLARED), ", ".join(STAGES)))
        chosen += matches
    return [s for s in STAGES if s in chosen]
