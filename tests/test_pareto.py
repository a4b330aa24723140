"""Multi-objective (Pareto) searches: the spec's ``objectives``, the one front rule, the catalog."""

from __future__ import annotations

import pytest

from conftest import base_spec
from tunehouse.catalog import Catalog
from tunehouse.errors import SpecError
from tunehouse.records import TrialRecord, pareto_front
from tunehouse.spec import load_spec, parse_spec


def _rec(i, status="terminated", **metrics):
    return TrialRecord(trial_id=f"t{i}", status=status, params={}, metrics=metrics)


def brute_front(rows, objectives):
    """Every finished row that no other finished row beats in all objectives (the definition)."""
    def better_eq(a, b):
        return all((a[n] >= b[n]) if m == "max" else (a[n] <= b[n]) for n, m in objectives.items())

    ok = [r for r in rows if r["status"] == "terminated" and all(r.get(n) == r.get(n) for n in objectives)]
    return sorted(r["trial_id"] for r in ok
                  if not any(better_eq(o, r) and any(o[n] != r[n] for n in objectives) for o in ok))


def test_pareto_front_rule():
    recs = [_rec(0, a=0.9, b=5.0), _rec(1, a=0.95, b=9.0), _rec(2, a=0.9, b=6.0),  # 2 dominated by 0
            _rec(3, a=0.95, b=9.0),  # equal to 1: both on the front
            _rec(4, status="early_stopped", a=1.0, b=1.0), _rec(5, status="error", a=1.0, b=0.0),
            _rec(6, a=float("nan"), b=0.1), _rec(7, a=0.5, b=1.0)]
    front = pareto_front(recs, {"a": "max", "b": "min"})
    assert [r.trial_id for r in front] == ["t0", "t1", "t3", "t7"]
    # mappings (rows of the wide trials table) follow the same rule
    rows = [{"trial_id": r.trial_id, "status": r.status, **r.metrics} for r in recs]
    assert [r["trial_id"] for r in pareto_front(rows, {"a": "max", "b": "min"})] == ["t0", "t1", "t3", "t7"]
    assert [r.trial_id for r in pareto_front(recs, {"a": "min", "b": "max"})] == ["t1", "t2", "t3", "t7"]


def test_objectives_lead_the_metrics_and_keep_old_hashes(write_spec):
    plain = load_spec(write_spec(base_spec(metrics=["accuracy", "f1"])))
    assert not plain.pareto and "objectives" not in plain.spec_hash  # (a hash, not a dump)
    assert plain.spec_hash == load_spec(write_spec(base_spec(metrics=["accuracy", "f1"]), "again.yaml")).spec_hash
    s = load_spec(write_spec(base_spec(objectives=["accuracy", {"name": "predict_ms"}], metrics=["f1", "accuracy"]),
                             "p.yaml"))
    assert s.pareto and [m.name for m in s.metrics] == ["accuracy", "predict_ms", "f1"]
    assert s.objective.name == "accuracy" and s.objective_modes == {"accuracy": "max", "predict_ms": "min"}
    assert s.spec_hash != plain.spec_hash
    assert s.override({"search.num_samples": 7}).metrics == s.metrics  # re-validating keeps them
    only = load_spec(write_spec({k: v for k, v in base_spec(objectives=["accuracy", "model_kb"]).items()
                                 if k != "metrics"}, "o.yaml"))
    assert [m.name for m in only.metrics] == ["accuracy", "model_kb"]


@pytest.mark.parametrize(("over", "field", "match"), [
    ({"objectives": ["accuracy"]}, "objectives", "two or more"),
    ({"objectives": ["accuracy", "fit_s"],
      "search": {"algorithm": "random", "num_samples": 4,
                 "early_stopping": {"scheduler": "asha", "resource": "folds"}}},
     "search.early_stopping", "several objectives"),
    ({"objectives": ["accuracy", "fit_s"], "search": {"algorithm": "bayes", "sampler": "cmaes"}},
     "search.sampler", "one objective"),
    ({"objectives": ["accuracy", {"name": "fit_s", "mode": "min"}], "metrics": [{"name": "fit_s", "mode": "max"}]},
     "metrics", "give its mode once"),
])
def test_bad_objectives_are_one_located_line(over, field, match):
    import yaml

    with pytest.raises(SpecError, match=match) as e:
        parse_spec(yaml.safe_dump(base_spec(**over)), file="s.yaml")
    assert e.value.field == field and "\n" not in str(e.value)


def test_a_contradicting_objective_mode_names_objectives(write_spec):
    from tunehouse.validate import load_checked

    with pytest.raises(SpecError, match="contradicts 'predict_ms'") as e:
        load_checked(write_spec(base_spec(objectives=["accuracy", {"name": "predict_ms", "mode": "max"}])))
    assert e.value.field == "objectives.1.mode"


PARETO_SPACE = {"max_depth": {"type": "int", "low": 1, "high": 12},
                "min_samples_leaf": {"type": "int", "low": 1, "high": 30}}


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["tpe", "nsga2"])
def test_a_bayesian_pareto_search_marks_its_front_in_the_catalog(ray_session, tmp_path, write_spec, sampler):
    from tunehouse.driver import run

    spec = load_spec(write_spec(base_spec(
        data={"sklearn": "breast_cancer"},
        objectives=["roc_auc", "model_kb"], metrics=["accuracy"],
        search={"algorithm": "bayes", "sampler": sampler, "num_samples": 10, "max_concurrent": 2},
        space=PARETO_SPACE)))
    result = run(spec, catalog=tmp_path)
    assert len(result.trials) == 10
    assert result.searcher == {"COMPLETE": 10}  # a multi-objective study was told every trial
    cat = Catalog(tmp_path)
    exp = cat.experiment(result.experiment_id)
    assert list(exp["objectives"]) == ["roc_auc", "model_kb"]
    df = cat.trials(result.experiment_id)
    expected = brute_front(df.to_dict("records"), {"roc_auc": "max", "model_kb": "min"})
    assert sorted(df[df.pareto].trial_id) == expected == sorted(cat.pareto(result.experiment_id).trial_id)
    assert df.pareto.notna().all()
    sql = cat.sql(f"select trial_id from trials where experiment_id = '{result.experiment_id}' and pareto").df()
    assert sorted(sql.trial_id) == expected


@pytest.mark.slow
def test_a_random_pareto_search_computes_its_front_from_results(ray_session, tmp_path, write_spec):
    from tunehouse.driver import run

    spec = load_spec(write_spec(base_spec(
        data={"sklearn": "breast_cancer"}, objectives=["roc_auc", "model_kb"],
        search={"algorithm": "random", "num_samples": 8}, space=PARETO_SPACE)))
    result = run(spec, catalog=tmp_path)
    df = Catalog(tmp_path).trials(result.experiment_id)
    assert len(df) == 8
    assert sorted(df[df.pareto].trial_id) == brute_front(df.to_dict("records"), {"roc_auc": "max", "model_kb": "min"})


def test_a_resumed_pareto_search_tells_the_study_every_objective(write_spec):
    from tunehouse.search._base import History
    from tunehouse.search.bayes import study_searcher

    spec = load_spec(write_spec(base_spec(objectives=["accuracy", "model_kb"],
                                          search={"algorithm": "bayes", "sampler": "nsga2", "num_samples": 5})))
    done = [TrialRecord("a", "terminated", {"max_depth": 2}, {"accuracy": 0.9, "model_kb": 3.0}),
            TrialRecord("b", "error", {"max_depth": 4}, {})]
    study = study_searcher(spec, History(finished=done))._ot_study
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert [(t.state.name, t.values) for t in study.trials] == [("COMPLETE", [0.9, 3.0]), ("FAIL", None)]
    assert type(study.sampler).__name__ == "NSGAIISampler"


def test_best_where_picks_among_the_trials_meeting_it(tmp_path):
    """A single-objective experiment too: the best by its objective among the rows meeting --where."""
    from catalog.helpers import FakeTrial, record_experiment
    from tunehouse.catalog import CatalogError
    from tunehouse.errors import InputError

    uri = str(tmp_path / "cat")
    rows = [FakeTrial(f"t{i}", "terminated", {"max_depth": i}, {"accuracy": 0.5 + i / 20, "predict_ms": 1.0 + i})
            for i in range(8)]
    record_experiment(uri, "e1", rows)
    cat = Catalog(uri)
    assert cat.best("e1")["trial_id"] == "t7"
    assert cat.best("e1", where="predict_ms < 5")["trial_id"] == "t3"
    assert cat.best("e1", where="predict_ms < 5 and max_depth < 2")["trial_id"] == "t1"
    assert cat.pareto("e1").trial_id.tolist() == ["t7"]  # one objective: the front is the best trial
    with pytest.raises(CatalogError, match="meeting --where 'predict_ms < 0'"):
        cat.best("e1", where="predict_ms < 0")
    with pytest.raises(InputError, match="--where 'nope < 1'"):
        cat.best("e1", where="nope < 1")


def test_a_resumed_warm_started_study_reruns_an_unfinished_first_config_once(write_spec):
    """``first`` configurations of a warm start that were running when the search stopped are
    queued again once (as unfinished trials), not a second time as firsts."""
    from tunehouse.records import config_key
    from tunehouse.search._base import History
    from tunehouse.search.bayes import study_searcher

    spec = load_spec(write_spec(base_spec(search={"algorithm": "bayes", "num_samples": 5})))
    a, b, c = {"max_depth": 2}, {"max_depth": 3}, {"max_depth": 4}
    history = History(finished=[TrialRecord("t1", "terminated", a, {"accuracy": 0.9})],
                      unfinished={config_key(b): ["t2"]}, first=[a, b, c])
    study = study_searcher(spec, history)._ot_study
    waiting = [t.system_attrs.get("fixed_params") for t in study.trials if t.state.name == "WAITING"]
    assert waiting == [b, c]


def test_export_where_on_a_single_objective_experiment_through_the_cli(tmp_path):
    """``tunehouse export --where`` on one objective: the best trial meeting it is exported (and
    refitted with its params: the trials' checkpoints were pruned); none meeting it is one line, exit 1, no folder."""
    import json

    from catalog.helpers import SPEC, FakeTrial, record_experiment
    from helpers.cli import tunehouse_main
    from tunehouse.data import load_dataset

    uri = str(tmp_path / "cat")
    record_experiment(uri, "e1", [FakeTrial(f"t{i}", "terminated", {"max_depth": i + 1},
                                            {"accuracy": 0.5 + i / 20, "predict_ms": 1.0 + i},
                                            checkpoint_pruned=True)  # so export refits
                                  for i in range(6)], fingerprint=load_dataset(parse_spec(SPEC.format(
                                      name="exp", metric="accuracy", n=6))).fingerprint)
    out = tunehouse_main("export", "e1", "--catalog", uri, "--out", str(tmp_path / "fast"), "--json",
                         "--where", "predict_ms < 3.5")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["trial_id"] == "t2"
    meta = json.loads((tmp_path / "fast" / "tunehouse.json").read_text())
    assert meta["trial_id"] == "t2" and meta["params"] == {"max_depth": 3}
    none = tunehouse_main("export", "e1", "--catalog", uri, "--out", str(tmp_path / "none"), "--where", "predict_ms < 0")
    assert none.returncode == 1 and "meeting --where 'predict_ms < 0'" in none.stderr  # found none: not bad input
    assert len(none.stderr.strip().splitlines()) == 1 and not (tmp_path / "none").exists()
