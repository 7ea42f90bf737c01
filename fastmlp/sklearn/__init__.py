"""scikit-learn estimators on fastmlp: drop-in replacements for MLPClassifier / MLPRegressor.

    from fastmlp.sklearn import FastMLPClassifier
    clf = FastMLPClassifier(hidden_layer_sizes=(100,), random_state=0).fit(X, y)
    clf.predict_proba(X_test)

They take MLPClassifier's / MLPRegressor's parameters (alpha as scikit-learn defines it:
see _network.py for how it becomes fastmlp's l2) plus fastmlp's batch_norm, dropout,
n_threads and dtype, and work in Pipelines, GridSearchCV and joblib (also on a Dask
cluster). Needs scikit-learn (``pip install fastmlp[sklearn]``); ``import fastmlp``
does not import it.
"""
from ._estimators import FastMLPClassifier, FastMLPRegressor

__all__ = ["FastMLPClassifier", "FastMLPRegressor"]
