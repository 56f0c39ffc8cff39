"""The MLflow pyfunc flavour of the treatment-response model.

A module of its own so that the logged model pickles this class *by reference*
(``pipelines.models.pyfunc.TreatmentResponsePyfunc``) rather than by value.
"""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd


class TreatmentResponsePyfunc(mlflow.pyfunc.PythonModel):
    """``predict(features)`` = ``TreatmentResponseModel.predict_treatments(features)``."""

    def __init__(self, model):
        self.model = model

    def predict(self, context, model_input, params=None):
        return self.model.predict_treatments(pd.DataFrame(model_input))
