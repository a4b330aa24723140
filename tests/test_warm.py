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


class _Spec:  # explicit_plan reads the space only
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
