"""ORM models, one module per domain. Importing this package registers every table."""

from modelport.models.datasets import Dataset, DatasetVersion
from modelport.models.feedback import Feedback
from modelport.models.predictions import PredictionRecord
from modelport.models.registry import (
    MlflowDelivery,
    ModelAlias,
    ModelReport,
    ModelVersion,
    RegisteredModel,
)
from modelport.models.rollups import PredictionRollup, RollupState
from modelport.models.tokens import ApiToken
from modelport.models.users import Role, User, UserSession

__all__ = [
    "ApiToken",
    "Dataset",
    "DatasetVersion",
    "Feedback",
    "MlflowDelivery",
    "ModelAlias",
    "ModelReport",
    "ModelVersion",
    "PredictionRecord",
    "PredictionRollup",
    "RegisteredModel",
    "Role",
    "RollupState",
    "User",
    "UserSession",
]
