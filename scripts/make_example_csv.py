"""Generate search_spaces/data/customers.csv: a small churn table with text columns and gaps,
and beside it churn_yes_no.csv: the same rows as a real export looks (an id, an email and a
signup date per customer, the target as yes/no).

Deterministic (seeded), so the committed files and regenerated ones are byte-identical.
Usage: python scripts/make_example_csv.py [OUT]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd


def make(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "plus", "premium"], size=n, p=[0.5, 0.3, 0.2])
    region = rng.choice(["north", "south", "east", "west"], size=n)
    tenure = rng.integers(1, 72, size=n).astype(float)
    monthly = np.round(rng.normal(55, 20, size=n).clip(10, 150), 2)
    tickets = rng.poisson(1.5, size=n).astype(float)
    logit = -1.2 + 0.9 * tickets - 0.05 * tenure + 0.02 * (monthly - 55) + (plan == "basic") * 0.8
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    df = pd.DataFrame(
        {
            "plan": plan,
            "region": region,
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "support_tickets": tickets,
            "churned": churned,
        }
    )
    # Real exports have gaps: some numbers and some categories are missing.
    for col, frac in [("monthly_charges", 0.05), ("tenure_months", 0.03), ("region", 0.04)]:
        df.loc[rng.random(n) < frac, col] = np.nan
    return df


def with_ids_and_labels(df: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    """The same rows with the columns a CRM export adds, and churned as yes/no."""
    rng = np.random.default_rng(seed)
    n = len(df)
    ids = [f"C{10000 + i}" for i in range(n)]
    signup = pd.Timestamp("2019-01-01") + pd.to_timedelta(rng.integers(0, 5 * 365, size=n), unit="D")
    out = pd.DataFrame({"customer_id": ids, "email": [f"{i.lower()}@example.com" for i in ids],
                        "signup_date": signup.strftime("%Y-%m-%d")})
    out = pd.concat([out, df.drop(columns=["churned"])], axis=1)
    out["churned"] = np.where(df["churned"] == 1, "yes", "no")
    return out


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "search_spaces/data/customers.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    df = make()
    df.to_csv(out, index=False)
    print(f"wrote {out}")
    labelled = out.with_name("churn_yes_no.csv")
    with_ids_and_labels(df).to_csv(labelled, index=False)
    print(f"wrote {labelled}")
