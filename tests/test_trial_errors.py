"""What a failing trial prints and records, on the session's real Ray (in-process `run`)."""

from __future__ import annotations

import pytest

from conftest import base_spec
from tunehouse.catalog import Catalog
from tunehouse.driver import run
from tunehouse.spec import load_spec

pytestmark = pytest.mark.slow


def test_a_retried_attempt_is_one_line_and_the_final_failure_keeps_its_traceback(
        ray_session, tmp_path, write_spec, capfd):
    markers = tmp_path / "markers"
    markers.mkdir()
    spec = load_spec(write_spec(base_spec(
        model="helpers.objectives:flaky",  # x=2 fails on its first attempt only, x=9 on every attempt
        metrics=[{"name": "loss", "mode": "min"}], evaluation={"holdout": 0.3, "test_size": 0},
        search={"algorithm": "grid", "max_concurrent": 1},
        space={"x": {"type": "grid", "values": [2, 9]}, "how": {"type": "grid", "values": ["raise"]},
               "marker_dir": {"type": "grid", "values": [str(markers)]}},
        failure={"max_retries": 1},
    )))
    capfd.readouterr()
    result = run(spec, catalog=tmp_path / "catalog")
    err = capfd.readouterr().err
    ids = {t.params["x"]: t.trial_id for t in result.trials}
    assert "Traceback" not in err and "Trials did not complete" not in err
    assert sorted(ln for ln in err.splitlines() if ln.startswith("trial ")) == sorted([
        f"trial {ids[2]} failed (attempt 1), retrying: RuntimeError: attempt 1 of x=2 fails",
        f"trial {ids[9]} failed (attempt 1), retrying: RuntimeError: attempt 1 of x=9 fails",
        f"trial {ids[9]} failed: RuntimeError: attempt 2 of x=9 fails",
    ])
    df = Catalog(tmp_path / "catalog").trials(result.experiment_id).set_index("x")
    assert df.loc[2, "status"] == "terminated"
    trace = df.loc[9, "error_traceback"]
    assert "attempt 1 of x=9 fails" in trace and trace.endswith("RuntimeError: attempt 2 of x=9 fails")
    assert "Failure # 2" in trace  # every attempt's traceback, as Tune kept them
