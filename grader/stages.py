"""The kit's four stages, and how a command line names them: the one list of both."""

STAGES = ["1_echo", "2_naming", "3_messaging", "4_exit"]


def stages_named(values: list[str]) -> list[str]:
    """['2', 'exit,1_echo'] -> ['1_echo', '2_naming', '4_exit'] (in stage order); [] for none.

    A stage is named by its folder, its number or its name ('2_naming', '2',
    'naming'); several may be comma-separated. Raises ValueError for any other.
    """
    chosen = []
    for value in (v.strip() for value in values for v in value.split(",") if v.strip()):
        matches = [s for s in STAGES if value in (s, s[0], s[2:])]
        if not matches:
            raise ValueError("--stage %s: no such stage; use 1-4 or one of %s"
                             % (value, ", ".join(STAGES)))
        chosen += matches
    return [s for s in STAGES if s in chosen]
