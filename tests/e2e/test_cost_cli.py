"""What a search cost, end to end: a run priced by TUNEHOUSE_PRICE_PER_CPU_HOUR records its
CPU-hours, wall time and cost; ``experiments``, ``compare``, the report and the model card show
them; ``--price-per-cpu-hour`` prices after the fact; a bad price is one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT, base_spec
from helpers.cli import cli_env, tunehouse_main
from tunehouse.catalog import Catalog
from tunehouse.costs import PRICE_ENV
from tunehouse.driver import run
from tunehouse.spec import parse_spec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def priced(ray_session, tmp_path_factory):
    """A grid of two trees on iris, one at a time (depth 1 first, then a better depth 4), run with
    the price in the environment: (catalog, result)."""
    import os

    cat = str(tmp_path_factory.mktemp("cost") / "catalog")
    spec = parse_spec(json.dumps(base_spec(
        name="priced", search={"algorithm": "grid", "max_concurrent": 1},
        space={"max_depth": {"type": "grid", "values": [1, 4]}})))
    old = os.environ.get(PRICE_ENV)
    os.environ[PRICE_ENV] = "0.05"
    try:
        result = run(spec, catalog=cat)
    finally:
        if old is None:
            os.environ.pop(PRICE_ENV)
        else:
            os.environ[PRICE_ENV] = old
    return cat, result


def test_the_run_records_cpu_hours_wall_time_and_cost(priced):
    cat, result = priced
    exp = Catalog(cat).experiment(result.experiment_id)
    trials_cpu = sum(t.usage["cpu_s"] for t in result.trials) / 3600.0
    assert exp["cpu_hours_trials"] == pytest.approx(trials_cpu, rel=1e-9)
    assert exp["cpu_hours_driver"] > 0 and exp["wall_s"] > 0 and exp["price_per_cpu_hour"] == 0.05
    assert exp["cost"] == pytest.approx((exp["cpu_hours_trials"] + exp["cpu_hours_driver"]) * 0.05, rel=1e-9)


def test_experiments_shows_the_cost_and_prices_after_the_fact(priced):
    cat, result = priced
    exp = Catalog(cat).experiment(result.experiment_id)
    first = next(t for t in result.trials if t.params["max_depth"] == 1).metrics["accuracy"]
    gain = result.best.metrics["accuracy"] - first
    assert gain > 0
    row = json.loads(tunehouse_main("experiments", "--catalog", cat, "--json").stdout)[0]
    # the listing's JSON keeps 10 decimal places (pandas' to_json), hence rel=1e-3 for tiny costs
    assert row["cost"] == pytest.approx(exp["cost"], rel=1e-3)
    assert row["cpu_h"] == pytest.approx(row["cost"] / 0.05, rel=1e-3)
    assert row["cost_per_point"] == pytest.approx(exp["cost"] / (100 * gain), rel=1e-3)
    again = json.loads(tunehouse_main("experiments", "--catalog", cat, "--json", "--price-per-cpu-hour", "2").stdout)[0]
    assert again["price_per_cpu_hour"] == 2 and again["cost"] == pytest.approx(row["cpu_h"] * 2, rel=1e-3)
    out = subprocess.run([sys.executable, "-m", "tunehouse", "experiments", "--catalog", cat], capture_output=True,
                         text=True, timeout=120, cwd=ROOT, env=cli_env())
    assert out.returncode == 0 and "cost_per_point" in out.stdout.splitlines()[0]
    assert f"{exp['cost']:.4g}" in out.stdout


def test_compare_the_report_and_the_model_card_show_the_cost(priced, tmp_path):
    cat, result = priced
    exp_id = result.experiment_id
    cost = Catalog(cat).experiment(exp_id)["cost"]
    out = tunehouse_main("compare", exp_id, exp_id, "--catalog", cat, "--price-per-cpu-hour", "1")
    assert out.returncode == 0, out.stderr
    lines = {ln.split("  ")[0]: ln for ln in out.stdout.splitlines()}
    assert f"{cost / 0.05:.4g}" in lines["cost"]  # priced at 1 per CPU-hour
    assert "cost per point gained" in out.stdout
    html = tmp_path / "r.html"
    assert tunehouse_main("report", exp_id, "--catalog", cat, "--out", str(html)).returncode == 0
    assert f"at 0.05 per CPU-hour: cost {cost:.4g}" in html.read_text()
    assert tunehouse_main("export", exp_id, "--catalog", cat, "--out", str(tmp_path / "x")).returncode == 0
    card = (tmp_path / "x" / "MODEL_CARD.md").read_text()
    assert "- Cost of the search: " in card and f"at 0.05 per CPU-hour: cost {cost:.4g}" in card


@pytest.mark.parametrize("args", [("experiments",), ("compare", "a", "b"), ("report", "a")])
def test_a_bad_price_is_one_line_exit_2(priced, args):
    cat, _ = priced
    out = tunehouse_main(*args, "--catalog", cat, "--price-per-cpu-hour", "0")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == "error: --price-per-cpu-hour: expected a price per CPU-hour > 0 (e.g. 0.05), got '0'\n"
