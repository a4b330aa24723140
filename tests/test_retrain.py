"""retrain's refusals before anything runs: one line, exit 2, nothing written (no Ray)."""

from __future__ import annotations

import pytest

from helpers.cli import tunehouse_main


def _files(root):
    return sorted(str(p) for p in root.rglob("*") if p.is_file())


def test_refusals_name_what_is_wrong_and_write_nothing(tmp_path):
    cat = tmp_path / "cat"
    (tmp_path / "new.csv").write_text("x,y\n1,0\n2,1\n")
    (tmp_path / "not-an-export").mkdir()
    for args, message in [
        (("prod",), "no export holds the tag 'prod' in "),
        ((str(tmp_path / "not-an-export"),), "is not an export folder (no tunehouse.json) nor a tag"),
        (("prod", "--min-gain", "-0.1"), "--min-gain: expected a number >= 0, got -0.1"),
    ]:
        proc = tunehouse_main("retrain", *args, "--data", str(tmp_path / "new.csv"), "--catalog", str(cat))
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert proc.stdout == "" and len(proc.stderr.splitlines()) == 1
    assert not cat.exists()


def test_promotions_of_a_catalog_without_any(tmp_path):
    proc = tunehouse_main("promotions", "--catalog", str(tmp_path / "cat"))
    assert proc.returncode == 0 and proc.stdout.strip() == "(no rows)"


@pytest.mark.slow  # an offline experiment and its refitted export: seconds
def test_a_champion_trained_on_a_built_in_data_set_is_refused(tmp_path, write_spec):
    from conftest import base_spec
    from helpers.offline import record

    cat = tmp_path / "cat"
    exp_id = record(write_spec(base_spec(evaluation={"holdout": 0.3, "test_size": 0.2})), cat, [{"max_depth": 2}])
    assert tunehouse_main("export", exp_id, "--out", str(tmp_path / "champ"), "--tag", "prod",
                          "--catalog", str(cat)).returncode == 0
    (tmp_path / "new.csv").write_text("x,y\n1,0\n2,1\n")
    before = _files(cat)
    proc = tunehouse_main("retrain", "prod", "--data", str(tmp_path / "new.csv"), "--catalog", str(cat))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: experiment {exp_id} was trained on sklearn:iris, not a file; "
                                   "retrain --data replaces a spec's data.path")
    assert _files(cat) == before
