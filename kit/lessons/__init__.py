"""Self-checks for the exercises of the lessons in ``lessons/``, and what a class needs around them.

One module per lesson (``kit.lessons.<topic>``) holds that lesson's ``check_*`` functions. Each
returns a :class:`CheckResult` that says what is right or, clearly, what is wrong; it never raises on
a wrong answer. Solutions live in ``lessons/solutions/``.

For a class: :func:`start` sets the student (or ``$KIT_STUDENT``); each verdict is then recorded
locally (:mod:`kit.lessons.progress`, collected by ``python -m kit.lessons report DIR``) and
exercises may draw a per-student instance (:func:`variant`, :func:`variant_seed`).
"""

from kit.lessons._check import CheckResult
from kit.lessons.progress import collect
from kit.lessons.student import current_student, start, stop
from kit.lessons.variants import variant, variant_index, variant_seed

__all__ = ["CheckResult", "start", "stop", "current_student", "variant", "variant_index", "variant_seed", "collect"]
