"""retrain's refusals before anything runs: one line, exit 2, nothing written (no Ray)."""

from __future__ import annotations

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
