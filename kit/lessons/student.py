"""Who is working through the lessons: the student id that progress records and exercise variants use.

The id comes, first found wins, from :func:`start` (``kit.lessons.start(student="ada")`` in a
notebook's first cell), from the ``KIT_STUDENT`` environment variable, or from ``JUPYTERHUB_USER``
(set by JupyterHub in each user's server). With none of them there is no student: nothing is
recorded and every exercise keeps its default instance (so nbval runs stay deterministic and write
nothing).

An id is 1-64 characters of letters, digits and ``. _ - @ +``, starting with a letter or digit (it
names a file). ``start`` refuses any other id; an invalid id in an environment variable is ignored
with a warning.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ENV_STUDENT", "ENV_HUB_USER", "Session", "start", "stop", "current_student", "valid_student_id"]

ENV_STUDENT = "KIT_STUDENT"
ENV_HUB_USER = "JUPYTERHUB_USER"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")


@dataclass(frozen=True)
class Session:
    """What :func:`start` set: the student id, whether verdicts are recorded, and where."""

    student: str
    record: bool = True
    folder: Path | None = None  # None: $KIT_PROGRESS_DIR, else ./.kit-progress (see kit.lessons.progress)

    def __repr__(self) -> str:
        where = "recording off" if not self.record else f"recording to {self.folder or '.kit-progress/'}"
        return f"kit.lessons session for student {self.student!r} ({where})"


_session: Session | None = None


def valid_student_id(student: str) -> bool:
    """True when ``student`` can name a progress file (see the module docstring)."""
    return isinstance(student, str) and _ID.fullmatch(student) is not None


def start(student: str, *, record: bool = True, folder: str | os.PathLike | None = None) -> Session:
    """Set the student for this kernel: checks record verdicts under this id, exercises draw its variants.

    ``record=False`` keeps the variants but writes nothing; ``folder`` overrides where the progress
    file goes (default ``$KIT_PROGRESS_DIR``, else ``.kit-progress/`` in the working directory, which
    is the notebook's own folder in Jupyter).
    """
    global _session
    if not valid_student_id(student):
        raise ValueError(f"student id {student!r} is not valid: use 1-64 letters, digits or . _ - @ +, starting "
                         f"with a letter or digit, e.g. 'ada' or 'ada.lovelace'")
    _session = Session(student, bool(record), Path(folder) if folder is not None else None)
    return _session


def stop() -> None:
    """Forget the student set by :func:`start` (the environment variables apply again)."""
    global _session
    _session = None


def session() -> Session | None:
    """The session in force: :func:`start`'s, else one from ``$KIT_STUDENT`` / ``$JUPYTERHUB_USER``, else None."""
    if _session is not None:
        return _session
    for name in (ENV_STUDENT, ENV_HUB_USER):
        value = os.environ.get(name, "").strip()
        if not value:
            continue
        if valid_student_id(value):
            return Session(value)
        warnings.warn(f"${name}={value!r} is not a valid student id (1-64 letters, digits or . _ - @ +); "
                      f"ignored", stacklevel=3)
    return None


def current_student() -> str | None:
    """The current student id, or None when no student is set."""
    s = session()
    return s.student if s is not None else None
