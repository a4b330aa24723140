"""The data contract without Ray: inferred once, then clean, drifted and broken copies checked."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tunehouse.contract import VIOLATIONS, Contract, infer, psi
from tunehouse.errors import InputError


def frame(seed: int, n: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"age": rng.integers(18, 80, n), "income": rng.normal(50, 10, n),
                         "plan": rng.choice(["basic", "plus", "premium"], n, p=[0.5, 0.3, 0.2])})


@pytest.fixture(scope="module")
def contract() -> Contract:
    X = frame(0)
    y = pd.Series(np.random.default_rng(1).integers(0, 2, len(X)))
    return Contract.from_json(infer(X, y, target="churned", classes=["no", "yes"]).to_json())


def test_the_contract_records_kinds_ranges_categories_and_reference_statistics(contract):
    cols = contract.columns
    X = frame(0)
    assert contract.data["rows"] == 2000 and contract.target == "churned"
    assert cols["age"]["kind"] == "numeric" and cols["age"]["min"] == X.age.min() and cols["age"]["max"] == X.age.max()
    assert len(cols["income"]["bins"]) == 9 and abs(sum(cols["income"]["ref"]) - 1) < 1e-12
    assert cols["plan"]["categories"] == ["basic", "plus", "premium"]
    assert cols["plan"]["freq"]["basic"] == pytest.approx((X.plan == "basic").mean())
    assert cols["churned"]["categories"] == ["no", "yes"] and cols["churned"]["target"]
    assert not any(c["nullable"] for c in cols.values())


def test_a_fresh_sample_of_the_same_data_is_clean(contract):
    new = frame(5)
    new = new[(new.age >= 18) & (new.age <= 79) & new.income.between(new.income.min(), new.income.max())]
    new["income"] = new.income.clip(contract.columns["income"]["min"], contract.columns["income"]["max"])
    result = contract.check(new)
    assert result.ok, [p.message for p in result.problems]


def test_a_drifted_copy_is_drift_not_a_violation(contract):
    new = frame(5)
    new["income"] = new.income.clip(contract.columns["income"]["min"], contract.columns["income"]["max"] - 5) + 4
    new["plan"] = np.random.default_rng(2).choice(["basic", "plus", "premium"], len(new), p=[0.1, 0.2, 0.7])
    new["age"] = new.age.clip(18, 79)
    result = contract.check(new)
    kinds = {(p.kind, p.column) for p in result.problems}
    assert kinds == {("drift", "income"), ("drift", "plan")}, [p.message for p in result.problems]
    assert not result.violations and all(p.details["psi"] >= 0.1 for p in result.drift)
    assert "significant drift (PSI" in result.drift[-1].message


def test_a_broken_copy_names_every_problem_once(contract):
    new = frame(5).drop(columns=["age"])
    new["note"] = "x"
    new["income"] = new.income.astype(str)
    new.loc[:2, "plan"] = "gold"
    new.loc[3:9, "plan"] = None
    new["churned"] = "maybe"
    result = contract.check(new)
    got = {(p.kind, p.column): p for p in result.problems}
    assert set(got) >= {("missing_column", "age"), ("extra_column", "note"), ("dtype", "income"),
                        ("categories", "plan"), ("nulls", "plan"), ("categories", "churned")}, list(got)
    assert got[("categories", "plan")].details == {"count": 3, "unseen": 1, "examples": ["gold"]}
    assert got[("nulls", "plan")].details["count"] == 7
    assert {p.kind for p in result.violations} == set(VIOLATIONS)
    assert all("\n" not in p.message for p in result.problems)
    json.dumps(result.to_dict())  # --json prints it


def test_values_out_of_the_seen_range_are_counted_with_examples(contract):
    new = frame(0)
    new.loc[:4, "age"] = 200
    (p,) = [p for p in contract.check(new).problems if p.kind == "range"]
    assert p.column == "age" and p.details["count"] == 5 and p.details["examples"] == [200]
    assert "outside the seen range 18..79" in p.message


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift():
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0
    assert 0 < psi([0.5, 0.5], [0.6, 0.4]) < psi([0.5, 0.5], [0.9, 0.1])


def test_an_experiment_without_a_contract_is_one_line(tmp_path):
    from catalog.helpers import record_experiment
    from tunehouse.catalog import Catalog
    from tunehouse.contract import load_contract

    record_experiment(str(tmp_path / "cat"), "e1", [])
    with pytest.raises(InputError, match="experiment e1 has no data contract"):
        load_contract("e1", Catalog(str(tmp_path / "cat")))
    with pytest.raises(InputError, match="no experiment 'e2'"):
        load_contract("e2", Catalog(str(tmp_path / "cat")))


def test_columns_the_spec_drops_or_does_not_list_are_not_extra():
    X = frame(0)
    assert infer(X, ignore=["customer_id"]).check(X.assign(customer_id=1)).ok
    assert infer(X, listed=True).check(X.assign(anything=1)).ok
    (p,) = infer(X).check(X.assign(customer_id=1)).problems
    assert p.kind == "extra_column" and p.column == "customer_id"
