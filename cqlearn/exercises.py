"""Checks for the book's exercises (the course lab; see book/instructor.md).

A check says right or wrong and why in general terms; it never prints the expected value. An
answer still missing gets a clear "not answered yet", never a confusing traceback.

    ex.answered(answer_1=answer_1)          # NotAnswered if answer_1 is None or ...
    ex.require(len(answer_1) == 2, "give two numbers")     # silent when it holds
    ex.check(answer_1 in allowed, "a rate is a count divided by T")
    ex.check_function(my_clamp, reference, inputs, "values above 1 must come out as 1")
"""
import torch


class NotAnswered(Exception):
    """An exercise the student has not answered yet."""


def answered(**answers):
    """Raise NotAnswered naming the first answer that is still None (or ...)."""
    for name, value in answers.items():
        if value is None or value is Ellipsis:
            raise NotAnswered(f"{name} is not answered yet: write your answer in the cell above "
                              "(replace the `raise NotImplementedError` line), run it, then run this check.")


def require(condition, why):
    """Fail with `why` (a hint, never the answer) unless condition holds; silent when it does, so that a
    check cell can test the form of an answer first and end with one `check`."""
    if not condition:
        raise AssertionError(f"Not yet: {why}")


def check(condition, why):
    """Print "Right." when condition holds, else fail with `why` (a hint, never the answer)."""
    require(condition, why)
    print("Right.")


def check_function(function, reference, inputs, why, atol=1e-6, name=None):
    """Compare function(*args) with reference(*args) for every args in `inputs` (tuples) without
    showing the expected values; fails with `why` and the number of the first input that differs.
    `name` is what the messages call the function (default: its __name__), for a check that wraps the
    student's function, e.g. to run it for many steps."""
    name = name or getattr(function, "__name__", "your function")
    for k, args in enumerate(inputs):
        args = args if isinstance(args, tuple) else (args,)
        expected = reference(*[a.clone() if torch.is_tensor(a) else a for a in args])
        try:
            got = function(*[a.clone() if torch.is_tensor(a) else a for a in args])
        except NotImplementedError as error:
            raise NotAnswered(f"{name} is not written yet ({error}).") from None
        if got is None:
            raise AssertionError(f"Not yet: {name} returns nothing (None): end it with `return ...`.")
        if not _close(got, expected, atol):
            raise AssertionError(f"Not yet: {name} differs from the library on test input {k + 1} "
                                 f"of {len(inputs)}. {why}")
    print(f"Right: {name} agrees with the library on all {len(inputs)} test inputs.")


def _close(got, expected, atol):
    try:
        return _equal_within(got, expected, atol)
    except (TypeError, ValueError, RuntimeError):   # a result of the wrong kind is a wrong result
        return False


def _equal_within(got, expected, atol):
    if isinstance(expected, (tuple, list)):
        return (isinstance(got, (tuple, list)) and len(got) == len(expected)
                and all(_equal_within(g, e, atol) for g, e in zip(got, expected)))
    if torch.is_tensor(expected):
        got = torch.as_tensor(got)
        return got.shape == expected.shape and torch.allclose(got.double(), expected.double(), atol=atol, rtol=0)
    return abs(float(got) - float(expected)) <= atol
