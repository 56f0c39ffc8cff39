"""Survival and treatment-response models: estimators, treatment response, evaluation, MLflow.

Modules
-------
``design``      feature encoding and the survival target (pandas → numpy).
``estimators``  survival estimators behind one sklearn-style interface (CoxPH, RSF, GBSA,
                XGBoost Cox/AFT, xgboost.spark Cox).
``treatment``   :class:`~pipelines.models.treatment.TreatmentResponseModel` (S-/T-learner,
                bootstrap intervals, propensity overlap, explanations).
``evaluation``  discrimination, calibration, subgroup, policy value, targeting, oracle regret.
``registry``    MLflow tracking, the model card, registry and the ``champion`` alias.
``stage``       the ``train`` stage; ``byoc`` the bring-your-own-cohort command.
"""
