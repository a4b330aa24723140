"""Warm-start rules without Ray: the left-out line, and how a history's reused and first
configurations shape an explicit (grid / random) plan."""

from __future__ import annotations

from tunehouse.records import TrialRecord
from tunehouse.search import History
from tunehouse.search._base import explicit_plan
from tunehouse.warm import _left_out


def test_left_out_line_groups_values_by_parameter_and_reason():
    line = _left_out([("max_depth", "outside 2..12", 14), ("max_depth", "outside 2..12", 13),
                      ("max_depth", "outside 2..12", 14), ("gamma", "not in the space", 1.0),
                      ("subsample", "missing", None)])
    assert line == "; left out 5 (max_depth=13, 14 outside 2..12; gamma not in the space; no subsample)"
    assert _left_out([]) == ""


class _Spec:  # explicit_plan reads the space and search.max_concurrent only
    from types import SimpleNamespace

    search = SimpleNamespace(max_concurrent=None)
    from pydantic import TypeAdapter

    from tunehouse.space import Domain

    space = TypeAdapter(dict[str, Domain]).validate_python({"x": {"type": "int", "low": 0, "high": 9}})


def _done(*xs: int) -> list[TrialRecord]:
    return [TrialRecord(trial_id=f"t{x}", status="terminated", params={"x": x}) for x in xs]


def test_reused_trials_count_toward_the_points_and_first_ones_go_in_front():
    points = [{"x": x} for x in range(6)]
    plan = explicit_plan(_Spec, points, History(finished=_done(1, 2)))
    assert plan.num_samples == 4  # the two finished ones are skipped
    plan = explicit_plan(_Spec, points, History(finished=_done(8, 9)))
    assert plan.num_samples == 4  # reused outside the planned points still use up the budget
    first = explicit_plan(_Spec, points, History(first=[{"x": 9}, {"x": 3}]))
    assert first.num_samples == 6
    assert [p["x"] for p in first.searcher._points_to_evaluate] == [9, 3, 0, 1, 2, 4]
    # resumed after the first of them ran: the same list minus what finished
    again = explicit_plan(_Spec, points, History(first=[{"x": 9}, {"x": 3}], finished=_done(9)))
    assert [p["x"] for p in again.searcher._points_to_evaluate] == [3, 0, 1, 2, 4]


SPEC = """name: w
task: classification
data: {sklearn: iris}
model: sklearn.tree.DecisionTreeClassifier
evaluation: {holdout: 0.3}
metrics: [accuracy]
search: {algorithm: random, num_samples: 4}
space: {max_depth: {type: int, low: 1, high: 5}}
"""


def test_results_are_reused_only_on_the_same_data_and_setup():
    import pytest

    from tunehouse.errors import SpecError
    from tunehouse.spec import parse_spec
    from tunehouse.warm import _comparable

    spec = parse_spec(SPEC)
    exp = {"experiment_id": "e1", "spec_text": SPEC, "dataset_fingerprint": "f" * 64}
    assert _comparable(spec, exp, "f" * 64) is None
    assert _comparable(spec, exp, "a" * 64) == f"different data (fingerprint {'f' * 12} != {'a' * 12})"
    assert _comparable(parse_spec(SPEC.replace("holdout: 0.3", "cv: 3")), exp, "f" * 64) == \
        "the same data with a different evaluation"
    other = {**exp, "spec_text": SPEC.replace("tree.DecisionTreeClassifier", "ensemble.RandomForestClassifier")}
    with pytest.raises(SpecError, match=r"--warm-start.*RandomForestClassifier"):
        _comparable(spec, other, "f" * 64)
    with pytest.raises(SpecError, match=r"--spec.*RandomForestClassifier"):  # tunehouse continue --spec
        _comparable(spec, other, "f" * 64, "--spec")
    # the seed sets the test split and the folds: other rows were scored
    assert _comparable(parse_spec("seed: 5\n" + SPEC), exp, "f" * 64) == "the same data with a different seed"


def test_a_trial_is_reused_once_whichever_sources_hold_it():
    from types import SimpleNamespace

    from tunehouse.spec import parse_spec
    from tunehouse.warm import warm_start

    spec = parse_spec(SPEC)
    own = [TrialRecord("t1", "terminated", {"max_depth": 2}, metrics={"accuracy": 0.9}),
           TrialRecord("t2", "terminated", {"max_depth": 3}, metrics={"accuracy": 0.8})]
    child = [TrialRecord("reused-0001", "terminated", {"max_depth": 2}, metrics={"accuracy": 0.9}, reused_from="A/t1"),
             TrialRecord("c1", "terminated", {"max_depth": 4}, metrics={"accuracy": 0.7})]
    exps = {"A": own, "B": child}
    catalog = SimpleNamespace(
        experiment=lambda s: {"experiment_id": s, "spec_text": SPEC, "dataset_fingerprint": "f" * 64},
        trial_records=lambda exp: exps[exp["experiment_id"]])
    warm = warm_start(spec, "f" * 64, ["A", "B"], catalog)
    assert sorted(t.reused_from for t in warm.history.finished) == ["A/t1", "A/t2", "B/c1"]
    assert warm.lines[1] == "reused 1 of 2 trials from B; left out 1 (trial already reused from another source)"


def test_the_left_out_values_sort_as_numbers():
    assert _left_out([("d", "outside 10..12", 13), ("d", "outside 10..12", 9)]) == "; left out 2 (d=9, 13 outside 10..12)"


def test_a_missing_source_is_bad_input_before_ray_starts(tmp_path):
    import subprocess
    import sys

    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC)
    proc = subprocess.run([sys.executable, "-m", "tunehouse", "run", str(spec), "--warm-start", "nosuch",
                           "--catalog", str(tmp_path / "cat")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"error: --warm-start: no experiments in {tmp_path / 'cat'}"]
