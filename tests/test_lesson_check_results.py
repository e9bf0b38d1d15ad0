"""The verdict object every exercise check returns."""

from kit.lessons._check import call_learner, failed, is_unanswered, passed, unanswered


def test_verdicts_are_truthy_only_when_passed():
    assert passed("ex", "ok")
    assert not failed("ex", "wrong")
    assert not unanswered("ex", "hint")


def test_verdict_prints_the_exercise_and_what_is_wrong():
    text = repr(failed("ex 2.1", "head L0H1 is not the previous-token head"))
    assert "ex 2.1" in text and "previous-token head" in text and "not yet" in text


def test_verdict_html_escapes_the_message():
    html = failed("ex", "<script>alert(1)</script>")._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_placeholders_count_as_unanswered():
    assert is_unanswered(...) and is_unanswered(None) and not is_unanswered(0)


def test_learner_exception_becomes_a_failed_verdict_naming_it():
    def buggy(x):
        return x["missing"]

    value, verdict = call_learner("ex", buggy, {})
    assert value is None and not verdict and "KeyError" in verdict.message


def test_not_implemented_counts_as_unanswered():
    def todo():
        raise NotImplementedError

    _, verdict = call_learner("ex", todo)
    assert verdict.status == "unanswered"


def test_a_working_function_returns_its_value_and_no_verdict():
    value, verdict = call_learner("ex", lambda a, b: a + b, 1, 2)
    assert value == 3 and verdict is None
