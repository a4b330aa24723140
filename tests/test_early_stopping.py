"""Trials that learn in steps (issue 13), without Ray: every family's resource, CV folds in
lockstep, a training function's ``report``, resuming from a state, the catalog's rules."""

from __future__ import annotations

import dataclasses
import pickle
import threading
import time

import pytest

from tunehouse.records import TrialRecord, best_of
from tunehouse.spec import parse_spec
from tunehouse.stepping import Gate, StopTraining
from tunehouse.trainable import evaluate, make_payload, refit
from tunehouse.validate import validate

#: A small early-stopping spec (no data loaded): XGBoost on iris, ASHA up to 30 rounds.
IRIS_ES = """
name: es
task: classification
data: {{sklearn: iris}}
model: xgboost
metrics: [accuracy]
search:
  algorithm: {algorithm}
  num_samples: 6
  early_stopping: {{scheduler: asha, max_resource: 30, report_every: 10}}
space: {{max_depth: {{type: int, low: 1, high: 9}}}}
"""


def _payload(model, space, *, es="{scheduler: asha, max_resource: 30, report_every: 10}", metric="roc_auc",
             evaluation="{cv: 3, test_size: 0.2}", extra="", data="{sklearn: breast_cancer}"):
    spec = parse_spec(f"""
name: t
seed: 3
task: classification
data: {data}
model: {model}
evaluation: {evaluation}
metrics: [{metric}]
search:
  algorithm: random
  num_samples: 2
  early_stopping: {es}
space: {space}
{extra}
""")
    dataset, splits = validate(spec)
    return make_payload(spec, dataset, splits)


#: Measured costs (tunehouse.costs): two fits of the same model never take the same time, and a
#: resumed model's pickle may differ by a few bytes of bookkeeping.
TIMINGS = ("fit_s", "predict_ms")
COSTS = (*TIMINGS, "model_kb")


def _scores(metrics):
    """A trial's metrics without its costs: what two fits of one configuration share exactly."""
    return {k: v for k, v in metrics.items() if k not in COSTS}


#: Early stopping that checkpoints at every report: a report may then take the folds' state (with
#: no ``checkpoint_every``, the first fold trains on while a report is sent, ``learn_in_steps``).
CHECKPOINTED = "{scheduler: asha, max_resource: 30, report_every: 10, checkpoint_every: 1}"


def _steps(p, params, *, keep_state=False, **kw):
    """Evaluate, collecting (resource, metrics, state) per report; a state is pickled at its
    report (as a checkpoint would be) when ``keep_state`` (for a payload that checkpoints)."""
    got = []

    def report(r, m, state):
        got.append((r, m, pickle.loads(pickle.dumps(state())) if keep_state else state))

    out = evaluate(params, p, report=report, **kw)
    return got, out


FAMILIES = [
    ("xgboost", "{max_depth: {type: int, low: 2, high: 4}}", {"max_depth": 3}),
    ("lightgbm", "{num_leaves: {type: int, low: 4, high: 8}}", {"num_leaves": 6}),
    ("histgb", "{max_depth: {type: int, low: 2, high: 4}}", {"max_depth": 3}),
    ("sklearn.ensemble.RandomForestClassifier", "{max_depth: {type: int, low: 2, high: 4}}", {"max_depth": 3}),
    ("sklearn.ensemble.ExtraTreesClassifier", "{max_depth: {type: int, low: 2, high: 4}}", {"max_depth": 3}),
    ("sklearn.ensemble.GradientBoostingClassifier", "{max_depth: {type: int, low: 2, high: 4}}", {"max_depth": 2}),
]


@pytest.mark.parametrize(("model", "space", "params"), FAMILIES, ids=[f[0].rsplit(".", 1)[-1] for f in FAMILIES])
def test_each_family_reports_in_steps_equal_to_plain_fits_at_that_resource(model, space, params):
    p = _payload(model, space)
    got, out = _steps(p, params)
    assert [r for r, _, _ in got] == [10, 20]
    assert out.resource == 30
    plain = dataclasses.replace(p, steps=None)
    for r, metrics, _ in got:  # every step's mean over folds is what a fit with that resource scores
        ref = evaluate({**params, p.steps.param: r}, plain).metrics
        assert metrics["roc_auc"] == pytest.approx(ref["roc_auc"], abs=1e-12)
    full = evaluate({**params, p.steps.param: 30}, plain)
    assert _scores(out.metrics) == pytest.approx(_scores(full.metrics), abs=1e-12)
    assert all(out.metrics[k] > 0 for k in TIMINGS)
    assert out.metrics["model_kb"] == pytest.approx(full.metrics["model_kb"], rel=1e-3)  # the same models
    assert len(out.model.models) == 3  # the k fold models, fitted to the full budget


def test_partial_fit_estimators_learn_one_epoch_per_unit():
    p = _payload("sklearn.linear_model.SGDClassifier", "{alpha: {type: loguniform, low: 0.0001, high: 0.01}}",
                 es="{scheduler: median, max_resource: 5, report_every: 1}", metric="accuracy",
                 extra="preprocess: {scale: standard}")
    assert (p.steps.how, p.steps.param) == ("partial_fit", "max_iter")
    got, out = _steps(p, {"alpha": 0.001})
    assert [r for r, _, _ in got] == [1, 2, 3, 4]
    est = out.model.models[0].steps[-1][1]
    n_rows = len(p.X) * 2 // 3
    assert abs(est.t_ - 1 - 5 * n_rows) <= 5  # five epochs over the fold's training rows


def test_folds_report_the_running_mean_after_each_fold_and_end_as_plain_cv():
    p = _payload("sklearn.svm.SVC", "{C: {type: loguniform, low: 0.1, high: 10}}",
                 es="{scheduler: asha, resource: folds}", evaluation="{cv: 4, test_size: 0.2}", metric="accuracy",
                 extra="preprocess: {scale: standard}")
    assert p.steps.resource == "folds" and p.steps.max_resource == 4
    got, out = _steps(p, {"C": 1.0})
    assert [r for r, _, _ in got] == [1, 2, 3]
    plain = evaluate({"C": 1.0}, dataclasses.replace(p, steps=None))
    assert _scores(out.metrics) == pytest.approx(_scores(plain.metrics), abs=1e-12)
    # the state after fold 2 resumes at fold 3: the same end, folds 1-2 not fitted again
    state = pickle.loads(pickle.dumps(got[1][2]()))
    again, resumed = _steps(p, {"C": 1.0}, resume=state)
    assert [r for r, _, _ in again] == [3]
    assert _scores(resumed.metrics) == pytest.approx(_scores(plain.metrics), abs=1e-12)


def test_a_training_function_reports_through_fold_report_averaged_over_folds():
    p = _payload("helpers.objectives:learns", "{x: {type: uniform, low: -1, high: 1}}",
                 es="{scheduler: asha, max_resource: 5, report_every: 1}", metric="{name: loss, mode: min}")
    assert p.steps.how == "function"
    got, out = _steps(p, {"x": 0.5})
    assert [r for r, _, _ in got] == [1, 2, 3, 4]
    assert [m["loss"] for _, m, _ in got] == pytest.approx([0.25 + 1 / s for s in (1, 2, 3, 4)])
    assert out.metrics["loss"] == pytest.approx(0.25 + 1 / 5)


def test_a_warm_start_trial_resumes_from_its_state_to_the_same_model():
    p = _payload("sklearn.ensemble.RandomForestClassifier", "{max_depth: {type: int, low: 2, high: 4}}",
                 es=CHECKPOINTED)
    got, full = _steps(p, {"max_depth": 3}, keep_state=True)
    state = got[0][2]  # what a checkpoint at resource 10 holds
    again, resumed = _steps(p, {"max_depth": 3}, resume=state)
    assert [r for r, _, _ in again] == [20]
    assert _scores(resumed.metrics) == pytest.approx(_scores(full.metrics), abs=1e-12)


def test_a_boosting_trial_resumes_from_its_booster_and_ends_at_the_full_budget():
    p = _payload("xgboost", "{max_depth: {type: int, low: 2, high: 4}}", es=CHECKPOINTED)
    got, _ = _steps(p, {"max_depth": 3}, keep_state=True)
    state = got[1][2]  # the boosters after 20 rounds
    again, resumed = _steps(p, {"max_depth": 3}, resume=state)
    assert again == []  # nothing left to report below 30
    assert [m.steps[-1][1].get_booster().num_boosted_rounds() for m in resumed.model.models] == [30, 30, 30]


def test_xgboost_trials_in_one_process_quantize_each_fold_once_and_fit_the_same_models():
    from tunehouse.families import xgboost as xgb_family

    def raw(out):
        return [bytes(m.steps[-1][1].get_booster().save_raw("ubj")) for m in out.model.models]

    p = _payload("xgboost", "{max_depth: {type: int, low: 2, high: 4}}")
    xgb_family._MATRICES.clear()
    _, first = _steps(p, {"max_depth": 3})
    built = {rows: matrix for rows, (_, matrix) in xgb_family._MATRICES.items()}
    assert sorted(built) == [(p.key, 0), (p.key, 1), (p.key, 2)]  # one per fold
    _, again = _steps(p, {"max_depth": 3})  # the next trial on this worker: the same matrices
    assert {rows: matrix for rows, (_, matrix) in xgb_family._MATRICES.items()} == built
    assert all(xgb_family._MATRICES[r][1] is m for r, m in built.items())
    assert raw(first) == raw(again)
    xgb_family._MATRICES.clear()  # and a fresh matrix per fold, as without the reuse: the same boosters
    _, fresh = _steps(p, {"max_depth": 3})
    assert raw(fresh) == raw(first)
    assert "_create_dmatrix" not in vars(first.model.models[0].steps[-1][1])  # pickles without the hook
    _, coarse = _steps(p, {"max_depth": 3, "max_bin": 16})  # built differently: replaced, one per fold
    assert len(xgb_family._MATRICES) == 3 and all(m is not built[r] for r, (_, m) in xgb_family._MATRICES.items())
    xgb_family._MATRICES.clear()
    _, coarse_fresh = _steps(p, {"max_depth": 3, "max_bin": 16})
    assert raw(coarse) == raw(coarse_fresh) != raw(first)
    other = _payload("xgboost", "{max_depth: {type: int, low: 2, high: 4}}")  # another search's rows
    _steps(other, {"max_depth": 3})
    assert {rows[0] for rows in xgb_family._MATRICES} == {other.key}


def test_refit_uses_the_trials_resource():
    p = _payload("xgboost", "{max_depth: {type: int, low: 2, high: 4}}")
    model = refit(p, {"max_depth": 3}, resource=20)
    assert model.steps[-1][1].get_booster().num_boosted_rounds() == 20


def test_a_stopped_gate_ends_its_training_thread_promptly():
    reached = []

    def train(at):
        for step in range(1, 10_000):
            time.sleep(0.001)
            at(step, step)
            reached.append(step)

    gate = Gate(train, should_stop=lambda: False)
    assert gate.until(5) == (5, 5)
    gate.close()
    assert not gate._thread.is_alive() and max(reached) < 10


def test_a_gate_let_go_on_trains_to_the_next_step_alone_and_waits_there():
    """``go_on``: the training runs towards the next step while the coordinator reports, and
    stops there; ``until`` then finds it done. Nothing goes on once the gate is closed."""
    def train(at):
        for step in range(1, 100):
            at(step, step)

    gate = Gate(train, should_stop=lambda: False)
    assert gate.until(3) == (3, 3)
    assert gate.go_on(6)
    deadline = time.monotonic() + 10
    while gate._at[0] < 6 and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)
    assert gate._at[0] == 6  # reached without anyone waiting for it, and no further
    assert gate.until(6) == (6, 6)
    gate.close()
    assert not gate.go_on(9) and not gate._thread.is_alive()


def test_while_a_report_is_sent_the_first_fold_trains_on_unless_reports_checkpoint():
    """An XGBoost trial whose reports are slow (0.3 s, far longer than 10 rounds): during each,
    the first fold grows to the next step and waits there, the others stay at the reported one;
    with checkpoints (a report may save the folds) every fold stays at the step. The fold models
    are the same either way."""
    import xgboost

    def rounds(raw):
        booster = xgboost.Booster()
        booster.load_model(bytearray(raw))
        return booster.num_boosted_rounds()

    def seen(es):
        p = _payload("xgboost", "{max_depth: {type: int, low: 2, high: 4}}", es=es)
        at_report = []

        def report(r, m, state):
            time.sleep(0.3)
            at_report.append([rounds(raw) for raw in state()["folds"]])  # every fold paused by now

        out = evaluate({"max_depth": 3}, p, report=report)
        return at_report, out

    ahead, out = seen("{scheduler: asha, max_resource: 30, report_every: 10}")
    assert ahead == [[20, 10, 10], [30, 20, 20]]
    in_step, checkpointed = seen(CHECKPOINTED)
    assert in_step == [[10, 10, 10], [20, 20, 20]]
    assert _scores(out.metrics) == _scores(checkpointed.metrics)


def test_a_scheduler_stop_during_a_step_ends_the_trial():
    stop, done = threading.Event(), threading.Event()

    def train(at):
        at(1, "one")
        stop.set()  # Tune asks the trial to stop while it trains towards step 2
        done.wait(30)  # a long step (until the test has seen what it checks)

    gate = Gate(train, should_stop=stop.is_set)
    assert gate.until(1) == (1, "one")
    t = time.monotonic()
    with pytest.raises(SystemExit):
        gate.until(2)
    assert time.monotonic() - t < 5
    done.set()
    gate.close()


def test_an_error_in_the_training_thread_reaches_the_trial():
    def train(at):
        raise ValueError("bad config")

    with pytest.raises(ValueError, match="bad config"):
        Gate(train, should_stop=lambda: False).until(1)
    assert issubclass(StopTraining, Exception)


def test_best_prefers_full_budget_trials_over_early_stopped_ones():
    full = TrialRecord("a", "terminated", {}, metrics={"auc": 0.90}, resource=100)
    early = TrialRecord("b", "early_stopped", {}, metrics={"auc": 0.95}, resource=20)
    assert best_of([early, full], "auc", "max") is full
    assert best_of([early, TrialRecord("c", "error", {})], "auc", "max") is early
    rows = [{"status": "early_stopped", "auc": 0.95}, {"status": "terminated", "auc": 0.5}]
    assert best_of(rows, "auc", "max") is rows[1]


def test_without_early_stopping_nothing_changes():
    p = _payload("xgboost", "{max_depth: {type: int, low: 2, high: 4}}", es="null",
                 extra="")
    assert p.steps is None
    got, out = _steps(p, {"max_depth": 3})
    assert got == [] and out.resource is None


def test_the_catalog_records_early_stopped_trials_their_resource_and_every_report(tmp_path):
    from types import SimpleNamespace

    from tunehouse.catalog import Catalog, CatalogWriter, ExperimentRecorder
    from tunehouse.driver import describe
    from tunehouse.tracking import SearchLimits, TrialTracker

    spec = parse_spec(IRIS_ES.format(algorithm="random"))
    info = describe(spec, SimpleNamespace(fingerprint="fp", source="sklearn:iris"), "e1", {})
    recorder = ExperimentRecorder(CatalogWriter(str(tmp_path), "e1", flush_s=3600), info)
    recorder.start(cluster_cpus=2, cluster_nodes=1)
    tracker = TrialTracker(recorder, SearchLimits(None, None), mode_of=info.mode_of, note=lambda s: None,
                           max_resource=spec.max_resource)
    for key, accs in (("a", [0.9, 0.95, 0.96]), ("b", [0.97])):  # b is stopped at 10, better so far
        tracker.start(key, {"max_depth": 3})
        for i, acc in enumerate(accs):
            tracker.result(key, {"training_iteration": i + 1, "accuracy": acc, "resource": 10 * (i + 1)})
        tracker.complete(key, None, f"/ckpt/{key}")
    recorder.finish("completed")
    cat = Catalog(str(tmp_path))
    trials = cat.trials("e1").set_index("trial_id")
    assert trials.loc["a", "status"] == "terminated" and trials.loc["a", "resource"] == 30
    assert trials.loc["b", "status"] == "early_stopped" and trials.loc["b", "resource"] == 10
    assert not isinstance(trials.loc["b", "checkpoint_uri"], str)  # a stopped trial keeps no final model
    exp = cat.experiment("e1")
    assert (exp["trials_done"], exp["trials_early_stopped"], exp["max_resource"]) == (1, 1, 30)
    assert exp["best_trial_id"] == "a" and cat.best("e1")["trial_id"] == "a"
    its = cat.iterations("e1")
    assert its.groupby("trial_id").resource.apply(list).to_dict() == {"a": [10, 20, 30], "b": [10]}
    sql = cat.sql("select trial_id, max(resource) r from iterations group by trial_id order by 1").fetchall()
    assert sql == [("a", 30), ("b", 10)]


def test_a_resumed_bayesian_search_tells_optuna_of_early_stopped_trials_with_their_value():
    from tunehouse.search import History
    from tunehouse.search.bayes import study_searcher

    spec = parse_spec(IRIS_ES.format(algorithm="bayes"))
    history = History(finished=[
        TrialRecord("a", "terminated", {"max_depth": 3}, metrics={"accuracy": 0.9}, resource=30),
        TrialRecord("b", "early_stopped", {"max_depth": 8}, metrics={"accuracy": 0.7}, resource=10),
        TrialRecord("c", "error", {"max_depth": 5}),
    ])
    trials = study_searcher(spec, history)._ot_study.trials
    assert [(t.state.name, t.value) for t in trials] == [("COMPLETE", 0.9), ("COMPLETE", 0.7), ("FAIL", None)]


def test_asha_reviews_a_promotion_when_later_trials_beat_it():
    """Ray's ASHA lets the first trial at a rung go on (nothing to compare it with) and never
    judges it again; ours stops it at its next report once the rung holds better results, and a
    trial that stays in the top third runs on."""
    from types import SimpleNamespace

    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    from tunehouse.search._ray_schedulers import ReviewedASHA

    def feed(scheduler):
        kw = dict(time_attr="resource", max_t=90, grace_period=10, reduction_factor=3, metric="m", mode="max")
        sched = scheduler(**kw)
        trials = {n: SimpleNamespace(trial_id=n) for n in "abcde"}
        for t in trials.values():
            sched.on_trial_add(None, t)

        def report(n, resource, m):
            return sched.on_trial_result(None, trials[n], {"resource": resource, "m": m})

        first = report("a", 10, 0.5)  # first at rung 10: goes on
        later = [report(n, 10, m) for n, m in (("b", 0.9), ("c", 0.8), ("d", 0.95))]
        return first, later, report("a", 20, 0.55), report("d", 20, 0.96)

    first, later, a_next, d_next = feed(ASHAScheduler)
    assert first == TrialScheduler.CONTINUE and a_next == TrialScheduler.CONTINUE  # Ray's: never judged again
    first, later, a_next, d_next = feed(ReviewedASHA)
    assert first == TrialScheduler.CONTINUE and later[0] == later[2] == TrialScheduler.CONTINUE
    assert a_next == TrialScheduler.STOP  # 0.5 is now below the rung's top third
    assert d_next == TrialScheduler.CONTINUE  # the best at rung 10 runs on
    assert pickle.loads(pickle.dumps(ReviewedASHA(metric="m", mode="max"))).__class__ is ReviewedASHA


def test_the_median_rule_never_pauses_a_trial_it_cannot_judge_yet():
    """Ray's median rule pauses a trial that has too few others to compare with when another
    waits; paused between checkpoints, it would start again from resource 0."""
    from types import SimpleNamespace

    from ray.tune.experiment import Trial
    from ray.tune.schedulers import MedianStoppingRule, TrialScheduler

    from tunehouse.search.schedulers import _median

    waiting = SimpleNamespace(status=Trial.PENDING)
    controller = SimpleNamespace(get_live_trials=lambda: [waiting])
    spec = SimpleNamespace(min_resource=1, max_resource=9)
    for scheduler, want in ((MedianStoppingRule(time_attr="resource", grace_period=1, min_samples_required=3),
                             TrialScheduler.PAUSE), (_median(spec), TrialScheduler.CONTINUE)):
        scheduler.set_search_properties("loss", "min")
        trial = type("T", (), {"trial_id": "a"})()  # the rule keys its records by trial object
        scheduler.on_trial_add(controller, trial)
        got = [scheduler.on_trial_result(controller, trial, {"resource": r, "loss": 1.0}) for r in range(1, 10)]
        assert got[0] == want and (want == TrialScheduler.PAUSE or set(got) == {TrialScheduler.CONTINUE})
