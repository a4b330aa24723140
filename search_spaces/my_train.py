"""The training function of customers_function.yaml: ``model: my_train:fit``.

tunehouse calls ``fit(params, fold)`` once per CV fold, and once more for the final refit on
all training rows (then ``fold.X_valid`` and ``fold.y_valid`` are None). The spec has no
``preprocess:``, so ``fold.X_train`` holds the raw columns, text (``plan``, ``region``) and
missing values included, and this function encodes and imputes them itself.
``fold.y_train`` holds the target's labels as the file has them: "yes" / "no".
"""

from __future__ import annotations

from sklearn.compose import make_column_transformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

TEXT = ["plan", "region"]


def fit(params, fold):
    """Fit a random forest that weighs churners ("yes") by ``params["churn_weight"]``.

    Returns the fitted pipeline: tunehouse scores it on ``fold.X_valid`` with the spec's
    metrics, checkpoints it, and exports it; it predicts the labels "yes" / "no".
    """
    prepare = make_column_transformer(
        (make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), TEXT),
        remainder=SimpleImputer(strategy="median"),  # the numeric columns
    )
    forest = RandomForestClassifier(
        n_estimators=params["n_estimators"],
        max_depth=params["max_depth"],
        class_weight={"yes": params["churn_weight"], "no": 1.0},  # keyed by the labels themselves
        random_state=0,
    )
    return make_pipeline(prepare, forest).fit(fold.X_train, fold.y_train)
