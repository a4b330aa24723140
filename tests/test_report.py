"""report.py without Ray: Progress and its ETA, the displays, watch, compare and the HTML report,
over catalogs written as the driver writes them (tests/catalog/helpers.py)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict
from datetime import datetime, timezone

import pytest

from catalog.helpers import FakeTrial, record_experiment, trials
from helpers.catalogs import THREE_PARAMS, fake, story_catalog, write
from tunehouse import jobs, report
from tunehouse.catalog import Catalog
from tunehouse.report import PlainDisplay, Progress

GRID_SPEC = """
name: grid-exp
task: classification
data: {sklearn: iris}
model: sklearn.tree.DecisionTreeClassifier
metrics: [accuracy]
search: {algorithm: grid, num_samples: 2}
space: {max_depth: {type: grid, values: [1, 2, 3]}, criterion: [gini, entropy]}
"""


def row(tid, status="terminated", value=None, start=None, end=None, **kw):
    return {"trial_id": tid, "status": status, "objective_value": value, "params": kw.pop("params", {}),
            "started_at": start, "ended_at": end, **kw}


# -- Progress -------------------------------------------------------------------------------------
def test_eta_is_remaining_work_over_the_concurrency_seen():
    # two at a time, 10 s each: 4 finished by t=20, two more started at t=20; now t=25
    rows = [row(f"t{i}", value=v, start=s, end=s + 10, params={"x": i}) for i, (s, v) in
            enumerate([(0, 0.5), (0, 0.7), (10, 0.6), (10, 0.9)])]
    rows += [row("r1", "running", start=20), row("r2", "running", start=20)]
    p = Progress.from_trials(rows, 10, 0, now=25, objective="accuracy", mode="max")
    assert (p.done, p.running, p.failed, p.finished) == (4, 2, 0, 4)
    assert p.mean_trial_s == 10 and p.concurrency == pytest.approx(2.0)  # (4*10 + 2*5) s busy over 25 s
    # (10 - 4) * 10 s of work, less 2 * 5 s the running trials have done, at 2 at once
    assert p.eta_s == pytest.approx(25.0)
    assert (p.best_value, p.best_trial_id, p.best_params) == (0.9, "t3", {"x": 3})
    assert p.elapsed_s == 25
    assert p.line() == ("[25.0s] 4/10 finished: 4 done, 2 running, 0 failed, 0 early-stopped; "
                        "best accuracy 0.9 (trial t3: x=3); ETA 25.0s")


def test_from_the_drivers_trial_records():
    from tunehouse.driver import TrialRecord

    recs = [TrialRecord("a", "terminated", {"x": 1}, metrics={"loss": 0.5}, started_at=0.0, ended_at=2.0),
            TrialRecord("b", "error", {"x": 9}, error="ValueError: x too big", started_at=0.0, ended_at=1.0)]
    rows = [asdict(r) for r in recs] + [{"trial_id": "c", "status": "running", "started_at": 2.0}]
    p = Progress.from_trials(rows, 5, 0.0, now=3.0, objective="loss", mode="min", experiment_id="e")
    assert (p.done, p.failed, p.running, p.best_value, p.best_trial_id) == (1, 1, 1, 0.5, "a")
    assert p.last_failure == "b: ValueError: x too big" and p.eta_s is not None


def test_eta_one_at_a_time_and_none_before_a_trial_finished():
    rows = [row("a", value=1.0, start=0, end=10), row("b", value=2.0, start=10, end=20)]
    p = Progress.from_trials(rows, 4, 0, now=20, objective="loss", mode="min")
    assert p.concurrency == pytest.approx(1.0) and p.eta_s == pytest.approx(20.0)
    assert p.best_value == 1.0  # min mode
    nothing = Progress.from_trials([row("a", "running", start=0)], 4, 0, now=5)
    assert nothing.eta_s is None and nothing.running == 1 and "ETA ?" in nothing.line()


def test_counts_failures_early_stops_and_datetimes():
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
    dt = lambda s: datetime.fromtimestamp(t0 + s, timezone.utc)  # noqa: E731
    rows = [
        row("a", value=0.3, start=dt(0), end=dt(2)),
        row("b", "error", start=dt(0), end=dt(1), error="ValueError: first"),
        row("c", "error", start=dt(1), end=dt(3), error="RuntimeError: the later one\nsecond line"),
        row("d", "early_stopped", value=0.1, start=dt(2), end=dt(3)),
        row("e", "stopped", start=dt(3), end=dt(4), error="stopped before it finished (time budget)"),
        row("f", "terminated", value=float("nan"), start=dt(3), end=dt(4)),  # NaN is never the best
    ]
    p = Progress.from_trials(rows, 6, dt(0), ended_at=dt(4), now=dt(100), status="stopped", objective="acc")
    assert (p.done, p.failed, p.early_stopped, p.stopped, p.running) == (2, 2, 1, 1, 0)
    assert p.finished == 6 and p.elapsed_s == pytest.approx(4.0)  # ended: elapsed stops at the end
    assert p.eta_s is None and p.best_trial_id == "a"
    assert p.last_failure == "c: RuntimeError: the later one"
    assert p.line().endswith("; stopped; last failure c: RuntimeError: the later one")
    assert p.to_dict()["line"] == p.line() and p.to_dict()["finished"] == 6


def test_progress_from_a_running_catalog(tmp_path):
    uri = str(tmp_path / "cat")
    now = time.time()
    done = [fake(i, 0.5 + i / 10, start=now - 30 + i * 2, wall=2) for i in range(3)]
    write(uri, "run1", THREE_PARAMS.format(name="r", n=10), done, finish=None,
          running=[("t0100", {"max_depth": 2}, now - 1), ("t0101", {"max_depth": 3}, now - 1)])
    p = report.progress_from_catalog(Catalog(uri), "run1")
    assert p.status == "running" and p.total == 10
    assert (p.done, p.running, p.finished) == (3, 2, 3)
    assert p.best_trial_id == "t0002" and p.eta_s is not None and p.eta_s > 0
    assert p.elapsed_s > 0


def test_grid_total_is_the_product_times_repeats(tmp_path):
    uri = str(tmp_path / "cat")
    write(uri, "grid1", GRID_SPEC, [fake(0, 0.5, params={"max_depth": 1, "criterion": "gini"})])
    assert report.progress_from_catalog(Catalog(uri), "grid1").total == 3 * 2 * 2


def test_jobs_status_shows_the_same_progress_line(tmp_path, capsys):
    from tunehouse.cli import _print_status

    uri = str(tmp_path / "cat")
    record_experiment(uri, "job1", trials(4))
    st = {"job_id": "tunehouse-job1", "status": "SUCCEEDED", "experiment_id": "job1", **jobs.progress(uri, "job1")}
    assert (st["trials_done"], st["trials_total"], st["trials_failed"]) == (4, 4, 0)
    assert st["progress_line"] == report.progress_from_catalog(Catalog(uri), "job1").line()
    _print_status(st, as_json=False)
    out = capsys.readouterr().out.splitlines()
    assert out[2] == "  " + st["progress_line"] and "4/4 finished" in out[2]
    assert jobs.progress(str(tmp_path / "none"), "nope")["catalog_note"].startswith("no catalog record yet")


# -- displays -------------------------------------------------------------------------------------
def test_plain_display_prints_every_10_trials_or_10_seconds():
    out = io.StringIO()
    d = PlainDisplay(out, every_s=3600, every_trials=10)
    for n in (0, 5, 9, 10, 12, 19, 20):
        d.update(Progress.from_trials([row(f"t{i}", value=1.0, start=0, end=1) for i in range(n)], 20, 0, now=5))
    final = Progress.from_trials([row(f"t{i}", value=1.0, start=0, end=1) for i in range(20)], 20, 0, now=6,
                                 ended_at=6, status="completed")
    d.close(final)
    lines = out.getvalue().splitlines()
    assert [int(re.search(r"\] (\d+)/20", ln).group(1)) for ln in lines] == [0, 10, 20, 20]
    assert lines[-1].endswith("; completed")
    timed = io.StringIO()
    d = PlainDisplay(timed, every_s=0.0, every_trials=10)
    for _ in range(3):
        d.update(Progress.from_trials([], 20, 0, now=1))
    assert len(timed.getvalue().splitlines()) == 3


def test_make_display_picks_by_stream():
    assert isinstance(report.make_display(io.StringIO(), quiet=True), report.NullDisplay)
    assert isinstance(report.make_display(io.StringIO()), report.PlainDisplay)  # not a terminal
    assert isinstance(report.make_display(io.StringIO(), live=True), report.RichDisplay)


def test_rich_display_redraws_in_place_and_leaves_a_summary():
    out = io.StringIO()
    d = report.make_display(out, live=True)
    for n in range(3):
        d.update(Progress.from_trials([row(f"t{i}", value=i, start=0, end=1) for i in range(n)], 3, 0, now=2,
                                      objective="acc", experiment_id="e1"))
    d.close(Progress.from_trials([row(f"t{i}", value=i, start=0, end=1) for i in range(3)], 3, 0, now=2, ended_at=2,
                                 status="completed", objective="acc", experiment_id="e1"))
    text = out.getvalue()
    assert "\x1b[2K" in text and re.search(r"\x1b\[\d*A", text)  # erase line, cursor up: drawn in place
    tail = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text.rsplit("\x1b[2K", 1)[-1])
    assert "3/3 finished" in tail and "completed" in tail and "best" in tail and "ETA" not in tail


# -- watch ----------------------------------------------------------------------------------------
def test_watch_polls_until_the_experiment_ends(tmp_path):
    uri = str(tmp_path / "cat")
    rec = write(uri, "w1", THREE_PARAMS.format(name="w", n=6), [fake(i, 0.5) for i in range(2)], finish=None)

    def finish_later():
        time.sleep(1.0)
        for i in range(2, 6):
            t = fake(i, 0.6)
            rec.trial_started(t.trial_id, t.params, t.started_at)
            rec.trial_finished(t)
        rec.finish("completed")

    th = threading.Thread(target=finish_later)
    th.start()
    out = io.StringIO()
    t = time.monotonic()
    code = report.watch(Catalog(uri), "w1", interval=0.2, stream=out)
    th.join()
    lines = out.getvalue().splitlines()
    assert code == 0 and time.monotonic() - t >= 0.9
    assert "2/6 finished" in lines[0] and lines[-1].startswith("[") and "6/6 finished" in lines[-1]
    assert lines[-1].endswith("completed")


@pytest.mark.parametrize(("status", "successes", "code"), [
    ("completed", 2, 0), ("stopped", 2, 0), ("stopped", 0, 1), ("failed", 2, 1), ("interrupted", 2, 1)])
def test_watch_exit_code_by_final_status(tmp_path, status, successes, code):
    uri = str(tmp_path / "cat")
    done = [fake(i, 0.5) for i in range(successes)] + [fake(9, None, status="error", error="ValueError: x")]
    write(uri, "x1", THREE_PARAMS.format(name="x", n=4), done, finish=status)
    out = io.StringIO()
    assert report.watch(Catalog(uri), "x1", interval=0.1, stream=out) == code
    assert out.getvalue().strip().endswith(f"{status}; last failure t0009: ValueError: x")


# -- compare --------------------------------------------------------------------------------------
def test_compare_noise_rule_and_fingerprints(tmp_path):
    uri = str(tmp_path / "cat")
    spec = THREE_PARAMS.format(name="c", n=3)
    write(uri, "a", spec, [fake(0, 0.90, std=0.02), fake(1, 0.85, std=0.03)])
    write(uri, "b", spec, [fake(0, 0.91, std=0.01)])  # +0.01, within A's 0.02
    write(uri, "c", spec, [fake(0, 0.99, std=0.01), fake(1, None, status="error", error="E")], fingerprint="fp1")
    write(uri, "d", spec, [FakeTrial("t0000", "terminated", {"max_depth": 2}, {"accuracy": 0.5},
                                     started_at=time.time(), ended_at=time.time())])  # hold-out: no std
    rows = report.compare(Catalog(uri), ["a", "b", "c", "d"])
    a, b, c, d = rows
    assert (a["best_value"], a["best_std"], a["within_noise"], a["delta"]) == (0.90, 0.02, None, None)
    assert b["same_data"] and b["delta"] == pytest.approx(0.01) and b["noise"] == 0.02 and b["within_noise"] is True
    assert not c["same_data"] and c["within_noise"] is False and (c["trials_done"], c["trials_failed"]) == (1, 1)
    assert d["best_std"] is None and d["within_noise"] is None
    # CPU-hours: the trials' CPU seconds summed, plus the recording driver's own CPU time
    row = Catalog(uri).experiment("a")
    assert row["cpu_hours_trials"] == pytest.approx(2 * 0.9 / 3600) and a["best_params"]["max_depth"] == 1
    assert a["cpu_hours"] == pytest.approx(row["cpu_hours_trials"] + row["cpu_hours_driver"])
    assert a["cost"] is None and a["cost_per_point"] is None  # no price
    priced = report.compare(Catalog(uri), ["a", "b"], price=2.0)[0]
    assert priced["cost"] == pytest.approx(2.0 * a["cpu_hours"])
    assert priced["cost_per_point"] is None  # the first trial was the best: nothing gained
    assert "within fold noise (|delta| <= 0.02); same data" in report.compare_verdict(b, a)
    assert "beyond fold noise (|delta| > 0.02): better; DIFFERENT data" in report.compare_verdict(c, a)
    assert "fold noise unknown" in report.compare_verdict(d, a)
    table = report.compare_table(rows)
    assert list(table.columns) == ["", "a", "b", "c", "d"] and "within fold noise" in list(table[""])


# -- the HTML report ------------------------------------------------------------------------------
def test_report_is_one_offline_file_with_every_section(tmp_path):
    from plotly.offline import get_plotlyjs

    uri = str(tmp_path / "cat")
    story_catalog(uri)
    out = report.build_report(Catalog(uri), ["story", "single"], tmp_path / "r.html")
    text = out.read_text()
    assert text.count(get_plotlyjs()[:400]) == 1  # plotly.js inlined once for all figures
    assert not re.search(r"<script[^>]*\bsrc=", text) and "<link" not in text  # nothing fetched
    for heading in ("Side by side", "Optimization history", "Parallel coordinates", "Parameter importances",
                    "Slices", "Learning curves", "Resource use per trial", "Top 10 trials",
                    "Failed and stopped trials", "Spec", "Data and environment"):
        assert heading in text, heading
    assert "ValueError: &lt;bad&gt; &amp; worse" in text and "<bad>" not in text
    assert "the 20 best of 25 trials with several reports" in text
    assert "1 parameter: nothing to rank it against" in text  # the one-param experiment
    assert "CPU-hours" in text and "fp1" in text and "3.11" in text and "min_impurity_decrease" in text
    # overlay; story: history, parallel, importances, 3 slices, curves, resources; single: history, parallel, slice, resources
    assert len(re.findall(r'class="plotly-graph-div"', text)) == 1 + 8 + 4
    assert not list(tmp_path.glob(".r.html.tmp-*"))


def test_report_of_a_running_experiment_without_results(tmp_path):
    uri = str(tmp_path / "cat")
    write(uri, "fresh", THREE_PARAMS.format(name="f", n=4), [], finish=None,
          running=[("t0001", {"max_depth": 2}, time.time())])
    text = report.build_report(Catalog(uri), ["fresh"], tmp_path / "f.html").read_text()
    assert "no finished trial with a value yet" in text and "0/4 finished" in text and "1 running" in text


def test_importances_note_when_too_few_or_equal(tmp_path):
    uri = str(tmp_path / "cat")
    spec = THREE_PARAMS.format(name="few", n=3)
    write(uri, "few", spec, [fake(i, 0.5 + i / 10) for i in range(3)])
    write(uri, "equal", spec, [fake(i, 0.5) for i in range(8)])
    text = report.build_report(Catalog(uri), ["few", "equal"], tmp_path / "n.html").read_text()
    assert "3 finished trial(s): too few to estimate importances" in text
    assert "every finished trial has the same accuracy" in text


def test_report_watch_and_compare_read_an_object_store_catalog(s3_server, tmp_path):
    uri = f"s3://tunehouse-test/{uuid.uuid4().hex[:8]}"
    record_experiment(uri, "s3exp", trials(8))
    out = report.build_report(Catalog(uri), ["s3exp"], tmp_path / "s3.html")
    assert "8/8 finished" in out.read_text()
    lines = io.StringIO()
    assert report.watch(Catalog(uri), "s3exp", stream=lines) == 0 and "8/8 finished" in lines.getvalue()
    assert report.compare(Catalog(uri), ["s3exp", "s3exp"])[1]["within_noise"] is True


def test_report_and_watch_never_import_ray(tmp_path):
    uri = str(tmp_path / "cat")
    record_experiment(uri, "nr", trials(6))
    code = ("import sys; from tunehouse.catalog import Catalog; from tunehouse import report; "
            f"c = Catalog({uri!r}); report.build_report(c, ['nr'], {str(tmp_path / 'x.html')!r}); "
            "report.compare(c, ['nr', 'nr']); import io; report.watch(c, 'nr', stream=io.StringIO()); "
            "assert 'ray' not in sys.modules, 'ray imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
