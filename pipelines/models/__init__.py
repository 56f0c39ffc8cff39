"""Survival and treatment-response models: estimators, treatment response, evaluation, MLflow.

Modules
-------
``design``      feature encoding and the survival target (pandas → numpy).
``estimators``  survival estimators behind one sklearn-style interface (CoxPH, RSF, GBSA,
                XGBoost Cox/AFT, xgboost.spark Cox).
``treatment``   :class:`~pipelines.models.treatment.TreatmentResponseModel` (S-/T-learner,
                bootstrap intervals, propensity overlap, explanations).
``metrics``     discrimination, calibration, subgroup, policy value, targeting, oracle regret.
``registry``    MLflow tracking, the model card, registry and the ``champion`` alias.
``stage``       the ``train`` stage; ``byoc`` the bring-your-own-cohort command.
"""

import os as _os

# OpenMP worker threads (XGBoost, scikit-learn) spin while they wait for work by default. On a
# shared or busy machine that turns a 1-second XGBoost fit into a minute (measured: 1.3 s vs
# 74 s for 4,000 rows on 2 cores at load 20, benchmarks/RESULTS.md). PASSIVE makes them sleep
# instead. It must be set before the OpenMP runtime loads, hence here, before any model import;
# an explicit setting in the environment wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# The public modules, imported on use (``from pipelines.models import stage``): importing the
# package itself stays free of Spark.
__all__ = ["byoc", "design", "estimators", "registry", "simulate", "stage", "treatment"]
