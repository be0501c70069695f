"""Input schemas: inference from training data, request validation, CSV chunk validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_iris

from modelport.serving.schema import (
    FEATURE_TYPES,
    MAX_DETAILS,
    Batch,
    Feature,
    InputError,
    InputSchema,
    infer_schema,
    validate_frame,
    validate_inputs,
)
from tests.support.fuzzing import examples

CODES = {
    "empty_batch",
    "too_many_rows",
    "not_an_object",
    "missing_field",
    "unknown_field",
    "wrong_type",
    "not_finite",
    "boolean_not_number",
    "not_integer",
    "unseen_category",
    "ragged_columns",
    "bad_shape",
}


def make_schema() -> InputSchema:
    return InputSchema(
        [
            Feature("length", "number", minimum=4.3, maximum=7.9, example=5.8),
            Feature("count", "integer", minimum=0, maximum=10, example=3),
            Feature("flag", "boolean", example=True),
            Feature("color", "category", categories=["1", "blue", "green", "red"], example="red"),
            Feature("note", "string", required=False),
            Feature("extra", "number", required=False),
        ]
    )


ROW = {"length": 5.1, "count": 3, "flag": True, "color": "red", "note": "hi", "extra": 1.5}


def errors(inputs, schema=None, max_rows=100) -> list[dict]:
    with pytest.raises(InputError) as caught:
        validate_inputs(schema or make_schema(), inputs, max_rows)
    return caught.value.details


def frame_errors(frame, schema=None, first_row=0) -> list[dict]:
    with pytest.raises(InputError) as caught:
        validate_frame(schema or make_schema(), frame, first_row)
    return caught.value.details


def codes(details: list[dict]) -> list[tuple]:
    return [(d["row"], d["field"], d["code"]) for d in details]


# --- shapes -------------------------------------------------------------------------------


def test_one_object_becomes_a_one_row_batch_in_schema_order() -> None:
    batch = validate_inputs(make_schema(), dict(reversed(ROW.items())), 10)
    assert batch.rows == 1
    assert list(batch.columns) == ["length", "count", "flag", "color", "note", "extra"]
    assert batch.columns["length"].dtype == np.float64
    assert batch.columns["count"].dtype == np.int64
    assert batch.columns["flag"].dtype == bool
    assert batch.columns["color"].dtype == object
    assert batch.columns["color"][0] == "red"
    assert batch.warnings == []


def test_object_list_and_columns_give_the_same_batch() -> None:
    rows = [ROW, {**ROW, "length": 6.0, "count": 4, "flag": False, "color": "blue"}]
    as_list = validate_inputs(make_schema(), rows, 10)
    columns = {name: [r[name] for r in rows] for name in ROW}
    as_columns = validate_inputs(make_schema(), columns, 10)
    assert as_list == as_columns
    assert as_list.rows == 2
    single = validate_inputs(make_schema(), ROW, 10)
    assert single == validate_inputs(make_schema(), [ROW], 10)
    assert single == validate_inputs(make_schema(), {k: [v] for k, v in ROW.items()}, 10)


def test_columns_may_be_numpy_arrays() -> None:
    schema = InputSchema([Feature("a", "number"), Feature("b", "integer"), Feature("c", "boolean")])
    batch = validate_inputs(
        schema,
        {"a": np.array([1.5, 2.0]), "b": np.array([1, 2]), "c": np.array([True, False])},
        10,
    )
    assert batch == validate_inputs(
        schema, [{"a": 1.5, "b": 1, "c": True}, {"a": 2.0, "b": 2, "c": False}], 10
    )
    assert codes(errors({"a": np.array([1.0, np.nan])}, InputSchema([Feature("a", "number")]))) == [
        (1, "a", "not_finite")
    ]


@pytest.mark.parametrize("inputs", ["text", 3, 2.5, None, True])
def test_inputs_that_are_no_object_or_list_are_bad_shape(inputs) -> None:
    (detail,) = errors(inputs)
    assert detail["code"] == "bad_shape"
    assert detail["row"] is None and detail["field"] is None
    assert "list of such objects" in detail["message"]


@pytest.mark.parametrize("inputs", [[], {"length": []}, {k: [] for k in ROW}])
def test_empty_batches_are_refused(inputs) -> None:
    assert codes(errors(inputs)) == [(None, None, "empty_batch")]


def test_too_many_rows_is_one_detail_for_lists_and_columns() -> None:
    assert codes(errors([ROW] * 4, max_rows=3)) == [(None, None, "too_many_rows")]
    (detail,) = errors({k: [v] * 4 for k, v in ROW.items()}, max_rows=3)
    assert detail["code"] == "too_many_rows"
    assert "4 rows" in detail["message"] and "at most 3" in detail["message"]
    assert validate_inputs(make_schema(), [ROW] * 3, 3).rows == 3


def test_ragged_columns_are_refused() -> None:
    (detail,) = errors({"length": [1.0, 2.0], "count": [1]})
    assert detail["code"] == "ragged_columns"
    assert "length: 2" in detail["message"] and "count: 1" in detail["message"]


def test_rows_that_are_not_objects_are_named() -> None:
    details = errors([ROW, [1, 2, 3], "x", ROW])
    assert codes(details) == [(1, None, "not_an_object"), (2, None, "not_an_object")]
    assert "Row 1 must be an object" in details[0]["message"]


# --- field errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("length", "abc", "wrong_type"),
        ("length", [1.0], "wrong_type"),
        ("length", {"v": 1}, "wrong_type"),
        ("length", float("nan"), "not_finite"),
        ("length", float("inf"), "not_finite"),
        ("length", "-Infinity", "not_finite"),
        ("length", "nan", "not_finite"),
        ("length", 10**400, "not_finite"),
        ("length", True, "boolean_not_number"),
        ("count", False, "boolean_not_number"),
        ("count", 2.5, "not_integer"),
        ("count", "2.5", "not_integer"),
        ("count", 2**63, "wrong_type"),
        ("count", "three", "wrong_type"),
        ("count", float("nan"), "not_finite"),
        ("flag", 1, "wrong_type"),
        ("flag", "yes", "wrong_type"),
        ("flag", float("nan"), "not_finite"),
        ("color", "purple", "unseen_category"),
        ("color", 2, "unseen_category"),
        ("color", ["red"], "wrong_type"),
        ("note", True, "wrong_type"),
        ("note", float("inf"), "not_finite"),
        ("length", None, "missing_field"),
        ("length", "  ", "missing_field"),
        ("color", "", "missing_field"),
    ],
)
def test_each_bad_value_has_its_code_and_a_message_naming_the_field(field, value, code) -> None:
    (detail,) = errors({**ROW, field: value})
    assert detail == {"row": 0, "field": field, "code": code, "message": detail["message"]}
    assert detail["message"].startswith(f"'{field}' ")
    assert detail["message"].endswith(".")
    assert len(detail["message"]) < 300
    # the same value in a list of rows is reported at its row
    assert codes(errors([ROW, {**ROW, field: value}])) == [(1, field, code)]


def test_messages_say_what_was_expected() -> None:
    messages = {d["field"]: d["message"] for d in errors({**ROW, "count": 2.5, "color": "x"})}
    assert messages["count"] == "'count' must be a whole number, got 2.5."
    assert messages["color"] == "'color' must be one of '1', 'blue', 'green', 'red', got 'x'."
    (detail,) = errors({**ROW, "length": True})
    assert detail["message"] == "'length' must be a number, got the boolean true."


def test_missing_and_unknown_fields() -> None:
    row = {k: v for k, v in ROW.items() if k != "count"} | {"colour": "red"}
    details = errors(row)
    assert codes(details) == [(0, "count", "missing_field"), (0, "colour", "unknown_field")]
    assert details[0]["message"] == "'count' is required."
    assert "'colour' is not a feature" in details[1]["message"]
    assert "length, count" in details[1]["message"]


def test_columns_report_missing_and_unknown_columns_without_a_row() -> None:
    columns = {k: [v] for k, v in ROW.items() if k != "count"} | {"bogus": [1]}
    assert codes(errors(columns)) == [
        (None, "count", "missing_field"),
        (None, "bogus", "unknown_field"),
    ]


def test_every_problem_is_listed_in_row_then_schema_order() -> None:
    rows = [
        {**ROW, "color": "purple", "length": "x"},
        ROW,
        {**ROW, "count": 1.5},
        [1],
    ]
    assert codes(errors(rows)) == [
        (0, "length", "wrong_type"),
        (0, "color", "unseen_category"),
        (2, "count", "not_integer"),
        (3, None, "not_an_object"),
    ]


def test_details_stop_at_the_limit() -> None:
    rows = [{**ROW, "length": "x", "count": "y"} for _ in range(80)]
    with pytest.raises(InputError) as caught:
        validate_inputs(make_schema(), rows, 1000)
    details = caught.value.details
    assert len(details) == MAX_DETAILS
    assert caught.value.truncated
    assert codes(details[:3]) == [
        (0, "length", "wrong_type"),
        (0, "count", "wrong_type"),
        (1, "length", "wrong_type"),
    ]
    assert details[-1]["row"] == 49
    assert "more than 100 problems" in str(caught.value)


def test_error_message_of_a_single_problem_is_that_problem() -> None:
    with pytest.raises(InputError) as caught:
        validate_inputs(make_schema(), {**ROW, "count": 2.5}, 10)
    assert str(caught.value) == "'count' must be a whole number, got 2.5."
    assert not caught.value.truncated


# --- coercions and warnings -----------------------------------------------------------------


def test_safe_coercions() -> None:
    batch = validate_inputs(
        make_schema(),
        {
            "length": " 5.1 ",
            "count": "3",
            "flag": "TRUE",
            "color": 1,
            "note": 7,
            "extra": "2",
        },
        10,
    )
    assert batch.columns["length"][0] == 5.1
    assert batch.columns["count"].dtype == np.int64 and batch.columns["count"][0] == 3
    assert batch.columns["flag"][0] is np.True_
    assert batch.columns["color"][0] == "1"
    assert batch.columns["note"][0] == "7"
    assert batch.columns["extra"][0] == 2.0


@pytest.mark.parametrize("value", [3, 3.0, "3", " 3 ", "3.0", np.int32(3), np.float64(3.0)])
def test_integer_features_take_whole_numbers_in_any_form(value) -> None:
    batch = validate_inputs(make_schema(), {**ROW, "count": value}, 10)
    assert batch.columns["count"].tolist() == [3]
    assert batch.columns["count"].dtype == np.int64


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("true", True), ("False", False), ("1", True), (" 0 ", False)],
)
def test_boolean_words(value, expected) -> None:
    batch = validate_inputs(make_schema(), {**ROW, "flag": value}, 10)
    assert batch.columns["flag"].tolist() == [expected]


def test_categories_match_as_text_and_ignore_surrounding_space() -> None:
    for value in (1, 1.0, "1", " 1 "):
        assert (
            validate_inputs(make_schema(), {**ROW, "color": value}, 10).columns["color"][0] == "1"
        )
    assert validate_inputs(make_schema(), {**ROW, "color": " red"}, 10).columns["color"][0] == "red"


def test_optional_features_may_be_absent_or_null() -> None:
    row = {k: v for k, v in ROW.items() if k not in ("note", "extra")}
    for inputs in (row, {**row, "note": None, "extra": None}, {**row, "note": "", "extra": " "}):
        batch = validate_inputs(make_schema(), inputs, 10)
        assert batch.columns["note"].tolist() == [None]
        assert math.isnan(batch.columns["extra"][0])
    mixed = validate_inputs(make_schema(), [row, ROW], 10)
    assert mixed.columns["note"].tolist() == [None, "hi"]
    assert np.isnan(mixed.columns["extra"][0]) and mixed.columns["extra"][1] == 1.5


def test_optional_integer_and_boolean_with_missing_values() -> None:
    schema = InputSchema(
        [Feature("n", "integer", required=False), Feature("b", "boolean", required=False)]
    )
    full = validate_inputs(schema, [{"n": 1, "b": True}, {"n": 2, "b": False}], 10)
    assert full.columns["n"].dtype == np.int64 and full.columns["b"].dtype == bool
    holes = validate_inputs(schema, [{"n": 1, "b": True}, {}], 10)
    assert holes.columns["n"].dtype == np.float64 and np.isnan(holes.columns["n"][1])
    assert holes.columns["b"].tolist() == [True, None]
    assert np.array_equal(holes.matrix(np.float64), [[1.0, 1.0], [np.nan, np.nan]], equal_nan=True)


def test_out_of_range_numbers_are_predicted_with_a_warning() -> None:
    batch = validate_inputs(make_schema(), [ROW, {**ROW, "length": 12.5, "count": -1}], 10)
    assert batch.columns["length"].tolist() == [5.1, 12.5]
    assert codes(batch.warnings) == [(1, "length", "out_of_range"), (1, "count", "out_of_range")]
    assert batch.warnings[0]["message"] == (
        "'length' is 12.5, outside the range seen in training (4.3 to 7.9); predicted anyway."
    )
    assert validate_inputs(make_schema(), {**ROW, "length": 12.5}, 10).warnings == [
        {**batch.warnings[0], "row": 0}
    ]


def test_matrix_and_frame() -> None:
    batch = validate_inputs(make_schema(), [ROW, {**ROW, "flag": False, "count": 7}], 10)
    matrix = batch.matrix()
    assert matrix.dtype == np.float32 and matrix.flags.c_contiguous
    assert np.allclose(matrix, [[5.1, 3, 1, 1.5], [5.1, 7, 0, 1.5]])
    assert batch.matrix(np.float64).dtype == np.float64
    one = validate_inputs(make_schema(), ROW, 10).matrix()
    assert one.shape == (1, 4) and one.flags.c_contiguous
    frame = batch.frame()
    assert list(frame.columns) == ["length", "count", "flag", "color", "note", "extra"]
    assert frame["count"].dtype == np.int64 and frame["color"].tolist() == ["red", "red"]


def test_example_row_is_valid() -> None:
    schema = make_schema()
    batch = validate_inputs(schema, schema.example_row(), 1)
    assert batch.rows == 1 and batch.warnings == []
    bare = InputSchema(
        [Feature("x", "integer", minimum=2, maximum=4), Feature("c", "category", categories=["a"])]
    )
    assert bare.example_row() == {"x": 3, "c": "a"}


def test_an_edited_schema_is_validated_with_its_new_rules() -> None:
    schema = make_schema()
    validate_inputs(schema, ROW, 1)
    schema.features[3].categories.append("purple")
    assert validate_inputs(schema, {**ROW, "color": "purple"}, 1).columns["color"][0] == "purple"
    schema.features[0].maximum = 5.0
    assert codes(validate_inputs(schema, ROW, 1).warnings) == [(0, "length", "out_of_range")]


# --- CSV chunks -----------------------------------------------------------------------------


def text_frame(rows: list[dict], columns: list[str] | None = None) -> pd.DataFrame:
    """A frame as pd.read_csv(dtype=str, keep_default_na=False) gives it."""
    return pd.DataFrame(rows, columns=columns, dtype=str)


TEXT_ROW = {
    "length": "5.1",
    "count": "3",
    "flag": "true",
    "color": "red",
    "note": "hi",
    "extra": "1.5",
}


def test_frame_matches_json_on_the_same_text() -> None:
    rows = [
        TEXT_ROW,
        {
            **TEXT_ROW,
            "length": " 9 ",
            "count": "4.0",
            "flag": "0",
            "color": " blue",
            "note": "",
            "extra": "",
        },
    ]
    from_frame = validate_frame(make_schema(), text_frame(rows))
    assert from_frame == validate_inputs(make_schema(), rows, 10)
    assert from_frame.columns["count"].dtype == np.int64
    assert codes(from_frame.warnings) == [(1, "length", "out_of_range")]


def test_frame_errors_match_json_errors() -> None:
    rows = [
        {**TEXT_ROW, "length": "abc", "count": "2.5"},
        {**TEXT_ROW, "length": "nan", "flag": "yes", "color": "purple"},
        {**TEXT_ROW, "count": "", "extra": "inf"},
    ]
    details = frame_errors(text_frame(rows))
    assert details == errors(rows)
    assert codes(details) == [
        (0, "length", "wrong_type"),
        (0, "count", "not_integer"),
        (1, "length", "not_finite"),
        (1, "flag", "wrong_type"),
        (1, "color", "unseen_category"),
        (2, "count", "missing_field"),
        (2, "extra", "not_finite"),
    ]


def test_frame_rows_are_numbered_from_first_row() -> None:
    rows = [TEXT_ROW, {**TEXT_ROW, "count": "x"}]
    assert codes(frame_errors(text_frame(rows), first_row=50_000)) == [
        (50_001, "count", "wrong_type")
    ]
    batch = validate_frame(make_schema(), text_frame([{**TEXT_ROW, "length": "100"}]), first_row=7)
    assert codes(batch.warnings) == [(7, "length", "out_of_range")]


def test_frame_missing_columns_and_extra_columns() -> None:
    frame = text_frame([TEXT_ROW]).drop(columns=["count", "note"]).assign(id="17")
    assert codes(frame_errors(frame)) == [(None, "count", "missing_field")]
    batch = validate_frame(
        make_schema(), text_frame([TEXT_ROW]).drop(columns=["note"]).assign(id="1")
    )
    assert list(batch.columns) == ["length", "count", "flag", "color", "note", "extra"]
    assert batch.columns["note"].tolist() == [None]


def test_frame_empty_and_duplicate_columns() -> None:
    assert codes(frame_errors(text_frame([], columns=list(TEXT_ROW)))) == [
        (None, None, "empty_batch")
    ]
    duplicated = pd.concat(
        [text_frame([TEXT_ROW]), text_frame([{"length": "1"}])[["length"]]], axis=1
    )
    assert codes(frame_errors(duplicated)) == [(None, "length", "bad_shape")]


def test_frame_from_read_csv_and_frames_not_read_as_text(tmp_path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        "id,length,count,flag,color,note,extra\n1,5.1,3,True,red,,\n2,6,4,FALSE,1,x,2\n"
    )
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    batch = validate_frame(make_schema(), frame)
    assert batch.columns["flag"].tolist() == [True, False]
    assert batch.columns["note"].tolist() == [None, "x"]
    assert np.isnan(batch.columns["extra"][0])
    # default read_csv (numbers and NaN) gives the same batch
    assert validate_frame(make_schema(), pd.read_csv(path)) == batch


def test_frame_many_errors_are_cut_at_the_limit() -> None:
    frame = text_frame([{**TEXT_ROW, "length": "x"}] * 5000)
    frame.loc[:, "count"] = ""
    with pytest.raises(InputError) as caught:
        validate_frame(make_schema(), frame, first_row=10)
    assert len(caught.value.details) == MAX_DETAILS and caught.value.truncated
    assert codes(caught.value.details[:2]) == [
        (10, "length", "wrong_type"),
        (10, "count", "missing_field"),
    ]
    assert caught.value.details[-1]["row"] == 59


def test_frame_big_integers_stay_exact() -> None:
    schema = InputSchema([Feature("n", "integer")])
    batch = validate_frame(schema, text_frame([{"n": "9007199254740993"}, {"n": "2.0"}]))
    assert batch.columns["n"].tolist() == [9007199254740993, 2]
    assert batch == validate_inputs(schema, [{"n": "9007199254740993"}, {"n": "2.0"}], 10)


# --- properties -----------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["5.1", " 3 ", "2.5", "true", "0", "red", "1", "", "nan", "-inf", "1e400"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from([*ROW, "other"]) | st.text(max_size=5), inner, max_size=7)
    ),
    max_leaves=30,
)
rowlike = st.fixed_dictionaries(
    {},
    optional={name: json_scalars | json_values for name in [*ROW, "other"]},
)


def assert_well_formed(error: InputError, names: set[str]) -> None:
    assert 1 <= len(error.details) <= MAX_DETAILS
    for detail in error.details:
        assert set(detail) == {"row", "field", "code", "message"}
        assert detail["code"] in CODES
        assert detail["row"] is None or (isinstance(detail["row"], int) and detail["row"] >= 0)
        assert detail["field"] is None or isinstance(detail["field"], str)
        assert isinstance(detail["message"], str) and detail["message"]
        if detail["code"] not in ("unknown_field", "not_an_object") and detail["field"]:
            assert detail["field"] in names
    json.dumps(error.details, allow_nan=False)


def assert_well_formed_batch(batch: Batch, schema: InputSchema) -> None:
    assert list(batch.columns) == schema.names
    assert batch.rows >= 1
    for column in batch.columns.values():
        assert column.shape == (batch.rows,)
    for feature in schema.features:
        column = batch.columns[feature.name]
        if feature.type == "number":
            assert column.dtype == np.float64
            assert feature.required is False or np.isfinite(column).all()
    assert batch.matrix().shape == (batch.rows, 4)
    json.dumps(batch.warnings, allow_nan=False)


@settings(max_examples=examples(300), suppress_health_check=[HealthCheck.too_slow])
@given(inputs=json_values | rowlike | st.lists(rowlike, max_size=5))
def test_any_json_gives_a_batch_or_a_well_formed_input_error(inputs) -> None:
    schema = make_schema()
    try:
        batch = validate_inputs(schema, inputs, 3)
    except InputError as error:
        assert_well_formed(error, set(schema.names))
    else:
        assert_well_formed_batch(batch, schema)


@settings(max_examples=examples(200), suppress_health_check=[HealthCheck.too_slow])
@given(
    columns=st.dictionaries(
        st.sampled_from([*ROW, "other"]), st.lists(json_scalars, min_size=0, max_size=4), max_size=7
    )
)
def test_any_columns_give_a_batch_or_a_well_formed_input_error(columns) -> None:
    schema = make_schema()
    try:
        batch = validate_inputs(schema, columns, 3)
    except InputError as error:
        assert_well_formed(error, set(schema.names))
    else:
        assert_well_formed_batch(batch, schema)
        rows = [{k: v[i] for k, v in columns.items()} for i in range(batch.rows)]
        assert validate_inputs(schema, rows, 3) == batch


cell_texts = st.sampled_from(
    [
        "5.1",
        " 6 ",
        "100",
        "-3",
        "3.0",
        "2.5",
        "1e3",
        "9007199254740993",
        "",
        " ",
        "abc",
        "nan",
        "Infinity",
        "true",
        "FALSE",
        " 1",
        "0",
        "yes",
        "red",
        " blue",
        "1",
        "purple",
        "hi",
    ]
) | st.text(max_size=4)


@settings(max_examples=examples(300), suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.fixed_dictionaries({name: cell_texts for name in ROW}), min_size=1, max_size=6)
)
def test_frame_and_json_agree_on_any_text(rows) -> None:
    schema = make_schema()
    try:
        expected = validate_inputs(schema, rows, 100)
    except InputError as error:
        assert frame_errors(text_frame(rows), schema) == error.details
    else:
        assert validate_frame(schema, text_frame(rows)) == expected


# --- inference ------------------------------------------------------------------------------


def test_infer_schema_on_iris() -> None:
    frame = load_iris(as_frame=True).frame
    schema = infer_schema(frame)
    assert schema.names == [*frame.columns]
    sepal = schema.features[0]
    assert sepal == Feature(
        "sepal length (cm)", "number", True, minimum=4.3, maximum=7.9, example=5.8
    )
    target = schema.features[-1]
    assert (target.type, target.minimum, target.maximum, target.example) == ("integer", 0, 2, 1)
    assert all(isinstance(f.example, float) for f in schema.features[:4])
    json.dumps(schema.to_dict())
    assert validate_inputs(schema, schema.example_row(), 1).warnings == []


def test_infer_schema_on_a_mixed_frame() -> None:
    n = 120
    frame = pd.DataFrame(
        {
            "age": [20 + i % 50 for i in range(n)],
            "income": [1000.0 + i * 12.345 for i in range(n)],
            "whole": [float(i % 7) for i in range(n)],
            "member": [i % 3 == 0 for i in range(n)],
            "city": pd.Categorical(["Seoul", "Busan", "Incheon"] * (n // 3)),
            "plan": ["basic", "pro", "basic", None] * (n // 4),
            "comment": [f"text {i}" for i in range(n)],
            "score": [None if i % 10 == 0 else i / 3 for i in range(n)],
        }
    )
    features = {f.name: f for f in infer_schema(frame).features}
    assert features["age"] == Feature("age", "integer", True, 20, 69, example=40)
    assert features["income"].type == "number" and features["income"].example == 1735.0
    assert features["whole"].type == "number" and features["whole"].example == 3.0
    assert features["member"] == Feature("member", "boolean", True, example=False)
    assert features["city"] == Feature(
        "city", "category", True, categories=["Busan", "Incheon", "Seoul"], example="Busan"
    )
    assert features["plan"] == Feature(
        "plan", "category", False, categories=["basic", "pro"], example="basic"
    )
    assert features["comment"].type == "string" and features["comment"].required
    assert features["score"].type == "number" and not features["score"].required
    assert features["score"].minimum == pytest.approx(1 / 3)
    schema = infer_schema(frame)
    assert InputSchema.from_dict(json.loads(json.dumps(schema.to_dict()))) == schema
    # the training rows themselves validate, as CSV text and as JSON
    text = frame.astype(object).where(frame.notna(), "").astype(str)
    batch = validate_frame(schema, text)
    assert batch.rows == n and batch.warnings == []
    assert batch.columns["city"][0] == "Seoul" and batch.columns["plan"][3] is None


def test_infer_schema_refuses_duplicate_names() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        infer_schema(pd.DataFrame([[1, 2]], columns=["a", "a"]))


# --- stored and edited schemas --------------------------------------------------------------


def test_to_dict_from_dict_round_trip() -> None:
    schema = make_schema()
    data = schema.to_dict()
    assert set(data) == {"features"}
    assert data["features"][3]["categories"] == ["1", "blue", "green", "red"]
    assert InputSchema.from_dict(json.loads(json.dumps(data))) == schema
    assert schema.names == ["length", "count", "flag", "color", "note", "extra"]


def feature(**changes) -> dict:
    base = {"name": "x", "type": "number", "minimum": 0, "maximum": 1}
    return {**base, **changes}


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ([], "must be an object"),
        ({"features": []}, "non-empty list"),
        ({"features": [feature()], "version": 2}, "Unknown schema key 'version'"),
        ({"features": ["x"]}, "Feature 1 must be an object"),
        ({"features": [feature(name="")]}, "non-empty text 'name'"),
        ({"features": [feature(type="float")]}, "must be one of number, integer"),
        ({"features": [feature(), feature()]}, "'x' appears more than once"),
        ({"features": [feature(minimum=2, maximum=1)]}, "minimum 2 is greater than maximum 1"),
        ({"features": [feature(minimum="low")]}, "minimum must be a finite number"),
        ({"features": [feature(maximum=True)]}, "maximum must be a finite number"),
        (
            {"features": [feature(type="category", minimum=None, maximum=None)]},
            "needs a non-empty 'categories'",
        ),
        (
            {
                "features": [
                    feature(type="category", minimum=None, maximum=None, categories=["a", "a"])
                ]
            },
            "must not repeat",
        ),
        (
            {"features": [feature(type="category", minimum=None, maximum=None, categories=[" "])]},
            "cannot be empty",
        ),
        (
            {
                "features": [
                    feature(type="category", minimum=None, maximum=None, categories=[["a"]])
                ]
            },
            "must be text",
        ),
        (
            {"features": [feature(type="string", minimum=None, maximum=None, categories=["a"])]},
            "only to category",
        ),
        ({"features": [feature(type="string")]}, "applies only to number and integer"),
        ({"features": [feature(required="yes")]}, "'required' must be true or false"),
        ({"features": [feature(description=3)]}, "'description' must be text"),
        ({"features": [feature(minumum=3)]}, "unknown key 'minumum'"),
        ({"features": [feature(type="integer", example=2.5)]}, "example 2.5 is not a valid value"),
        (
            {
                "features": [
                    feature(
                        type="category", minimum=None, maximum=None, categories=["a"], example="b"
                    )
                ]
            },
            "not a valid value",
        ),
    ],
)
def test_from_dict_rejects_bad_edits_with_a_clear_message(data, words) -> None:
    with pytest.raises(ValueError, match=None) as caught:
        InputSchema.from_dict(data)
    assert words in str(caught.value)


def test_from_dict_fills_defaults_and_normalises() -> None:
    schema = InputSchema.from_dict(
        {
            "features": [
                {"name": "n", "type": "integer", "example": "4"},
                {"name": "c", "type": "category", "categories": [1, "b"], "example": 1},
            ]
        }
    )
    assert schema.features[0] == Feature("n", "integer", True, example=4)
    assert schema.features[1].categories == ["1", "b"] and schema.features[1].example == "1"
    assert all(t in FEATURE_TYPES for t in (f.type for f in schema.features))
