"""Training recipes: a scikit-learn pipeline per learning algorithm, with its preprocessing.

Every recipe puts the same preprocessing in front of its estimator: numbers have their gaps
filled with the median and are standardised; categories (text and booleans) have their gaps
filled with the most frequent value and are one-hot encoded, ignoring values unseen in
training. A table of numbers alone gets a plain positional pipeline, without a column
transformer, so that skl2onnx can compile it and serving runs it through onnxruntime.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from modelport.lazy import lazy

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

# scikit-learn is imported when a pipeline is built (modelport.lazy).
sk_compose = lazy("sklearn.compose")
sk_impute = lazy("sklearn.impute")
sk_pipeline = lazy("sklearn.pipeline")
sk_preprocessing = lazy("sklearn.preprocessing")

CLASSIFICATION = "classification"
REGRESSION = "regression"


class RecipeError(ValueError):
    """A recipe or a parameter that does not exist or cannot take the value given."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _optional_int(text: str) -> int | None:
    return None if text.strip().lower() == "none" else int(text)


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(f"{text!r} is not true or false")


# A parameter's parser turns the text of --param k=v into the estimator's value.
Parser = Callable[[str], Any]


@dataclass(frozen=True)
class Recipe:
    """A named algorithm for one task, its default settings and the ones a user may set."""

    name: str
    task: str
    summary: str
    estimator: str  # its class, "module.Class", imported when a pipeline is built
    defaults: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Parser] = field(default_factory=dict)

    def parse_params(self, pairs: Mapping[str, str]) -> dict[str, Any]:
        """The estimator's settings: the defaults, overridden by the user's ``k=v`` texts."""
        chosen = dict(self.defaults)
        for key, text in pairs.items():
            parser = self.params.get(key)
            if parser is None:
                known = ", ".join(sorted(self.params)) or "none"
                raise RecipeError(
                    "unknown_param",
                    f"The recipe {self.name} has no parameter {key!r}; it takes: {known}.",
                )
            try:
                chosen[key] = parser(text)
            except ValueError:
                kind = getattr(parser, "__name__", "value").lstrip("_").replace("_", " ")
                raise RecipeError(
                    "invalid_param", f"--param {key}={text}: {key} takes a {kind}, not {text!r}."
                ) from None
        return chosen

    def build(
        self,
        numeric: list[str],
        categorical: list[str],
        params: Mapping[str, Any],
        seed: int,
    ) -> Pipeline:
        """The unfitted pipeline for a table with these number and category columns."""
        settings = dict(params)
        if "random_state" in self.params or "random_state" in self.defaults:
            settings.setdefault("random_state", seed)
        module, _, name = self.estimator.rpartition(".")
        estimator = getattr(importlib.import_module(module), name)(**settings)
        Pipeline = sk_pipeline.Pipeline  # noqa: N806 - the class, named as scikit-learn does
        numbers = [
            ("impute", sk_impute.SimpleImputer(strategy="median")),
            ("scale", sk_preprocessing.StandardScaler()),
        ]
        if not categorical:
            return Pipeline([*numbers, ("model", estimator)])
        categories = Pipeline(
            [
                ("impute", sk_impute.SimpleImputer(strategy="most_frequent")),
                ("encode", sk_preprocessing.OneHotEncoder(handle_unknown="ignore")),
            ]
        )
        transformers: list[tuple[str, Any, list[str]]] = [("categories", categories, categorical)]
        if numeric:
            transformers.insert(0, ("numbers", Pipeline(numbers), numeric))
        preprocess = sk_compose.ColumnTransformer(transformers)
        return Pipeline([("preprocess", preprocess), ("model", estimator)])


_FOREST = {
    "n_estimators": int,
    "max_depth": _optional_int,
    "min_samples_leaf": int,
    "random_state": int,
}
_BOOSTING = {
    "learning_rate": float,
    "max_iter": int,
    "max_depth": _optional_int,
    "max_leaf_nodes": int,
    "early_stopping": _boolean,
    "random_state": int,
}

RECIPES: tuple[Recipe, ...] = (
    Recipe(
        "logistic-regression",
        CLASSIFICATION,
        "Logistic regression (L2), probabilities for every class.",
        "sklearn.linear_model.LogisticRegression",
        {"C": 1.0, "max_iter": 1000},
        {"C": float, "max_iter": int},
    ),
    Recipe(
        "random-forest-classifier",
        CLASSIFICATION,
        "A random forest of decision trees.",
        "sklearn.ensemble.RandomForestClassifier",
        {"n_estimators": 100, "random_state": 0},
        _FOREST,
    ),
    Recipe(
        "hist-gradient-boosting-classifier",
        CLASSIFICATION,
        "Histogram gradient boosting (LightGBM-style trees).",
        "sklearn.ensemble.HistGradientBoostingClassifier",
        {"max_iter": 100, "early_stopping": False, "random_state": 0},
        _BOOSTING,
    ),
    Recipe(
        "ridge",
        REGRESSION,
        "Ridge regression (linear, L2).",
        "sklearn.linear_model.Ridge",
        {"alpha": 1.0},
        {"alpha": float},
    ),
    Recipe(
        "random-forest-regressor",
        REGRESSION,
        "A random forest of regression trees.",
        "sklearn.ensemble.RandomForestRegressor",
        {"n_estimators": 100, "random_state": 0},
        _FOREST,
    ),
    Recipe(
        "hist-gradient-boosting-regressor",
        REGRESSION,
        "Histogram gradient boosting for numbers.",
        "sklearn.ensemble.HistGradientBoostingRegressor",
        {"max_iter": 100, "early_stopping": False, "random_state": 0},
        _BOOSTING,
    ),
)
RECIPE_NAMES = tuple(recipe.name for recipe in RECIPES)


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; RecipeError naming the known ones otherwise."""
    for recipe in RECIPES:
        if recipe.name == name:
            return recipe
    raise RecipeError(
        "unknown_recipe", f"There is no recipe {name!r}; choose from {', '.join(RECIPE_NAMES)}."
    )
