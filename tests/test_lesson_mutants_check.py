"""The verdict object, exactly: how it prints, how it renders, and what it refuses (mutation survivors of
``kit/lessons/_check.py``, issue 16)."""

from __future__ import annotations

import pytest

from kit.lessons._check import CheckResult, call_learner, failed, passed, unanswered


@pytest.mark.parametrize("make, mark", [(passed, "✔ correct"), (failed, "✘ not yet")], ids=["passed", "failed"])
def test_a_verdict_prints_its_mark_exercise_and_message_exactly(make, mark):
    assert repr(make("1.2 where a head looks", "look again")) == f"{mark} [1.2 where a head looks]: look again"


def test_an_unanswered_verdict_prints_to_do_and_the_hint():
    assert repr(unanswered("2.1 x", "use the diagonal")) == (
        "… to do [2.1 x]: replace the `...` with your answer. Hint: use the diagonal")


@pytest.mark.parametrize("make, colour, mark", [
    (passed, "#1a7f37", "✔ correct"), (failed, "#cf222e", "✘ not yet"), (unanswered, "#9a6700", "… to do")],
    ids=["passed", "failed", "unanswered"])  # plain ids: mutmut's fork server cannot select non-ASCII ones
def test_a_verdict_renders_as_a_box_in_its_status_colour(make, colour, mark):
    html = make("3.1 a<b", "x & y")._repr_html_()
    assert html == (
        f'<div class="kit-check" style="border-left:4px solid {colour};padding:4px 8px;margin:4px 0">'
        f"<b style='color:{colour}'>{mark} [3.1 a&lt;b]</b>: " + ("x &amp; y" if make is not unanswered else
                                                                  "replace the `...` with your answer. Hint: x &amp; y")
        + "</div>")


@pytest.mark.parametrize("exercise, message", [(None, "m"), ("", "m"), ("  ", "m"), ("1.1", None), ("1.1", ""),
                                               (3, "m")])
def test_a_verdict_without_an_exercise_name_or_a_message_is_refused(exercise, message):
    # progress files key verdicts by exercise: a verdict that names none would be recorded under "null"
    with pytest.raises(ValueError, match="non-empty string"):
        CheckResult(exercise, "failed", message)


def test_an_unknown_status_is_refused_naming_the_valid_ones():
    with pytest.raises(ValueError, match="'passed', 'failed', 'unanswered'"):
        CheckResult("1.1", "ok", "m")


def test_a_learner_exception_names_its_type_message_and_line():
    def buggy(x):
        return 1 / x

    value, verdict = call_learner("1.1 e", buggy, 0)
    assert value is None and verdict.status == "failed" and verdict.exercise == "1.1 e"
    assert verdict.message.startswith("your function raised ZeroDivisionError: division by zero (line ")
    assert verdict.message.endswith(": return 1 / x)")


def test_something_that_is_not_a_function_is_a_failed_verdict_naming_its_type():
    value, verdict = call_learner("1.1 e", 42)
    assert value is None and verdict.status == "failed" and verdict.message == "expected a function, got int"


def test_a_stub_is_unanswered_under_its_exercise():
    def stub():
        raise NotImplementedError

    value, verdict = call_learner("1.1 e", stub)
    assert value is None and verdict.status == "unanswered" and verdict.exercise == "1.1 e"
    assert "NotImplementedError" in verdict.message
