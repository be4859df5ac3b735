"""The exercise checks (cqlearn/exercises.py): right or wrong and why, never the expected value."""
import pytest
import torch

from cqlearn import exercises as ex


def test_answered_names_the_first_missing_answer():
    ex.answered(answer_1=0, answer_2=[])                      # falsy answers are answers
    for missing in (None, ...):
        with pytest.raises(ex.NotAnswered, match="answer_2 is not answered yet"):
            ex.answered(answer_1=3, answer_2=missing)


def test_check_says_right_or_gives_the_reason(capsys):
    ex.check(1 + 1 == 2, "arithmetic")
    assert capsys.readouterr().out.strip() == "Right."
    with pytest.raises(AssertionError, match="^Not yet: count the spikes$"):
        ex.check(False, "count the spikes")


def test_check_function_passes_a_right_function_and_names_it(capsys):
    def clamp(x):
        return torch.minimum(torch.maximum(x, torch.zeros_like(x)), torch.ones_like(x))
    inputs = [torch.linspace(-2, 2, 41), (torch.tensor([0.0, 1.0]),)]
    ex.check_function(clamp, lambda x: x.clamp(0, 1), inputs, "why")
    assert "clamp agrees with the library on all 2 test inputs" in capsys.readouterr().out
    ex.check_function(lambda x: clamp(x), lambda x: x.clamp(0, 1), inputs, "why", name="my_clamp")
    assert "my_clamp agrees" in capsys.readouterr().out


def test_check_function_fails_without_showing_the_expected_value():
    secret = 123.456
    with pytest.raises(AssertionError) as failure:
        ex.check_function(lambda x: x, lambda x: x * 0 + secret, [torch.tensor(1.0), torch.tensor(2.0)],
                          "multiply, do not add")
    message = str(failure.value)
    assert "test input 1 of 2" in message and "multiply, do not add" in message
    assert "123" not in message


def test_check_function_gives_the_student_function_copies_of_the_inputs():
    x = torch.tensor([1.0, 2.0])

    def in_place(t):
        t += 1
        return t
    ex.check_function(in_place, lambda t: t + 1, [x], "why")
    assert x.tolist() == [1.0, 2.0]


@pytest.mark.parametrize("result, why", [(None, "returns nothing"), ("text", "differs"), ([1.0], "differs"),
                                         (torch.zeros(3), "differs")])
def test_a_result_of_the_wrong_kind_is_a_wrong_answer_not_a_traceback(result, why):
    with pytest.raises(AssertionError, match=why):
        ex.check_function(lambda x: result, lambda x: x * 2, [torch.ones(2)], "why")


def test_an_unwritten_function_is_not_answered_yet():
    def fold(layer, bn):
        raise NotImplementedError("not answered yet: replace this line with your answer")
    with pytest.raises(ex.NotAnswered, match="fold is not written yet .*not answered yet"):
        ex.check_function(fold, lambda a, b: a, [(torch.ones(1), torch.ones(1))], "why")


def test_tuples_and_lists_compare_element_by_element():
    reference = lambda x: (x, [x * 2, 3.0])
    ex.check_function(lambda x: (x.clone(), [x * 2, 3.0]), reference, [torch.ones(2)], "why")
    with pytest.raises(AssertionError):
        ex.check_function(lambda x: (x, [x * 2]), reference, [torch.ones(2)], "why")
    with pytest.raises(AssertionError):
        ex.check_function(lambda x: (x, [x * 2, 3.1]), reference, [torch.ones(2)], "why", atol=1e-3)


def test_require_is_silent_when_it_holds_and_fails_like_check(capsys):
    ex.require(True, "form")
    assert capsys.readouterr().out == ""
    with pytest.raises(AssertionError, match="^Not yet: give two numbers$"):
        ex.require(False, "give two numbers")
