"""How a check's failure is told: Expected, Got, Where, Hint, and the programs' output.

grader/wire.py keeps the conversation (the transcript, the scripted clients) and
knows nothing above it: its Conversation fails a check with what was expected, what
came and the hint. The conversation a check is given (attach.new_conversation, the
`conversation` fixture) is this module's, which tells more, in this order:

* the programs' reports (each waits a moment for a program on its way out, so the
  diagnosis knows whether it has exited);
* where a program waited on in vain is (grader/whereabouts.py, the stack sampler);
* what happened to a program that exited, or a skeleton's stand-in that answered,
  said first (grader/diagnosis.py), in place of a hint written for a live program.

The wire calls back here through three methods: `explanation` (every failure),
`told_exit` (a program that has ended) and `on_send`/`on_message` (what it notes of
each send and each message heard: an EXIT sent, a stand-in's reply).
"""

from __future__ import annotations


from grader import diagnosis, whereabouts, wire


class Conversation(wire.Conversation):
    """A check's conversation, whose failures are told in full (see the top)."""

    def __init__(self) -> None:
        super().__init__()
        self.stand_ins: list[str] = []   # TODOs whose stand-in replied (diagnosis.py)
        self.exit_sent_by = ""     # the last scripted client that sent EXIT (diagnosis.py)

    def on_send(self, label: str, data: bytes) -> None:
        if diagnosis.EXIT_FRAME in data:
            self.exit_sent_by = label

    def on_message(self, payload: bytes) -> None:
        super().on_message(payload)
        stand_in = diagnosis.STAND_IN_REPLY.search(payload)
        if stand_in:
            self.stand_ins.append(stand_in.group(1).decode())

    def told_exit(self, program, status: int) -> str:
        """A limit that stopped it, its crash told by its traceback, else its status,
        where it ended and the signal that killed it."""
        label = program.label
        if getattr(program, "limit_reason", ""):   # stopped by one of the grader's limits
            return "the grader stopped the %s: it %s" % (label, program.limit_reason)
        story = diagnosis.exit_story(program, self)   # a crash, told by its traceback
        if story:
            return story
        return "the %s %s" % (label, diagnosis.exited_with(program, status))

    def explanation(self, expected: str, got: str, hint) -> str:
        """The conversation, what we wanted, what came, where a program is, a hint, and
        the programs' output.

        `hint` is a sentence, or a function that returns one: a hint that depends on
        what happened meanwhile (e.g. on another thread's findings) is made only now."""
        if callable(hint):
            hint = hint()
        # First the programs' reports: each waits a moment for a program on its way out,
        # so the diagnosis below knows whether it has exited.
        reports = [report for report in (program.describe() for program in self.programs)
                   if report]
        where, hint = whereabouts.where(self, hint)   # a program waited on in vain: where is it?
        got, hint = diagnosis.diagnose(self, got, hint)   # an exit, a stand-in: said first
        return "\n".join(self.told(expected, got, where, hint) + reports)
