"""Mutation testing of the kit's core with mutmut: how many small deliberate bugs do the fast tests catch?

    python benchmarks/mutation.py --list                   # the groups: modules and the fast tests run on them
    python benchmarks/mutation.py --group interventions    # one group (minutes on a 2-core CPU)
    python benchmarks/mutation.py                          # every group (hours on a shared 2-core CPU)

Not part of CI's default run: it is slow. For each group it copies the working tree (tracked and
untracked, not ignored files) to a scratch folder, writes a ``setup.cfg`` that points mutmut at the
group's modules and fast tests, runs ``mutmut run`` there (mutmut forks a worker per mutant from a
warmed fork server and runs only the tests that reach the mutated function), then prints the score
and the diff of every mutant that survived. ``docs/mutation.md`` lists the measured scores and says,
for each survivor, why it is equivalent or harmless (or which test should catch it).

Score = killed / (mutants - skipped - timeouts); "no tests" (a mutated function no fast test
reaches) and "survived" both count as not killed; timeouts are reported apart (see ``UNSURE``). Needs ``pip install mutmut`` (3.x).
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# group: (modules to mutate, fast tests that guard them)
GROUPS: dict[str, tuple[list[str], list[str]]] = {
    "session": (["kit/_session.py"], [
        "tests/test_session_hooks.py", "tests/test_interventions_contract.py", "tests/test_interventions.py",
        "tests/test_interventions_causal.py", "tests/test_trace_invariants.py", "tests/test_bad_input.py",
        "tests/test_trace_names.py", "tests/test_trace_pattern_heads.py", "tests/test_trace_properties.py",
        "tests/test_trace_mutants_memory.py", "tests/test_trace_mutants_trace.py", "tests/test_trace_mutants_attention.py",
        "tests/test_families.py"]),
    "interventions": (["kit/interventions.py"], [
        "tests/test_interventions_contract.py", "tests/test_session_hooks.py", "tests/test_interventions.py",
        "tests/test_interventions_causal.py", "tests/test_bad_input.py", "tests/test_interventions_mutants_refusals.py",
        "tests/test_interventions_mutants_positions.py", "tests/test_interventions_mutants_knockout_edit.py"]),
    "trace": (["kit/trace.py", "kit/names.py", "kit/_attention.py"], [
        "tests/test_trace_invariants.py", "tests/test_bad_input.py", "tests/test_session_hooks.py",
        "tests/test_interventions_contract.py", "tests/test_trace_names.py", "tests/test_trace_pattern_heads.py",
        "tests/test_trace_properties.py", "tests/test_trace_mutants_memory.py", "tests/test_trace_mutants_trace.py",
        "tests/test_trace_mutants_attention.py"]),
    "attribution": (["kit/analysis/attribution.py"], [
        "tests/test_attribution_teeth.py", "tests/test_analysis_invariants.py", "tests/test_bad_input_analysis.py",
        "tests/test_attribution_mutants_norms.py", "tests/test_attribution_mutants_refusals.py"]),
    "causal_tracing": (["kit/analysis/causal_tracing.py"], [
        "tests/test_causal_tracing_teeth.py", "tests/test_causal_tracing.py", "tests/test_bad_input_analysis.py",
        "tests/test_causal_tracing_mutants_api.py", "tests/test_causal_tracing_mutants_fanout.py"]),
    "analysis": (["kit/analysis/head_scores.py", "kit/analysis/patching.py", "kit/analysis/logit_lens.py",
                  "kit/analysis/_common.py"], [
        "tests/test_analysis_invariants.py", "tests/test_bad_input_analysis.py", "tests/test_session_hooks.py",
        "tests/test_head_scores.py", "tests/test_analysis_mutants_patching.py", "tests/test_analysis_mutants_head_scores.py",
        "tests/test_analysis_mutants_lens_common.py"]),
    "lessons": (["kit/lessons/attention.py", "kit/lessons/induction.py", "kit/lessons/factual.py",
                 "kit/lessons/mlp.py", "kit/lessons/_check.py"], [
        "tests/test_lesson01_exercises.py", "tests/test_lesson02_exercises.py", "tests/test_lesson03_exercises.py",
        "tests/test_lesson04_exercises.py", "tests/test_lesson_check_results.py",
        "tests/test_lesson02_check_near_misses.py", "tests/test_lesson_mutants_check.py",
        "tests/test_lesson01_mutants_checks.py", "tests/test_lesson02_mutants_checks.py",
        "tests/test_lesson03_mutants_checks.py", "tests/test_lesson04_mutants_checks.py"]),
    "circuit": (["kit/lessons/circuit.py"], [
        "tests/test_lesson05_exercises.py", "tests/test_lesson05_claims.py", "tests/test_lesson05_mutants_checks.py"]),
    "analysis2": (["kit/analysis/ablation.py", "kit/analysis/path_patching.py", "kit/analysis/attribution_patching.py"], [
        "tests/test_circuits_and_ablation.py", "tests/test_path_patching.py", "tests/test_bad_input_analysis.py",
        "tests/test_analysis2_mutants_ablation.py", "tests/test_analysis2_mutants_paths.py"]),
    "analysis4": (["kit/analysis/steering.py", "kit/analysis/circuits.py", "kit/analysis/neurons.py"], [
        "tests/test_snmf_steering.py", "tests/test_circuits_and_ablation.py", "tests/test_analysis_invariants.py",
        "tests/test_bad_input_analysis.py", "tests/test_analysis2_mutants_steering.py",
        "tests/test_analysis2_mutants_circuits_neurons.py"]),
    # lesson 06's exercise tests are left out: their module fixture trains the lesson's SAE and transcoder (7 s
    # per mutant, 7 mutants a minute at load 5); the mutants file checks the same checks on synthetic instances
    "lesson06": (["kit/lessons/dictionaries.py"], ["tests/test_lesson06_mutants_checks.py"]),
    "dictionaries": (["kit/analysis/splice.py", "kit/analysis/features.py", "kit/analysis/dictionary.py"], [
        "tests/test_dictionary_api.py", "tests/test_snmf_features.py", "tests/test_dictionaries_mutants_features.py",
        "tests/test_dictionaries_mutants_splice.py", "tests/test_dictionaries_mutants_dictionary.py"]),
    "analysis3": (["kit/analysis/factual.py", "kit/analysis/voids.py", "kit/analysis/superposition.py"], [
        "tests/test_analysis_invariants.py", "tests/test_bad_input_analysis.py", "tests/test_factual_story.py",
        "tests/test_lesson03_claims.py", "tests/test_superposition_and_dictionary.py",
        "tests/test_analysis3_mutants.py"]),
    "core2": (["kit/head_scores.py", "kit/lessons/variants.py", "kit/lessons/student.py", "kit/lessons/_learner.py",
               "kit/lessons/_names.py"], [
        "tests/test_head_scores.py", "tests/test_analysis_mutants_head_scores.py", "tests/test_train_metrics.py",
        "tests/test_lesson_variants.py", "tests/test_core2_mutants.py"]),
    "wire": (["kit/widgets/_wire.py"], [
        "tests/widgets/test_widget_wire.py", "tests/widgets/test_wire_teeth.py"]),
    "widgets": (["kit/widgets/_patterns.py", "kit/widgets/attention.py", "kit/widgets/_source.py",
                 "kit/widgets/_options.py", "kit/widgets/_tokens.py"], [
        "tests/widgets/test_attention_viewer.py", "tests/widgets/test_attention_viewer_models.py",
        "tests/widgets/test_widget_tokens.py", "tests/widgets/test_widget_bad_input.py",
        "tests/widgets/test_wire_teeth.py", "tests/widgets/test_widgets_mutants_attention.py"]),
    "models": (["kit/models.py", "kit/arch/_adapter.py", "kit/arch/_families.py", "kit/arch/_norms.py",
                "kit/_validate.py"], [
        "tests/test_families.py", "tests/test_load.py", "tests/test_bad_input.py", "tests/test_unencodable_prompt.py",
        "tests/test_bad_input_analysis.py", "tests/test_models_mutants_load.py", "tests/test_models_mutants_arch.py",
        "tests/test_models_mutants_validate.py"]),
    "snmf": (["kit/analysis/snmf.py"], [
        "tests/test_snmf.py", "tests/test_snmf_features.py", "tests/test_bad_input_analysis.py",
        "tests/test_snmf_mutants.py"]),
}

TIMEOUT_MULTIPLIER = 30
KILLED = {"killed", "caught by type check", "segfault"}
# "timeout" is neither: on a loaded machine a slow test, or a fork server that stopped answering (exit 255
# in 0 s), files there too. Timeouts are left out of the score and reported; re-run them with --resume.
UNSURE = {"timeout", "not checked", "check was interrupted by user"}


def _files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.split("\n")
    return [f for f in out if f and (ROOT / f).is_file()]


def _prepare(group: str, work: Path) -> Path:
    modules, tests = GROUPS[group]
    missing = [p for p in modules + tests if not (ROOT / p).is_file()]
    if missing:
        raise SystemExit(f"group {group!r}: no such file {missing}")
    where = work / group
    if where.exists():
        shutil.rmtree(where)
    for f in _files():
        if f.split("/")[0] in ("kit", "tests", "lessons", "scripts", "docs") or f == "pyproject.toml":
            (where / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, where / f)
    for m in modules:
        _undecorate(where / m)
    lines = ["[mutmut]", "source_paths = kit", "also_copy =", "    lessons/", "    scripts/", "    docs/", "only_mutate ="]
    lines += [f"    {m}" for m in modules]
    lines += ["pytest_add_cli_args_test_selection ="] + [f"    {t}" for t in tests]
    lines += ["pytest_add_cli_args =", "    -p", "    no:cacheprovider", "    -p", "    no:randomly",
              "process_isolation = forkserver", "use_git_change_detection = false",
              # mutmut's wall limit is (summed test *call* time + 1 s) x multiplier: fixtures and collection are
              # not in it, and the shared machine runs 4-6x slower under load, so 15 (the default) is too tight
              f"timeout_multiplier = {TIMEOUT_MULTIPLIER}", ""]
    (where / "setup.cfg").write_text("\n".join(lines))
    _check_test_ids(where, tests)
    return where


# decorators mutmut 3 would make it skip a function for, and that are safe to apply at the end of the module
REAPPLIED = ("torch.no_grad()", "contextlib.contextmanager")


def _undecorate(path: Path) -> None:
    """Move ``@torch.no_grad()`` / ``@contextlib.contextmanager`` of top-level functions to the module's end.

    mutmut 3 does not mutate a decorated function at all (``direct_logit_attribution``, ``causal_traces``,
    the head scores...), so in the scratch copy ``@deco def f`` becomes ``def f`` plus ``f = deco(f)`` at the
    end of the module: the same function at import time, now with mutants.
    """
    source = path.read_text()
    lines = source.splitlines(keepends=True)
    drop: list[tuple[int, int]] = []
    tail: list[str] = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and len(node.decorator_list) == 1:
            deco = node.decorator_list[0]
            text = ast.get_source_segment(source, deco)
            if text in REAPPLIED:
                drop.append((deco.lineno - 1, deco.end_lineno))
                tail.append(f"{node.name} = {text}({node.name})  # moved here by benchmarks/mutation.py\n")
    for start, end in reversed(drop):
        del lines[start:end]
    if tail:
        path.write_text("".join(lines) + "\n\n" + "".join(tail))


def _check_test_ids(where: Path, tests: list[str]) -> None:
    """Refuse test ids that pytest escapes (a backslash, a non-ASCII character).

    mutmut's fork server collects the tests once, then each child runs ``pytest.main`` again with the ids of
    the tests to run; pytest escapes such an id a second time on that second in-process collection, does
    not find it, exits with 4, and mutmut files the mutant as a "timeout" (exit 255) without running it.
    That is how the ``interventions`` group lost every mutant of ``compile_intervention`` (327 of 511).
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *tests],
                         cwd=where, env=env, capture_output=True, text=True)
    bad = [line for line in out.stdout.splitlines() if "::" in line and ("\\" in line or not line.isascii())]
    if bad:
        raise SystemExit("test ids that mutmut's fork server cannot select again (pytest re-escapes them); "
                         "give them plain ids:\n  " + "\n  ".join(bad))


def _mutmut(where: Path, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # kit must come from the mutated copy
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    exe = Path(sys.executable).with_name("mutmut")
    return subprocess.run([str(exe), *args], cwd=where, env=env, capture_output=True, text=True, timeout=timeout)


def _statuses(where: Path) -> dict[str, str]:
    res = _mutmut(where, "results", "--all", "true")
    status: dict[str, str] = {}
    for line in res.stdout.splitlines():
        m = re.match(r"\s+(\S+): (.+)$", line)
        if m:
            status[m.group(1)] = m.group(2).strip()
    return status


def _refresh_tests(where: Path, modules: list[str]) -> None:
    """Copy the current tests over an earlier run's copy (for --resume after adding tests), and the kit's
    sources that changed since (mutmut then re-creates the mutants of the functions that changed and
    forgets their results; an unchanged file keeps its older modification time and its mutants)."""
    for f in _files():
        if f.startswith("tests/"):
            for dest in (where / f, where / "mutants" / f):
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / f, dest)
        elif f.startswith("kit/") and (where / f).is_file():
            shutil.copy2(ROOT / f, where / ".refresh")
            if f in modules:  # mutated modules are compared as _prepare leaves them (undecorated)
                _undecorate(where / ".refresh")
            if (where / ".refresh").read_bytes() != (where / f).read_bytes():
                shutil.copy2(where / ".refresh", where / f)
            (where / ".refresh").unlink()


def run_group(group: str, work: Path, max_children: int, resume: bool = False, only: list[str] | None = None
              ) -> dict:
    where = work / group
    names: list[str] = list(only or [])
    if resume and (where / "mutants").is_dir():  # re-test only what was not killed, with the current tests
        listed = [t for t in GROUPS[group][1] if f"    {t}\n" not in (where / "setup.cfg").read_text()]
        if listed:  # mutmut forgets every result when the test selection changes: say so instead
            raise SystemExit(f"group {group!r}: {listed} joined the group's tests after that run; mutmut would "
                             f"forget all its results, so run the group again without --resume")
        _refresh_tests(where, GROUPS[group][0])
        names = [n for n, s in _statuses(where).items() if s not in KILLED and s != "skipped"  # incl. timeouts
                 and (not only or any(fnmatch.fnmatchcase(n, p) for p in only))]
        if not names:
            raise SystemExit(f"group {group!r}: no mutant left to re-test" + (f" matching {only}" if only else ""))
    else:
        where = _prepare(group, work)
    t0 = time.time()
    run = _mutmut(where, "run", "--max-children", str(max_children), *names)
    seconds = time.time() - t0
    (where / "mutmut-run.log").write_text(run.stdout + run.stderr)
    status = _statuses(where)
    if not status:
        tail = "\n".join((run.stdout + run.stderr).splitlines()[-30:])
        raise SystemExit(f"group {group!r}: mutmut produced no results (exit {run.returncode}):\n{tail}")
    counts: dict[str, int] = {}
    for s in status.values():
        counts[s] = counts.get(s, 0) + 1
    tested = len(status) - counts.get("skipped", 0) - sum(counts.get(s, 0) for s in UNSURE)
    killed = sum(n for s, n in counts.items() if s in KILLED)
    survivors = {name: _mutmut(where, "show", name).stdout for name, s in sorted(status.items())
                 if s not in KILLED | UNSURE and s != "skipped"}
    return {"group": group, "modules": GROUPS[group][0], "tests": GROUPS[group][1], "counts": counts,
            "killed": killed, "tested": tested, "score": killed / tested if tested else float("nan"),
            "seconds": round(seconds), "survivors": survivors}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--group", action="append", choices=sorted(GROUPS), help="run only these groups (repeatable)")
    ap.add_argument("--list", action="store_true", help="print the groups and exit")
    ap.add_argument("--workdir", type=Path, default=ROOT / ".mutation", help="scratch folder (default .mutation/)")
    ap.add_argument("--max-children", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    ap.add_argument("--only", action="append", metavar="GLOB",
                    help="test only the mutants whose names match (repeatable), e.g. 'kit.lessons.attention.x_check_*'; "
                         "the others stay 'not checked' and are left out of the score")
    ap.add_argument("--resume", action="store_true",
                    help="re-test only the mutants an earlier run in --workdir did not kill, with the current tests")
    args = ap.parse_args(argv)
    if args.list:
        for g, (mods, tests) in GROUPS.items():
            print(f"{g:15s} {' '.join(mods)}\n{'':15s} tests: {' '.join(tests)}")
        return 0
    if shutil.which("mutmut", path=str(Path(sys.executable).parent)) is None:
        raise SystemExit("mutmut is not installed in this environment: pip install 'mutmut>=3.8'")
    results = []
    for group in args.group or list(GROUPS):
        r = run_group(group, args.workdir, args.max_children, args.resume, args.only)
        results.append(r)
        print(f"{group}: {r['killed']}/{r['tested']} killed ({100 * r['score']:.1f}%) in {r['seconds']} s; "
              f"{json.dumps(r['counts'])}", flush=True)
        for name, diff in r["survivors"].items():
            print(f"  not killed: {name}\n" + "\n".join("    " + line for line in diff.splitlines()), flush=True)
    killed, tested = sum(r["killed"] for r in results), sum(r["tested"] for r in results)
    print(f"total: {killed}/{tested} killed ({100 * killed / max(tested, 1):.1f}%)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
