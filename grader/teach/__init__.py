"""The teachers' tools, run as `python -m grader COMMAND` (grader/__main__.py).

    batch        grade a whole class: grades.csv, checks.csv, report.html
    gradescope   the Gradescope autograder zip
    handout      the student copy of the kit (this folder is not in it)
    load         how many clients a server holds, and how fast (loadgen: its workers)
    submissions  how a submission's folder or zip becomes a gradable copy

None of this is needed to grade one's own work with `pytest grader`.
"""
