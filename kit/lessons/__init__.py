"""Self-checks for the exercises of the lessons in ``lessons/``.

One module per lesson (``kit.lessons.<topic>``) holds that lesson's ``check_*`` functions. Each
returns a :class:`CheckResult` that says what is right or, clearly, what is wrong; it never raises on
a wrong answer. Solutions live in ``lessons/solutions/``.
"""

from kit.lessons._check import CheckResult

__all__ = ["CheckResult"]
