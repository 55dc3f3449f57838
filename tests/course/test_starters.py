"""Every exercise's starter cell and its solution share one skeleton: the solution is the starter
with the TODOs done. A line of the starter that carries no TODO must be in the solution too, in
the same order — so a fix made to one (e.g. ``sagas.undo`` in the hotel saga) cannot miss the
other."""

from __future__ import annotations

import inspect
import io
import re
import tokenize

import pytest

from .test_exercises import EXERCISES, starters

SOLUTIONS = {number: solution for number, (_, solution, _) in EXERCISES.items()}


def logical_lines(source: str) -> list[tuple[str, bool]]:
    """The code of each logical line (whitespace and trailing commas dropped), and whether the
    learner's part: a TODO comment marks the line it is on or, standing alone, the line below."""
    lines: list[tuple[str, bool]] = []
    code, todo, todo_below = "", False, False
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            todo = todo or "TODO" in token.string
        elif token.type == tokenize.NL and not code:  # a blank line, or a comment alone
            code, todo, todo_below = "", False, todo
        elif token.type in (tokenize.NEWLINE, tokenize.ENDMARKER) and code:
            lines.append((re.sub(r",([)\]}])", r"\1", code), todo or todo_below))
            code, todo, todo_below = "", False, False
        elif token.type not in (tokenize.NL, tokenize.INDENT, tokenize.DEDENT,
                                tokenize.NEWLINE, tokenize.ENDMARKER):
            code += token.string
    return lines


@pytest.mark.parametrize("exercise", sorted(SOLUTIONS))
def test_the_solution_is_the_starter_with_its_todos_done(exercise: str) -> None:
    solution = [code for code, _ in logical_lines(inspect.getsource(SOLUTIONS[exercise]))]
    missing, at = [], 0
    for code, todo in logical_lines(starters()[exercise]):
        if todo or code.startswith("lab.serve("):
            continue  # the learner's part, and serving it (the notebook's own line)
        if code in solution[at:]:
            at = solution.index(code, at) + 1
        else:
            missing.append(code)
    assert not missing, (f"lines of exercise {exercise}'s starter not in "
                         f"{SOLUTIONS[exercise].__name__} (in order): {missing}")
