"""The chat kit's autograder: `pytest grader` (see docs/students.md § The grader)."""
