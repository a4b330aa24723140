"""A user's training function, next to the spec that names it with a dot instead of a colon."""


def fit(params, fold):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=params["C"], max_iter=500).fit(fold.X_train, fold.y_train)
