"""Progress recording and the class report (kit.lessons.progress): local files, atomic, never crashing."""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kit
import kit.lessons as lessons
from kit.lessons import progress
from kit.lessons._check import CheckResult, failed, passed, unanswered

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_student(monkeypatch, tmp_path):
    """Every test starts with no student set, recording not disabled, and its own working directory."""
    for name in ("KIT_STUDENT", "JUPYTERHUB_USER", "KIT_PROGRESS", "KIT_PROGRESS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    lessons.stop()
    yield
    lessons.stop()


def read(path: Path) -> dict:
    return json.loads(path.read_text())


# --- recording ----------------------------------------------------------------------------------------

def test_without_a_student_nothing_is_written(tmp_path):
    verdict = failed("2.1 previous-token score", "wrong")
    assert not verdict
    assert list(tmp_path.iterdir()) == []  # the nbval / CI case: no student, no file, no folder


def test_a_started_student_records_beside_the_notebook(tmp_path):
    lessons.start("ada")
    passed("2.1 previous-token score", "right")
    data = read(tmp_path / ".kit-progress" / "ada.json")
    assert data["student"] == "ada" and data["format"] == "kit-progress/1"
    entry = data["exercises"]["2.1 previous-token score"]
    assert entry["status"] == "passed" and entry["ever_passed"] is True and entry["message"] == "right"


def test_a_real_check_records_its_verdict(tmp_path):
    from kit.lessons.induction import check_heads

    lessons.start("ada")
    model = kit.load("induction-2l", device="cpu")
    verdict = check_heads((1, 0), [(0, 0)], model)
    assert not verdict
    entry = read(tmp_path / ".kit-progress" / "ada.json")["exercises"][verdict.exercise]
    assert entry["status"] == "failed" and entry["message"] == verdict.message[: progress.MAX_MESSAGE]


def test_latest_status_stands_and_a_pass_is_kept(tmp_path):
    lessons.start("ada")
    ex = "1.3 logit lens"
    unanswered(ex, "hint")
    data = read(tmp_path / ".kit-progress" / "ada.json")["exercises"][ex]
    assert data["status"] == "unanswered" and data["ever_passed"] is False and data["passed_at"] is None
    passed(ex, "yes")
    failed(ex, "broke it again")
    data = read(tmp_path / ".kit-progress" / "ada.json")["exercises"][ex]
    assert data["status"] == "failed" and data["ever_passed"] is True and data["passed_at"] is not None
    assert data["first_at"] <= data["passed_at"] <= data["last_at"]


def test_two_exercises_and_two_students_stay_apart(tmp_path):
    lessons.start("ada")
    passed("1.1 a", "ok")
    lessons.start("bob")
    failed("1.1 a", "no")
    failed("1.2 b", "no")
    folder = tmp_path / ".kit-progress"
    assert set(read(folder / "ada.json")["exercises"]) == {"1.1 a"}
    assert read(folder / "ada.json")["exercises"]["1.1 a"]["status"] == "passed"
    assert set(read(folder / "bob.json")["exercises"]) == {"1.1 a", "1.2 b"}


def test_environment_student_and_hub_user(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_USER", "hubuser")
    passed("1.1 a", "ok")
    assert (tmp_path / ".kit-progress" / "hubuser.json").exists()
    monkeypatch.setenv("KIT_STUDENT", "ada")  # KIT_STUDENT wins over the hub user
    passed("1.1 a", "ok")
    assert (tmp_path / ".kit-progress" / "ada.json").exists()
    lessons.start("cy")  # start() wins over both
    assert lessons.current_student() == "cy"


def test_recording_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_STUDENT", "ada")
    for off in ("0", "off", "False", "no"):
        monkeypatch.setenv("KIT_PROGRESS", off)
        passed("1.1 a", "ok")
    assert not (tmp_path / ".kit-progress").exists()
    monkeypatch.delenv("KIT_PROGRESS")
    lessons.start("ada", record=False)
    passed("1.1 a", "ok")
    assert not (tmp_path / ".kit-progress").exists()


def test_progress_folder_from_environment_and_from_start(tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_STUDENT", "ada")
    monkeypatch.setenv("KIT_PROGRESS_DIR", str(tmp_path / "class"))
    passed("1.1 a", "ok")
    assert (tmp_path / "class" / "ada.json").exists()
    lessons.start("bob", folder=tmp_path / "elsewhere")
    passed("1.1 a", "ok")
    assert (tmp_path / "elsewhere" / "bob.json").exists()


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "a b", ".hidden", "x" * 65, "é", 3])
def test_an_invalid_student_id_is_refused(bad):
    with pytest.raises(ValueError, match="student id"):
        lessons.start(bad)
    assert lessons.current_student() is None


def test_an_invalid_environment_id_is_ignored_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_STUDENT", "../../etc")
    with pytest.warns(UserWarning, match="not a valid student id"):
        passed("1.1 a", "ok")
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_folder_warns_and_the_verdict_stands(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    lessons.start("ada", folder=tmp_path / "file" / "sub")
    with pytest.warns(UserWarning, match="could not record progress"):
        verdict = passed("1.1 a", "ok")
    assert verdict.passed


def test_a_corrupt_record_is_set_aside_and_a_new_one_started(tmp_path):
    lessons.start("ada")
    folder = tmp_path / ".kit-progress"
    folder.mkdir()
    (folder / "ada.json").write_text("{not json")
    with pytest.warns(UserWarning, match="set aside"):
        passed("1.1 a", "ok")
    assert set(read(folder / "ada.json")["exercises"]) == {"1.1 a"}
    aside = [p for p in folder.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1 and aside[0].read_text() == "{not json"


def test_no_temporary_files_are_left(tmp_path):
    lessons.start("ada")
    for i in range(5):
        passed(f"1.{i} x", "ok")
    names = sorted(p.name for p in (tmp_path / ".kit-progress").iterdir())
    assert names == [".ada.json.lock", "ada.json"]


def _record_many(args):
    folder, worker = args
    os.environ.pop("KIT_PROGRESS", None)
    lessons.start("ada", folder=folder)
    for i in range(15):
        CheckResult(f"{worker}.{i} x", "passed" if i % 2 else "failed", "m")


def test_concurrent_kernels_of_one_student_lose_no_verdict(tmp_path):
    with multiprocessing.get_context("fork").Pool(3) as pool:  # three kernels (fork: no re-import of kit)
        pool.map(_record_many, [(str(tmp_path), w) for w in (1, 2, 3)])
    rec = progress.read_record(tmp_path / "ada.json")
    assert len(rec.exercises) == 45 and not rec.edited


def test_an_unknown_status_is_refused():
    with pytest.raises(ValueError, match="not one of"):
        CheckResult("1.1 a", "maybe", "m")


# --- the class report ---------------------------------------------------------------------------------

def make_class(folder: Path) -> Path:
    """Three honest students (two in one subfolder), and one bad file of each kind."""
    for student, verdicts in {"ada": [("1.1 a", "passed"), ("2.1 b", "failed"), ("1.10 c", "unanswered")],
                              "bob": [("2.1 b", "failed"), ("2.1 b", "passed"), ("2.1 b", "failed")],
                              "cy": []}.items():
        lessons.start(student, folder=folder / ("group1" if student != "cy" else "group2") / ".kit-progress")
        for ex, status in verdicts:
            CheckResult(ex, status, "m")
        if not verdicts:  # a student who started but never checked: an empty, valid record
            path = progress.progress_file()
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps({"format": progress.FORMAT, "student": "cy", "exercises": {},
                                        "digest": progress._digest("cy", {})}))
    lessons.start("dan", folder=folder / "group2")
    passed("1.1 a", "ok")
    lessons.stop()
    edited = read(folder / "group2" / "dan.json")
    edited["exercises"]["2.1 b"] = dict(edited["exercises"]["1.1 a"])  # added by hand, digest left alone
    (folder / "group2" / "dan.json").write_text(json.dumps(edited))
    (folder / "broken.json").write_text('{"format": "kit-progress/1", "stud')
    (folder / "list.json").write_text("[1, 2]")
    (folder / "other.json").write_text(json.dumps({"format": "something/2"}))
    (folder / "eve.json").write_text(json.dumps({"format": progress.FORMAT, "student": "mallory", "exercises": {}}))
    bad_status = {"format": progress.FORMAT, "student": "fay", "exercises": {
        "1.1 a": {"status": "aced", "ever_passed": True, "last_at": "2026-01-01T00:00:00+00:00"}}}
    (folder / "fay.json").write_text(json.dumps(bad_status))
    (folder / "copy").mkdir()
    (folder / "copy" / "ada.json").write_bytes((folder / "group1" / ".kit-progress" / "ada.json").read_bytes())
    (folder / "notes.txt").write_text("not a record")
    (folder / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    return folder


def test_report_tables_who_passed_what_and_lists_every_bad_file(tmp_path):
    report = lessons.collect(make_class(tmp_path / "class"))
    assert report.students == ["ada", "bob", "cy", "dan"]
    assert report.exercises == ["1.1 a", "1.10 c", "2.1 b"]  # lesson order, 1.10 after 1.1 (not text order)
    table = {row["student"]: row for row in report.table()}
    assert table["ada"] == {"student": "ada", "passed": "1", "edited": "", "1.1 a": "passed", "1.10 c": "to do",
                            "2.1 b": "failed"}
    assert table["bob"]["2.1 b"] == "passed"  # passed once, then failed: a pass is kept for grading
    assert table["bob"]["1.1 a"] == ""  # never checked
    assert table["cy"]["passed"] == "0"
    assert table["dan"]["edited"] == "yes"
    problems = dict(report.problems)
    assert "edited by hand" in problems[str(Path("group2/dan.json"))]
    assert "not valid JSON" in problems["broken.json"]
    assert "JSON list" in problems["list.json"]
    assert "format 'something/2'" in problems["other.json"]
    assert "names student 'mallory'" in problems["eve.json"]
    assert "status 'aced'" in problems["fay.json"]
    copies = [str(Path("copy/ada.json")), str(Path("group1/.kit-progress/ada.json"))]
    assert sum("also has" in problems.get(c, "") for c in copies) == 1  # one copy kept, the other reported
    assert "cannot be read" in problems["binary.json"]
    assert len(report.problems) == 8  # notes.txt and the lock files are not records


def test_report_csv_and_chart(tmp_path):
    report = lessons.collect(make_class(tmp_path / "class"))
    rows = list(csv.DictReader(io.StringIO(report.to_csv(tmp_path / "out.csv"))))
    assert (tmp_path / "out.csv").read_text() == report.to_csv()
    assert [r["student"] for r in rows] == ["ada", "bob", "cy", "dan"]
    assert rows[0]["2.1 b"] == "failed"
    spec = report.chart().to_dict()
    values = spec["data"]["values"]
    assert {(v["student"], v["exercise"], v["verdict"]) for v in values} >= {("ada", "1.1 a", "passed"),
                                                                              ("ada", "1.10 c", "to do")}
    assert not any(v["student"] == "cy" for v in values)  # nothing checked, no cell
    assert spec["encoding"]["color"]["scale"]["domain"] == ["passed", "failed", "to do"]


def test_report_of_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        lessons.collect(tmp_path / "nope")


def test_report_command_line(tmp_path):
    folder = make_class(tmp_path / "class")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "kit.lessons", "report", str(folder), "--chart",
                          str(tmp_path / "c.vl.json")], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0] == "student,passed,edited,1.1 a,1.10 c,2.1 b"
    assert "4 students, 3 exercises, 8 problem file(s)" in run.stderr and "broken.json: not valid JSON" in run.stderr
    assert json.loads((tmp_path / "c.vl.json").read_text())["mark"]["type"] == "rect"


def test_report_command_line_refuses_a_missing_folder(tmp_path, capsys):
    from kit.lessons.__main__ import main

    with pytest.raises(SystemExit) as exit_:
        main(["report", str(tmp_path / "nope")])
    assert exit_.value.code == 2 and "is not a folder" in capsys.readouterr().err


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=3), max_leaves=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(exercises=json_values, status=json_values, raw=st.binary(max_size=40))
def test_report_never_crashes_on_hand_edited_files(tmp_path_factory, exercises, status, raw):
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "a.json").write_text(json.dumps({"format": progress.FORMAT, "student": "a", "exercises": exercises}))
    (folder / "b.json").write_text(json.dumps({"format": progress.FORMAT, "student": "b", "exercises": {
        "1.1 x": {"status": status, "ever_passed": status, "last_at": status}}}))
    (folder / "c.json").write_bytes(raw)
    report = lessons.collect(folder)
    report.to_csv()
    report.chart().to_dict()
    named = {p for p, _ in report.problems}
    for name in ("a.json", "b.json", "c.json"):  # each file is either read or reported, never dropped silently
        read_ok = name[0] in report.students
        assert read_ok != (name in named) or (read_ok and "edited by hand" in dict(report.problems)[name])
