"""Progress: every exercise verdict is recorded in a small local file, and a class's files make a table.

Recording. Each :class:`~kit.lessons.CheckResult` a check makes is recorded (by ``_check.py``) in
``.kit-progress/<student>.json`` in the working directory (the notebook's folder in Jupyter; or
``$KIT_PROGRESS_DIR``, or the ``folder`` given to :func:`kit.lessons.start`), when a student is set
(:mod:`kit.lessons.student`) and ``$KIT_PROGRESS`` is not ``0``/``off``/``false``/``no``. Nothing
else is written and nothing leaves the machine. The file is rewritten atomically (a temporary file in
the same folder, then a rename) under a lock, so two notebooks of one student can record at once.
Recording never makes a check fail: a problem (a read-only folder, say) becomes a warning.

One file per student (format ``kit-progress/1``)::

    {"format": "kit-progress/1", "student": "ada",
     "exercises": {"2.1 previous-token score": {"status": "passed", "ever_passed": true,
                   "first_at": "...", "last_at": "...", "passed_at": "...", "message": "..."}},
     "digest": "<sha256 of the student and exercises>"}

``status`` is the latest verdict; ``ever_passed`` stays true once a check passed. The digest lets the
report flag a file edited by hand (it is a tamper *hint*, not security: anyone can recompute it).

Reporting. :func:`collect` (``python -m kit.lessons report DIR``) reads every ``*.json`` under a
folder into a :class:`ClassReport`: one row per (student, exercise), a wide CSV of who passed what,
and an altair chart. A file that is not valid JSON, not in this format, named after another
student, or whose digest does not match is listed in ``report.problems``; it never stops the report.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .student import session, valid_student_id

if TYPE_CHECKING:  # pragma: no cover
    import altair as alt

    from ._check import CheckResult

__all__ = [
    "ENV_PROGRESS", "ENV_DIR", "FOLDER", "FORMAT", "STATUSES", "recording", "progress_file", "record",
    "read_record", "ProgressFileError", "Row", "ClassReport", "collect",
]

ENV_PROGRESS = "KIT_PROGRESS"  # 0 / off / false / no: record nothing
ENV_DIR = "KIT_PROGRESS_DIR"
FOLDER = ".kit-progress"
FORMAT = "kit-progress/1"
STATUSES = ("passed", "failed", "unanswered")
MAX_BYTES = 1_000_000  # a progress file is a few kB; anything this big is not one
MAX_MESSAGE = 500
_OFF = {"0", "off", "false", "no"}
_ENTRY_KEYS = {"status", "ever_passed", "first_at", "last_at", "passed_at", "message"}


class ProgressFileError(ValueError):
    """A progress file that cannot be read as one (the message says why)."""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _digest(student: str, exercises: dict[str, Any]) -> str:
    canon = json.dumps({"format": FORMAT, "student": student, "exercises": exercises}, sort_keys=True,
                       ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()


def recording() -> bool:
    """True when a verdict made now would be written (a student is set and recording is on)."""
    if os.environ.get(ENV_PROGRESS, "").strip().lower() in _OFF:
        return False
    s = session()
    return s is not None and s.record


def progress_file(student: str | None = None) -> Path | None:
    """Where the current (or the given) student's verdicts go; None when there is no student."""
    s = session()
    student = student or (s.student if s else None)
    if student is None:
        return None
    if s is not None and s.folder is not None:
        folder = s.folder
    elif os.environ.get(ENV_DIR, "").strip():
        folder = Path(os.environ[ENV_DIR].strip())
    else:
        folder = Path.cwd() / FOLDER
    return folder / f"{student}.json"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path``'s student (a ``.<name>.lock`` file beside it; POSIX only)."""
    try:
        import fcntl
    except ImportError:  # Windows: the atomic rename still keeps every file whole
        yield
        return
    with open(path.parent / f".{path.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, ensure_ascii=False, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def record(result: CheckResult) -> Path | None:
    """Record ``result`` for the current student; the file written, or None when not recording.

    Never raises: a failure to write becomes a warning (the check's verdict stands).
    """
    if not recording():
        return None
    path = progress_file()
    assert path is not None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            student = path.stem
            exercises: dict[str, Any] = {}
            if path.exists():
                try:
                    exercises = read_record(path).exercises
                except ProgressFileError as err:
                    aside = path.with_name(f"{path.name}.corrupt-{_now().replace(':', '')}")
                    os.replace(path, aside)
                    warnings.warn(f"{path} could not be read ({err}); set aside as {aside.name}, starting a new "
                                  f"record", stacklevel=2)
            now = _now()
            entry = dict(exercises.get(result.exercise, {}))
            entry.setdefault("first_at", now)
            entry["last_at"] = now
            entry["status"] = result.status
            entry["message"] = result.message[:MAX_MESSAGE]
            entry["ever_passed"] = bool(entry.get("ever_passed")) or result.passed
            entry["passed_at"] = entry.get("passed_at") or (now if result.passed else None)
            exercises[result.exercise] = entry
            _write_atomic(path, {"format": FORMAT, "student": student, "exercises": exercises,
                                 "digest": _digest(student, exercises)})
        return path
    except OSError as err:
        warnings.warn(f"could not record progress in {path}: {err}", stacklevel=2)
        return None


# --- reading ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StudentRecord:
    """One progress file as read: ``exercises`` maps an exercise name to its entry; ``edited`` when the
    digest does not match the content."""

    path: Path
    student: str
    exercises: dict[str, dict[str, Any]]
    edited: bool


def _check_entry(name: Any, entry: Any) -> str | None:
    if not isinstance(name, str) or not name.strip():
        return f"exercise name {name!r} is not a non-empty string"
    if not isinstance(entry, dict):
        return f"exercise {name!r}: entry is {type(entry).__name__}, not an object"
    missing = {"status", "ever_passed", "last_at"} - set(entry)
    if missing:
        return f"exercise {name!r}: missing {sorted(missing)}"
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        return f"exercise {name!r}: unknown keys {sorted(unknown)}"
    if entry["status"] not in STATUSES:
        return f"exercise {name!r}: status {entry['status']!r} is not one of {list(STATUSES)}"
    if not isinstance(entry["ever_passed"], bool):
        return f"exercise {name!r}: ever_passed is {entry['ever_passed']!r}, not true/false"
    if entry["status"] == "passed" and not entry["ever_passed"]:
        return f"exercise {name!r}: status passed but ever_passed false"
    for key in ("first_at", "last_at", "passed_at"):
        value = entry.get(key)
        if value is None and key != "last_at":
            continue
        try:
            _dt.datetime.fromisoformat(value)
        except (TypeError, ValueError):
            return f"exercise {name!r}: {key} {value!r} is not an ISO time"
    if "message" in entry and not isinstance(entry["message"], str):
        return f"exercise {name!r}: message is not a string"
    return None


def read_record(path: str | os.PathLike) -> StudentRecord:
    """Read one progress file; :class:`ProgressFileError` says what is wrong with a bad one."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ProgressFileError(f"{size} bytes: too large for a progress file (at most {MAX_BYTES})")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise ProgressFileError(f"cannot be read: {err}") from None
    except json.JSONDecodeError as err:
        raise ProgressFileError(f"not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ProgressFileError(f"holds a JSON {type(data).__name__}, not an object")
    if data.get("format") != FORMAT:
        raise ProgressFileError(f"format {data.get('format')!r} is not {FORMAT!r}")
    student, exercises = data.get("student"), data.get("exercises")
    if not isinstance(student, str) or not valid_student_id(student):
        raise ProgressFileError(f"student {student!r} is not a valid student id")
    if student != path.stem:
        raise ProgressFileError(f"names student {student!r} but the file is {path.name}")
    if not isinstance(exercises, dict):
        raise ProgressFileError("'exercises' is not an object")
    for name, entry in exercises.items():
        problem = _check_entry(name, entry)
        if problem:
            raise ProgressFileError(problem)
    edited = data.get("digest") != _digest(student, exercises)
    return StudentRecord(path, student, exercises, edited)


# --- the class report ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One (student, exercise): the latest ``status``, whether it ``ever_passed``, when last checked."""

    student: str
    exercise: str
    status: str
    ever_passed: bool
    last_at: str
    edited: bool


def _exercise_key(name: str) -> tuple:
    m = re.match(r"\s*(\d+)\.(\d+)", name)
    return (0, int(m[1]), int(m[2]), name) if m else (1, 0, 0, name)


def _cell(row: Row | None) -> str:
    if row is None:
        return ""
    if row.ever_passed:
        return "passed"
    return "to do" if row.status == "unanswered" else row.status


@dataclass
class ClassReport:
    """A class's progress: ``rows`` (one per student and exercise) and ``problems`` (file, reason)."""

    rows: list[Row] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def students(self) -> list[str]:
        return sorted({r.student for r in self.rows} | self._empty_students)

    @property
    def exercises(self) -> list[str]:
        return sorted({r.exercise for r in self.rows}, key=_exercise_key)

    _empty_students: set[str] = field(default_factory=set, repr=False)

    def table(self) -> list[dict[str, str]]:
        """Who passed what: one dict per student, ``student``, ``passed`` (count), ``edited``, then one
        column per exercise holding ``passed`` (ever), ``failed``, ``to do`` or ``""`` (never checked)."""
        by = {(r.student, r.exercise): r for r in self.rows}
        edited = {r.student for r in self.rows if r.edited}
        out = []
        for s in self.students:
            cells = {e: _cell(by.get((s, e))) for e in self.exercises}
            out.append({"student": s, "passed": str(sum(v == "passed" for v in cells.values())),
                        "edited": "yes" if s in edited else "", **cells})
        return out

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """The :meth:`table` as CSV text (also written to ``path`` when given)."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["student", "passed", "edited", *self.exercises], lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.table())
        text = buf.getvalue()
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def chart(self) -> alt.Chart:
        """An altair grid, student x exercise, coloured by passed / failed / to do (never checked: blank)."""
        import altair as alt

        values = [{"student": t["student"], "exercise": e, "verdict": t[e]}
                  for t in self.table() for e in self.exercises if t[e]]
        colours = alt.Scale(domain=["passed", "failed", "to do"], range=["#1a7f37", "#cf222e", "#d4a72c"])
        return alt.Chart(alt.Data(values=values)).mark_rect(stroke="white").encode(
            x=alt.X("exercise:N", sort=self.exercises, title=None, axis=alt.Axis(labelAngle=-40)),
            y=alt.Y("student:N", sort=self.students, title=None),
            color=alt.Color("verdict:N", scale=colours), tooltip=["student:N", "exercise:N", "verdict:N"],
        ).properties(title=f"progress of {len(self.students)} students", width=max(200, 26 * len(self.exercises)),
                     height=max(60, 18 * len(self.students)))


def collect(folder: str | os.PathLike) -> ClassReport:
    """Read every ``*.json`` under ``folder`` (recursively; hidden files skipped) into a :class:`ClassReport`.

    Files set aside as corrupt by :func:`record` (``NAME.json.corrupt-TIME``) are listed as problems too.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder: give the folder that holds the students' .kit-progress files")
    report = ClassReport()
    seen: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        parts = path.relative_to(folder).parts
        if path.name.startswith(".") or any(p.startswith(".") and p != FOLDER for p in parts[:-1]):
            continue  # lock and temporary files, .git, .ipynb_checkpoints ...
        if not path.is_file():
            continue
        rel = str(path.relative_to(folder))
        if ".json.corrupt-" in path.name:
            report.problems.append((rel, "a record set aside as unreadable when the student's kernel wrote again"))
            continue
        if path.suffix != ".json":
            continue
        try:
            rec = read_record(path)
        except ProgressFileError as err:
            report.problems.append((rel, str(err)))
            continue
        if rec.student in seen:
            report.problems.append((rel, f"student {rec.student!r} also has {seen[rec.student].relative_to(folder)}; "
                                         f"this file is left out"))
            continue
        seen[rec.student] = path
        if rec.edited:
            report.problems.append((rel, "edited by hand: the digest does not match the content (kept, marked edited)"))
        if not rec.exercises:
            report._empty_students.add(rec.student)
        for name, e in rec.exercises.items():
            report.rows.append(Row(rec.student, name, e["status"], e["ever_passed"], e["last_at"], rec.edited))
    return report
