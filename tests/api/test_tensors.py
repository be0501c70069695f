"""The Open Inference Protocol v2 codec: JSON and binary tensors, both directions.

Hand-built bodies pin the wire format; tritonclient's own request builder and response
reader show that an existing v2 client, with its default options, understands us.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelport.api.tensors import (
    DATATYPES,
    HEADER_LENGTH,
    InferRequest,
    ProtocolError,
    Tensor,
    check_requested_outputs,
    datatype_of,
    encode_infer_response,
    parse_infer_request,
)
from tests.support.fuzzing import examples

LIMIT = 10_000

# Two rows of three values per datatype, chosen to include each type's extremes.
SAMPLES: dict[str, list] = {
    "BOOL": [True, False, True, True, False, False],
    "UINT8": [0, 1, 2, 127, 200, 255],
    "UINT16": [0, 1, 2, 300, 40000, 65535],
    "UINT32": [0, 1, 2, 70000, 3_000_000_000, 2**32 - 1],
    "UINT64": [0, 1, 2, 2**40, 2**63, 2**64 - 1],
    "INT8": [-128, -1, 0, 1, 100, 127],
    "INT16": [-32768, -1, 0, 1, 1000, 32767],
    "INT32": [-(2**31), -1, 0, 1, 123456, 2**31 - 1],
    "INT64": [-(2**63), -1, 0, 1, 2**40, 2**63 - 1],
    "FP16": [-65504.0, -1.5, 0.0, 0.25, 3, 65504.0],
    "FP32": [-3.0e38, -1.5, 0.0, 0.1, 7, 3.0e38],
    "FP64": [-1.0e308, -1.5, 0.0, 0.1, 7, 1.0e308],
    "BYTES": ["setosa", "", "é ü 한국어", "a,b", '"q"', "x" * 300],
}


def expected_array(datatype: str, values: list, shape: list[int]) -> np.ndarray:
    dtype = DATATYPES[datatype]
    if dtype is None:
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array.reshape(shape)
    return np.array(values, dtype=dtype).reshape(shape)


def json_body(inputs: list[dict], **extra: object) -> bytes:
    return json.dumps({"inputs": inputs, **extra}).encode()


def tensor_bytes(datatype: str, values: list) -> bytes:
    """The binary extension's encoding, written independently of the module under test."""
    if datatype == "BYTES":
        out = b""
        for value in values:
            raw = value.encode()
            out += struct.pack("<I", len(raw)) + raw
        return out
    if datatype == "BOOL":
        return bytes(int(v) for v in values)
    fmt = {
        "UINT8": "B",
        "UINT16": "H",
        "UINT32": "I",
        "UINT64": "Q",
        "INT8": "b",
        "INT16": "h",
        "INT32": "i",
        "INT64": "q",
        "FP16": "e",
        "FP32": "f",
        "FP64": "d",
    }[datatype]
    return struct.pack("<" + fmt * len(values), *values)


def binary_body(inputs: list[tuple[dict, bytes]], **extra: object) -> tuple[bytes, str]:
    header = json_body([meta for meta, _ in inputs], **extra)
    return header + b"".join(raw for _, raw in inputs), str(len(header))


def parse(body: bytes, header: str | None = None, limit: int = LIMIT) -> InferRequest:
    return parse_infer_request(body, header, max_elements=limit)


def assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape
    assert actual.dtype == expected.dtype
    assert actual.tolist() == expected.tolist()


# ---------------------------------------------------------------- requests


@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_json_input_round_trip_for_every_datatype(datatype: str) -> None:
    values = SAMPLES[datatype]
    request = parse(
        json_body([{"name": "x", "shape": [2, 3], "datatype": datatype, "data": values}])
    )
    (tensor,) = request.inputs
    assert (tensor.name, tensor.datatype, tensor.shape) == ("x", datatype, [2, 3])
    expected = expected_array(datatype, values, [2, 3])
    if datatype == "FP32":
        expected = np.array(values, dtype=np.float32).reshape(2, 3)
    assert_same(tensor.data, expected)


@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_binary_input_round_trip_for_every_datatype(datatype: str) -> None:
    values = SAMPLES[datatype]
    raw = tensor_bytes(datatype, values)
    meta = {
        "name": "x",
        "shape": [3, 2],
        "datatype": datatype,
        "parameters": {"binary_data_size": len(raw)},
    }
    body, header = binary_body([(meta, raw)])
    (tensor,) = parse(body, header).inputs
    expected = expected_array(datatype, values, [3, 2])
    if datatype == "FP32":
        expected = np.array(values, dtype=np.float32).reshape(3, 2)
    assert_same(tensor.data, expected)
    assert tensor.parameters == {"binary_data_size": len(raw)}


def test_binary_inputs_take_their_bytes_in_order_and_mix_with_json() -> None:
    first = tensor_bytes("UINT32", [1, 2, 3, 4])
    second = tensor_bytes("BOOL", [True, False, True])
    body, header = binary_body(
        [
            ({"name": "a", "shape": [2, 2], "datatype": "UINT32",
              "parameters": {"binary_data_size": 16}}, first),
            ({"name": "j", "shape": [1], "datatype": "FP64", "data": [2.5]}, b""),
            ({"name": "b", "shape": [3], "datatype": "BOOL",
              "parameters": {"binary_data_size": 3}}, second),
        ]
    )  # fmt: skip
    a, j, b = parse(body, header).inputs
    assert a.data.tolist() == [[1, 2], [3, 4]]
    assert j.data.tolist() == [2.5]
    assert b.data.tolist() == [True, False, True]


def test_nested_and_flat_data_give_the_same_tensor() -> None:
    flat = parse(
        json_body([{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}])
    )
    nested = parse(
        json_body([{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]}])
    )
    assert_same(flat.inputs[0].data, nested.inputs[0].data)
    assert flat.inputs[0].data.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_rectangular_nesting_that_differs_from_the_shape_is_reshaped() -> None:
    # [N] against [N, 1]: both row-major, same element count (MLServer issue 1625).
    request = parse(
        json_body([{"name": "x", "shape": [3, 1], "datatype": "INT64", "data": [1, 2, 3]}])
    )
    assert request.inputs[0].data.tolist() == [[1], [2], [3]]


def test_empty_tensors_parse() -> None:
    request = parse(json_body([{"name": "x", "shape": [0, 4], "datatype": "FP32", "data": []}]))
    assert request.inputs[0].data.shape == (0, 4)
    body, header = binary_body(
        [
            (
                {
                    "name": "s",
                    "shape": [0],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": 0},
                },
                b"",
            )
        ]
    )
    assert parse(body, header).inputs[0].data.shape == (0,)


def test_request_fields_are_kept() -> None:
    request = parse(
        json_body(
            [{"name": "x", "shape": [1], "datatype": "INT8", "data": [1]}],
            id="abc",
            parameters={"binary_data_output": True, "content_type": "np"},
            outputs=[
                {"name": "label"},
                {"name": "probabilities", "parameters": {"binary_data": False}},
            ],
        )
    )
    assert request.id == "abc"
    assert request.parameters == {"binary_data_output": True, "content_type": "np"}
    assert request.outputs == [
        {"name": "label", "parameters": {}},
        {"name": "probabilities", "parameters": {"binary_data": False}},
    ]
    assert (
        parse(json_body([{"name": "x", "shape": [1], "datatype": "INT8", "data": [1]}])).outputs
        is None
    )


def test_header_equal_to_the_body_length_means_json_only() -> None:
    body = json_body([{"name": "x", "shape": [1], "datatype": "FP64", "data": [1]}])
    assert parse(body, str(len(body))).inputs[0].data.tolist() == [1.0]


def test_element_limit_counts_every_input_and_names_the_limit() -> None:
    inputs = [
        {"name": "a", "shape": [3], "datatype": "FP32", "data": [1, 2, 3]},
        {"name": "b", "shape": [3], "datatype": "FP32", "data": [1, 2, 3]},
    ]
    assert len(parse(json_body(inputs), limit=6).inputs) == 2
    with pytest.raises(ProtocolError, match="more than 5 tensor elements"):
        parse(json_body(inputs), limit=5)
    # A huge declared shape is refused before its (missing) data is looked at.
    huge = {
        "name": "a",
        "shape": [2**63],
        "datatype": "FP64",
        "parameters": {"binary_data_size": 8},
    }
    body, header = binary_body([(huge, b"\0" * 8)])
    with pytest.raises(ProtocolError, match="tensor elements"):
        parse(body, header)


def _input(**fields: object) -> dict:
    base: dict = {"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


MALFORMED_JSON: list[tuple[str, bytes]] = [
    ("empty body", b""),
    ("not JSON", b"{inputs"),
    ("not UTF-8", b'{"inputs": "\xff"}'),
    ("array root", b"[]"),
    ("NaN literal", b'{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[NaN]}]}'),
    ("Infinity", b'{"inputs":[{"name":"x","shape":[1],"datatype":"FP64","data":[-Infinity]}]}'),
    ("overflowing float", b'{"inputs":[{"name":"x","shape":[1],"datatype":"FP64","data":[1e400]}]}'),
    ("huge integer as FP64", b'{"inputs":[{"name":"x","shape":[1],"datatype":"FP64","data":[' + b"9" * 400 + b"]}]}"),
    ("integer past the digit limit", b'{"inputs":[{"name":"x","shape":[1],"datatype":"INT64","data":[' + b"9" * 5000 + b"]}]}"),
    ("duplicate key", b'{"inputs":[{"name":"x","name":"y","shape":[1],"datatype":"FP32","data":[1]}]}'),
    ("deep nesting", b'{"inputs":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    ("deep parameters", b'{"parameters":{"a":' + b"[" * 40 + b"]" * 40 + b'},"inputs":[]}'),
    ("inf in parameters", b'{"parameters":{"a":1e999},"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}'),
    ("no inputs", json_body([])),
    ("inputs missing", b"{}"),
    ("inputs not a list", b'{"inputs": {"name": "x"}}'),
    ("input not an object", json_body([1])),
    ("no name", json_body([_input(name=...)])),
    ("empty name", json_body([_input(name="")])),
    ("name not a string", json_body([_input(name=3)])),
    ("duplicate input", json_body([_input(), _input()])),
    ("unknown datatype", json_body([_input(datatype="BF16")])),
    ("datatype not a string", json_body([_input(datatype=["FP32"])])),
    ("no datatype", json_body([_input(datatype=...)])),
    ("no shape", json_body([_input(shape=...)])),
    ("shape not a list", json_body([_input(shape=2)])),
    ("negative dim", json_body([_input(shape=[-1])])),
    ("float dim", json_body([_input(shape=[2.0])])),
    ("bool dim", json_body([_input(shape=[True, 2])])),
    ("dim past uint64", json_body([_input(shape=[2**64])])),
    ("too many dims", json_body([_input(shape=[1] * 33, data=[1])])),
    ("empty but vast", json_body([_input(shape=[0, 2**63], data=[])])),
    ("empty but vaster", json_body([_input(shape=[2**40, 2**40, 0], data=[])])),
    ("no data", json_body([_input(data=...)])),
    ("data not a list", json_body([_input(data=1)])),
    ("too few elements", json_body([_input(data=[1])])),
    ("too many elements", json_body([_input(data=[1, 2, 3])])),
    ("ragged", json_body([_input(shape=[3], data=[[1, 2], [3]])])),
    ("mixed depth", json_body([_input(data=[1, [2]])])),
    ("bool as number", json_body([_input(data=[True, 1.0])])),
    ("string as number", json_body([_input(data=["1", 2])])),
    ("null as number", json_body([_input(data=[None, 2])])),
    ("object as element", json_body([_input(data=[{}, 2])])),
    ("number as bool", json_body([_input(datatype="BOOL", data=[1, 0])])),
    ("float as int", json_body([_input(datatype="INT32", data=[1.0, 2])])),
    ("bool as int", json_body([_input(datatype="INT32", data=[True, 2])])),
    ("UINT8 overflow", json_body([_input(datatype="UINT8", data=[0, 256])])),
    ("negative unsigned", json_body([_input(datatype="UINT64", data=[-1, 2])])),
    ("INT64 overflow", json_body([_input(datatype="INT64", data=[2**63, 2])])),
    ("FP32 overflow", json_body([_input(data=[1e39, 2])])),
    ("FP16 overflow", json_body([_input(datatype="FP16", data=[70000, 2])])),
    ("number as BYTES", json_body([_input(datatype="BYTES", data=[1, "a"])])),
    ("id not a string", json_body([_input()], id=7)),
    ("parameters not an object", json_body([_input()], parameters=[1])),
    ("input parameters not an object", json_body([_input(parameters="x")])),
    ("binary_data_output not bool", json_body([_input()], parameters={"binary_data_output": 1})),
    ("outputs not a list", json_body([_input()], outputs={"name": "a"})),
    ("output without name", json_body([_input()], outputs=[{}])),
    ("output not an object", json_body([_input()], outputs=["a"])),
    ("duplicate output", json_body([_input()], outputs=[{"name": "a"}, {"name": "a"}])),
    ("binary_data not bool", json_body([_input()], outputs=[{"name": "a", "parameters": {"binary_data": "yes"}}])),
    ("classification extension", json_body([_input()], outputs=[{"name": "a", "parameters": {"classification": 2}}])),
    ("shared memory input", json_body([_input(data=..., parameters={"shared_memory_region": "r"})])),
    ("shared memory output", json_body([_input()], outputs=[{"name": "a", "parameters": {"shared_memory_region": "r"}}])),
    ("binary size without header", json_body([_input(data=..., parameters={"binary_data_size": 8})])),
]  # fmt: skip


@pytest.mark.parametrize(("case", "body"), MALFORMED_JSON, ids=[c for c, _ in MALFORMED_JSON])
def test_malformed_json_requests_are_protocol_errors(case: str, body: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse(body)
    assert str(caught.value)


def _fp32(size: int, **parameters: object) -> dict:
    return {
        "name": "x",
        "shape": [2],
        "datatype": "FP32",
        "parameters": {"binary_data_size": size, **parameters},
    }


def _with_header(meta: list[dict], tail: bytes, header: str | None = None) -> tuple[bytes, str]:
    head = json_body(meta)
    return head + tail, header if header is not None else str(len(head))


EIGHT = struct.pack("<2f", 1.0, 2.0)
MALFORMED_BINARY: list[tuple[str, tuple[bytes, str]]] = [
    ("header not a number", _with_header([_fp32(8)], EIGHT, "abc")),
    ("header negative", _with_header([_fp32(8)], EIGHT, "-5")),
    ("header zero", _with_header([_fp32(8)], EIGHT, "0")),
    ("header unicode digits", _with_header([_fp32(8)], EIGHT, "١٢")),
    ("header past the body", _with_header([_fp32(8)], EIGHT, "100000")),
    ("header cuts the JSON", _with_header([_fp32(8)], EIGHT, "10")),
    ("size short of the element bytes", _with_header([_fp32(4)], EIGHT[:4])),
    ("size past the body", _with_header([_fp32(16)], EIGHT)),
    ("bytes left over", _with_header([_fp32(8)], EIGHT + b"\0")),
    ("bytes but no binary input", _with_header([_input()], EIGHT)),
    ("size negative", _with_header([_fp32(-8)], EIGHT)),
    ("size not an integer", _with_header([_fp32(8.0)], EIGHT)),  # type: ignore[arg-type]
    ("size a bool", _with_header([_fp32(True)], b"\0")),
    ("data and size", _with_header([{**_fp32(8), "data": [1, 2]}], EIGHT)),
    ("NaN in binary", _with_header([_fp32(8)], struct.pack("<2f", 1.0, float("nan")))),
    ("infinity in binary", _with_header([_fp32(8)], struct.pack("<2f", float("inf"), 1.0))),
    ("BOOL byte 2", _with_header([{**_fp32(2), "datatype": "BOOL"}], b"\x01\x02")),
    ("BYTES length past the end", _with_header([{**_fp32(9), "datatype": "BYTES"}], struct.pack("<I", 9) + b"abcde")),
    ("BYTES cut inside a length", _with_header([{**_fp32(6), "datatype": "BYTES"}], struct.pack("<I", 0) + b"\0\0")),
    ("BYTES too few elements", _with_header([{**_fp32(5), "datatype": "BYTES"}], struct.pack("<I", 1) + b"a")),
    ("BYTES extra bytes", _with_header([{**_fp32(11), "datatype": "BYTES"}], (struct.pack("<I", 1) + b"a") * 2 + b"z")),
    ("BYTES not UTF-8", _with_header([{**_fp32(10), "datatype": "BYTES"}], (struct.pack("<I", 1) + b"\xff") * 2)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "request_"), MALFORMED_BINARY, ids=[c for c, _ in MALFORMED_BINARY]
)
def test_malformed_binary_requests_are_protocol_errors(
    case: str, request_: tuple[bytes, str]
) -> None:
    body, header = request_
    with pytest.raises(ProtocolError) as caught:
        parse(body, header)
    assert str(caught.value)


def test_messages_say_what_is_wrong() -> None:
    with pytest.raises(ProtocolError, match="BF16"):
        parse(json_body([_input(datatype="BF16")]))
    with pytest.raises(ProtocolError, match=r"has 1 elements but shape \[2\] needs 2"):
        parse(json_body([_input(data=[1])]))
    body, header = _with_header([_fp32(8)], EIGHT + b"\0")
    with pytest.raises(ProtocolError, match="1 bytes after the JSON part"):
        parse(body, header)


# Any JSON value, to throw at the parser in and around the request structure.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
    | st.sampled_from(list(DATATYPES)),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["name", "shape", "datatype", "data", "parameters", "binary_data_size"])
            | st.text(max_size=3),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)

input_dicts = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=3) | json_values,
        "shape": st.lists(st.integers(-1, 4) | st.integers(0, 2**64), max_size=3) | json_values,
        "datatype": st.sampled_from(list(DATATYPES)) | json_values,
        "data": st.lists(
            st.integers(-300, 300)
            | st.floats(allow_nan=False)
            | st.booleans()
            | st.text(max_size=2),
            max_size=8,
        )
        | json_values,
        "parameters": st.fixed_dictionaries(
            {}, optional={"binary_data_size": st.integers(-1, 20) | json_values}
        )
        | json_values,
    },
)

requests = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=3) | json_values,
        "inputs": st.lists(input_dicts, max_size=3) | json_values,
        "outputs": st.lists(
            st.fixed_dictionaries(
                {"name": st.text(max_size=2)}, optional={"parameters": json_values}
            ),
            max_size=2,
        )
        | json_values,
        "parameters": st.dictionaries(st.text(max_size=3), json_values, max_size=3) | json_values,
    },
)


def mostly(good: st.SearchStrategy, bad: st.SearchStrategy) -> st.SearchStrategy:
    """Usually ``good``, sometimes ``bad``: fuzz that still reaches the deep paths."""
    return st.one_of(good, good, good, bad)


ELEMENTS = {
    "BOOL": st.booleans(),
    "BYTES": st.text(max_size=3),
    "FP16": st.floats(-7e4, 7e4),
    "FP32": st.floats(allow_nan=False, allow_infinity=False),
    "FP64": st.floats(allow_nan=False, allow_infinity=False),
    **{
        name: st.integers(-(2**64), 2**64)
        for name, dtype in DATATYPES.items()
        if dtype is not None and dtype.kind in "iu"
    },
}
any_element = st.one_of(*ELEMENTS.values())


@st.composite
def near_valid_requests(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """A request built from real tensors, JSON or binary, then nudged a little."""
    metas, tails = [], []
    for index in range(draw(st.integers(1, 3))):
        datatype = draw(st.sampled_from(list(DATATYPES)))
        shape = draw(st.lists(st.integers(0, 3), max_size=3))
        count = draw(mostly(st.just(int(np.prod(shape))), st.integers(0, 10)))
        values = draw(
            st.lists(mostly(ELEMENTS[datatype], any_element), min_size=count, max_size=count)
        )
        meta: dict = {
            "name": draw(mostly(st.just(f"in{index}"), json_values)),
            "shape": shape,
            "datatype": datatype,
        }
        if draw(st.booleans()):
            try:
                raw = tensor_bytes(datatype, values)
            except (struct.error, TypeError, ValueError, AttributeError, OverflowError):
                raw = draw(st.binary(max_size=16))
            if draw(st.booleans()):
                raw = draw(st.binary(max_size=16)) if draw(st.booleans()) else raw[:-1]
            meta["parameters"] = {"binary_data_size": draw(mostly(st.just(len(raw)), json_values))}
            tails.append(raw)
        else:
            nested = (
                np.array(values, dtype=object).reshape(shape).tolist()
                if len(values) == int(np.prod(shape)) and shape
                else values
            )
            meta["data"] = draw(st.sampled_from([values, nested]))
        metas.append(meta)
    document: dict = {"inputs": metas}
    if draw(st.booleans()):
        document["outputs"] = [
            {
                "name": "label",
                "parameters": {"binary_data": draw(mostly(st.booleans(), json_values))},
            }
        ]
    head = json.dumps(document).encode()
    header = draw(
        mostly(st.just(str(len(head))), st.none() | st.integers(0, len(head) + 20).map(str))
    )
    return head + b"".join(tails), header


def _parses_or_refuses(body: bytes, header: str | None) -> None:
    try:
        request = parse(body, header, limit=64)
    except ProtocolError as exc:
        assert str(exc)
        return
    for tensor in request.inputs:
        assert list(tensor.data.shape) == tensor.shape
        if DATATYPES[tensor.datatype] is not None:
            assert tensor.data.dtype == DATATYPES[tensor.datatype]


@settings(max_examples=examples(300), suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.binary(max_size=200),
    header=st.none() | st.text(max_size=4) | st.integers(0, 250).map(str),
)
def test_random_bytes_never_raise_anything_but_protocol_error(
    body: bytes, header: str | None
) -> None:
    _parses_or_refuses(body, header)


@settings(max_examples=examples(300), suppress_health_check=[HealthCheck.too_slow])
@given(document=requests, tail=st.binary(max_size=24), use_header=st.booleans())
def test_random_requests_never_raise_anything_but_protocol_error(
    document: dict, tail: bytes, use_header: bool
) -> None:
    head = json.dumps(document).encode()
    if use_header:
        _parses_or_refuses(head + tail, str(len(head)))
    else:
        _parses_or_refuses(head, None)


# ---------------------------------------------------------------- responses


def _request(**fields: object) -> InferRequest:
    base: dict = {"id": None, "parameters": {}, "inputs": [], "outputs": None}
    base.update(fields)
    return InferRequest(**base)


def _outputs() -> list[Tensor]:
    return [
        Tensor.from_numpy("label", np.array(["setosa", "virginica"], dtype=object)),
        Tensor.from_numpy("probabilities", np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float64)),
    ]


def _split(body: bytes, headers: dict[str, str]) -> tuple[dict, bytes]:
    if HEADER_LENGTH not in headers:
        return json.loads(body), b""
    length = int(headers[HEADER_LENGTH])
    return json.loads(body[:length]), body[length:]


def test_json_response_is_flat_row_major_with_the_model_and_id() -> None:
    body, headers = encode_infer_response(
        model_name="iris",
        model_version="3",
        request_id="r-1",
        outputs=_outputs(),
        request=_request(),
    )
    assert headers == {"Content-Type": "application/json"}
    assert json.loads(body) == {
        "model_name": "iris",
        "model_version": "3",
        "id": "r-1",
        "outputs": [
            {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["setosa", "virginica"]},
            {"name": "probabilities", "datatype": "FP64", "shape": [2, 2], "data": [0.9, 0.1, 0.2, 0.8]},
        ],
    }  # fmt: skip


def test_no_version_and_no_id_are_omitted() -> None:
    body, _ = encode_infer_response(
        model_name="m", model_version=None, request_id=None, outputs=_outputs(), request=_request()
    )
    assert set(json.loads(body)) == {"model_name", "outputs"}


def test_binary_data_output_sends_every_output_as_bytes() -> None:
    body, headers = encode_infer_response(
        model_name="iris",
        model_version="1",
        request_id=None,
        outputs=_outputs(),
        request=_request(parameters={"binary_data_output": True}),
    )
    assert headers["Content-Type"] == "application/octet-stream"
    document, tail = _split(body, headers)
    label, probabilities = document["outputs"]
    assert "data" not in label and "data" not in probabilities
    assert label["parameters"] == {"binary_data_size": 4 + 6 + 4 + 9}
    assert probabilities["parameters"] == {"binary_data_size": 32}
    assert tail == (
        struct.pack("<I", 6) + b"setosa" + struct.pack("<I", 9) + b"virginica"
        + struct.pack("<4d", 0.9, 0.1, 0.2, 0.8)
    )  # fmt: skip


def test_requested_outputs_filter_order_and_override_binary_data_output() -> None:
    request = _request(
        parameters={"binary_data_output": True},
        outputs=[
            {"name": "probabilities", "parameters": {}},
            {"name": "label", "parameters": {"binary_data": False}},
        ],
    )
    body, headers = encode_infer_response(
        model_name="iris", model_version="1", request_id=None, outputs=_outputs(), request=request
    )
    document, tail = _split(body, headers)
    probabilities, label = document["outputs"]
    assert probabilities["parameters"] == {"binary_data_size": 32}
    assert label["data"] == ["setosa", "virginica"]
    assert np.frombuffer(tail, dtype="<f8").tolist() == [0.9, 0.1, 0.2, 0.8]

    only_label = _request(outputs=[{"name": "label", "parameters": {"binary_data": True}}])
    body, headers = encode_infer_response(
        model_name="iris",
        model_version="1",
        request_id=None,
        outputs=_outputs(),
        request=only_label,
    )
    document, tail = _split(body, headers)
    assert [o["name"] for o in document["outputs"]] == ["label"]
    assert tail.endswith(b"virginica")


def test_unknown_requested_output_is_a_protocol_error() -> None:
    request = _request(outputs=[{"name": "predict", "parameters": {}}])
    with pytest.raises(ProtocolError, match="unknown output 'predict'.*label, probabilities"):
        encode_infer_response(
            model_name="iris",
            model_version="1",
            request_id=None,
            outputs=_outputs(),
            request=request,
        )
    with pytest.raises(ProtocolError, match="predict"):
        check_requested_outputs(request, ["label", "probabilities"])
    check_requested_outputs(_request(), ["label"])


@pytest.mark.parametrize("datatype", list(SAMPLES))
@pytest.mark.parametrize("binary", [False, True])
def test_every_datatype_survives_encoding(datatype: str, binary: bool) -> None:
    values = SAMPLES[datatype]
    array = expected_array(datatype, values, [3, 2])
    body, headers = encode_infer_response(
        model_name="m",
        model_version=None,
        request_id=None,
        outputs=[Tensor("y", datatype, [3, 2], array)],
        request=_request(parameters={"binary_data_output": binary}),
    )
    document, tail = _split(body, headers)
    (output,) = document["outputs"]
    if binary:
        assert tail == tensor_bytes(datatype, np.asarray(array).ravel().tolist())
    else:
        assert output["data"] == array.ravel().tolist()


def test_non_finite_or_mis_shaped_outputs_are_server_bugs() -> None:
    for tensor in (
        Tensor("y", "FP64", [1], np.array([np.nan])),
        Tensor("y", "FP32", [1], np.array([1e300])),
        Tensor("y", "FP64", [3], np.array([1.0, 2.0])),
        Tensor("y", "BF16", [1], np.array([1.0])),
    ):
        with pytest.raises(ValueError):
            encode_infer_response(
                model_name="m",
                model_version=None,
                request_id=None,
                outputs=[tensor],
                request=_request(),
            )


def test_datatype_of_names_numpy_dtypes() -> None:
    for name, dtype in DATATYPES.items():
        if dtype is not None:
            assert datatype_of(dtype) == name
    assert datatype_of(np.dtype("U5")) == "BYTES"
    assert datatype_of(np.dtype(object)) == "BYTES"
    with pytest.raises(ValueError):
        datatype_of(np.dtype("complex128"))


# ---------------------------------------------------------------- tritonclient


def _triton_array(datatype: str, values: list, shape: list[int]) -> np.ndarray:
    if datatype == "BYTES":
        return expected_array(datatype, values, shape)
    return np.array(values, dtype=DATATYPES[datatype].newbyteorder("=")).reshape(shape)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_requests_parse(binary: bool) -> None:
    httpclient = pytest.importorskip("tritonclient.http")
    inputs, arrays = [], {}
    for datatype, values in SAMPLES.items():
        if datatype == "FP16" and not binary:
            values = [v for v in values if abs(v) < 1000] + [1.5, 2.5]
        array = _triton_array(datatype, values, [2, 3])
        infer_input = httpclient.InferInput(f"in_{datatype}", [2, 3], datatype)
        infer_input.set_data_from_numpy(array, binary_data=binary)
        inputs.append(infer_input)
        arrays[f"in_{datatype}"] = array
    body, json_size = httpclient.InferenceServerClient.generate_request_body(
        inputs,
        outputs=[httpclient.InferRequestedOutput("label")],
        request_id="req-7",
        parameters={"content_type": "np"},
    )
    header = None if json_size is None else str(json_size)
    assert (header is None) == (not binary)
    request = parse(body, header, limit=100)
    assert request.id == "req-7"
    assert request.parameters == {"content_type": "np"}
    assert request.outputs == [{"name": "label", "parameters": {"binary_data": True}}]
    for tensor in request.inputs:
        expected = arrays[tensor.name]
        assert tensor.shape == [2, 3]
        if tensor.datatype == "BYTES":
            assert tensor.data.tolist() == expected.tolist()
        else:
            assert_same(tensor.data, expected.astype(DATATYPES[tensor.datatype]))


def test_tritonclient_default_request_asks_for_binary_outputs() -> None:
    httpclient = pytest.importorskip("tritonclient.http")
    infer_input = httpclient.InferInput("input", [2, 4], "FP32")
    infer_input.set_data_from_numpy(np.arange(8, dtype=np.float32).reshape(2, 4))
    body, json_size = httpclient.InferenceServerClient.generate_request_body([infer_input])
    request = parse(body, str(json_size))
    assert request.parameters == {"binary_data_output": True}
    assert request.outputs is None
    assert request.inputs[0].data.tolist() == np.arange(8, dtype=np.float32).reshape(2, 4).tolist()


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_reads_our_responses(binary: bool) -> None:
    httpclient = pytest.importorskip("tritonclient.http")
    outputs, arrays = [], {}
    for datatype, values in SAMPLES.items():
        array = expected_array(datatype, values, [3, 2])
        outputs.append(Tensor(f"out_{datatype}", datatype, [3, 2], array))
        arrays[f"out_{datatype}"] = array
    body, headers = encode_infer_response(
        model_name="m",
        model_version="2",
        request_id="req-9",
        outputs=outputs,
        request=_request(parameters={"binary_data_output": binary}),
    )
    result = httpclient.InferResult.from_response_body(body, False, headers.get(HEADER_LENGTH))
    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == (
        "m",
        "2",
        "req-9",
    )
    for name, expected in arrays.items():
        actual = result.as_numpy(name)
        assert actual.shape == expected.shape
        if name == "out_BYTES":
            decoded = [v.decode() if isinstance(v, bytes) else v for v in actual.ravel().tolist()]
            assert decoded == expected.ravel().tolist()
        else:
            assert actual.tolist() == expected.tolist()


def test_tritonclient_round_trip_with_default_options() -> None:
    """A default tritonclient request (binary in, binary out) through parse and encode."""
    httpclient = pytest.importorskip("tritonclient.http")
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    infer_input = httpclient.InferInput("input", list(rows.shape), "FP32")
    infer_input.set_data_from_numpy(rows)
    requested = [
        httpclient.InferRequestedOutput("label"),
        httpclient.InferRequestedOutput("probabilities"),
    ]
    body, json_size = httpclient.InferenceServerClient.generate_request_body(
        [infer_input], outputs=requested
    )
    request = parse(body, str(json_size))
    assert request.inputs[0].data.tolist() == rows.tolist()
    labels = np.array(["setosa", "virginica"], dtype=object)
    probabilities = np.array([[0.97, 0.03], [0.01, 0.99]], dtype=np.float32)
    body, headers = encode_infer_response(
        model_name="iris",
        model_version="1",
        request_id=request.id,
        outputs=[
            Tensor.from_numpy("label", labels),
            Tensor.from_numpy("probabilities", probabilities),
        ],
        request=request,
    )
    result = httpclient.InferenceServerClient.parse_response_body(
        body, header_length=int(headers[HEADER_LENGTH])
    )
    assert result.as_numpy("label").tolist() == [b"setosa", b"virginica"]
    assert result.as_numpy("probabilities").tolist() == probabilities.tolist()


@settings(max_examples=examples(300), suppress_health_check=[HealthCheck.too_slow])
@given(request_=near_valid_requests())
def test_near_valid_requests_never_raise_anything_but_protocol_error(
    request_: tuple[bytes, str | None],
) -> None:
    _parses_or_refuses(*request_)
