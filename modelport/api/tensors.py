"""Open Inference Protocol v2 (REST) tensors: request parsing and response encoding.

Pure functions over bytes, no Flask and no database, so that they can be tested alone and
fuzzed. The contract is ``docs/inference-protocol.md`` with the binary tensor data
extension as Triton defines it: tensor bytes follow the JSON object in the body,
little-endian and row-major, BOOL one byte, BYTES a 4-byte little-endian length per element;
the ``Inference-Header-Content-Length`` header gives the length of the JSON part.

Every malformed request raises :class:`ProtocolError`, which the route answers with
400 ``{"error": message}``; nothing else escapes :func:`parse_infer_request`.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelport.api.parser import JsonBodyError, parse_json_body

# Explicit little-endian dtypes: the wire format is little-endian whatever the host is.
DATATYPES: dict[str, np.dtype | None] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": None,
}

HEADER_LENGTH = "Inference-Header-Content-Length"
JSON_CONTENT_TYPE = "application/json"
# Triton answers with this type whenever tensor bytes follow the JSON; clients read the
# header above, not the content type.
BINARY_CONTENT_TYPE = "application/octet-stream"

# numpy 1.x allows 32 dimensions; no tabular model needs more than 2.
MAX_RANK = 32
# Nesting allowed in the parts of a request other than tensor data (parameters, mostly).
MAX_DEPTH = 32
_UINT64_LIMIT = 2**64
_INTEGER_TYPES = {
    name for name, dtype in DATATYPES.items() if dtype is not None and dtype.kind in "iu"
}
_FLOAT_TYPES = {"FP16", "FP32", "FP64"}
_BY_KIND = {(d.kind, d.itemsize): name for name, d in DATATYPES.items() if d is not None}
_LENGTH = struct.Struct("<I")


class ProtocolError(Exception):
    """A request the protocol does not allow: 400 with {"error": str(message)}."""


@dataclass
class Tensor:
    """One named tensor; ``data`` has ``shape`` (object dtype of str for BYTES)."""

    name: str
    datatype: str
    shape: list[int]
    data: np.ndarray
    parameters: dict = field(default_factory=dict)

    @classmethod
    def from_numpy(cls, name: str, array: np.ndarray, parameters: dict | None = None) -> Tensor:
        """Wrap an array, naming its datatype from its numpy dtype (text becomes BYTES)."""
        array = np.asarray(array)
        return cls(name, datatype_of(array.dtype), list(array.shape), array, parameters or {})


@dataclass
class InferRequest:
    """A parsed inference request; ``outputs`` are the requested outputs, None for all."""

    id: str | None
    parameters: dict
    inputs: list[Tensor]
    outputs: list[dict] | None


def datatype_of(dtype: np.dtype) -> str:
    """The protocol datatype that carries values of a numpy dtype."""
    dtype = np.dtype(dtype)
    if dtype.kind in "OUS":
        return "BYTES"
    name = _BY_KIND.get((dtype.kind, dtype.itemsize))
    if name is None:
        raise ValueError(f"no protocol datatype for numpy dtype {dtype}")
    return name


# ---------------------------------------------------------------- request parsing


def _load_json(part: bytes) -> Any:
    # The same strict JSON as the rest of the API (finite numbers, unique keys, bounded
    # digits and depth), in the protocol's error.
    try:
        return parse_json_body(part)
    except JsonBodyError as exc:
        raise ProtocolError(str(exc)) from None


def _check_plain(value: Any, where: str, depth: int = 0) -> None:
    """Refuse deep nesting and non-finite floats (1e400 parses as inf) outside tensor data."""
    if depth > MAX_DEPTH:
        raise ProtocolError(f"{where} is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, float) and not math.isfinite(value):
        raise ProtocolError(f"{where} holds a number too large to represent")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_plain(item, where, depth + 1)


def _parameters(holder: dict, where: str) -> dict:
    parameters = holder.get("parameters", {})
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise ProtocolError(f"{where}.parameters must be a JSON object")
    _check_plain(parameters, f"{where}.parameters")
    return parameters


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    text = header_length.strip()
    if not text.isascii() or not text.isdigit():
        raise ProtocolError(
            f"{HEADER_LENGTH} must be a non-negative integer, not {header_length!r}"
        )
    length = int(text)
    if length == 0 or length > len(body):
        raise ProtocolError(
            f"{HEADER_LENGTH} is {length} but the body has {len(body)} bytes; it must give "
            "the length of the JSON part that starts the body"
        )
    return body[:length], body[length:]


def _shape(raw: Any, where: str) -> list[int]:
    if not isinstance(raw, list):
        raise ProtocolError(f"{where}.shape must be a list of non-negative integers")
    if len(raw) > MAX_RANK:
        raise ProtocolError(f"{where}.shape has {len(raw)} dimensions; the limit is {MAX_RANK}")
    for dim in raw:
        if type(dim) is not int or not 0 <= dim < _UINT64_LIMIT:
            raise ProtocolError(
                f"{where}.shape must be a list of non-negative integers that fit in 64 bits, "
                f"not {json.dumps(raw)}"
            )
    return list(raw)


def _element_count(shape: list[int]) -> int:
    return math.prod(shape)


def _flatten(data: Any, where: str) -> list:
    """Flatten row-major; nested lists must be rectangular with leaves at one depth."""
    if not isinstance(data, list):
        raise ProtocolError(f"{where}.data must be a list")
    level: list = [data]
    for _depth in range(MAX_RANK):
        width = len(level[0])
        if any(len(item) != width for item in level):
            raise ProtocolError(f"{where}.data is ragged: nested lists differ in length")
        children = [child for item in level for child in item]
        if not children:
            return children
        kinds = {type(child) is list for child in children}
        if kinds == {False}:
            return children
        if kinds == {True, False}:
            raise ProtocolError(f"{where}.data mixes lists and values at the same depth")
        level = children
    raise ProtocolError(f"{where}.data is nested more than {MAX_RANK} levels deep")


def _json_values(flat: list, datatype: str, where: str) -> np.ndarray:
    """Turn flattened JSON values into a 1-D array, refusing values of the wrong kind."""
    kinds = set(map(type, flat))
    if datatype == "BYTES":
        if not kinds <= {str}:
            raise ProtocolError(f"{where}.data must hold strings for datatype BYTES")
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
        return array
    dtype = DATATYPES[datatype]
    if datatype == "BOOL":
        if not kinds <= {bool}:
            raise ProtocolError(f"{where}.data must hold true or false for datatype BOOL")
        return np.array(flat, dtype=dtype)
    if datatype in _INTEGER_TYPES:
        if not kinds <= {int}:
            raise ProtocolError(f"{where}.data must hold integers for datatype {datatype}")
        info = np.iinfo(dtype)
        if flat and (min(flat) < info.min or max(flat) > info.max):
            raise ProtocolError(
                f"{where}.data has a value outside {datatype}'s range {info.min}..{info.max}"
            )
        return np.array(flat, dtype=dtype)
    # Floating point: integers are numbers too, booleans are not.
    if not kinds <= {int, float}:
        raise ProtocolError(f"{where}.data must hold numbers for datatype {datatype}")
    too_large = f"{where}.data has a number too large for datatype {datatype}"
    try:
        with np.errstate(all="ignore"):
            array = np.array(flat, dtype=np.float64).astype(dtype)
    except OverflowError:
        # An integer beyond float64, such as 10**400.
        raise ProtocolError(too_large) from None
    if not np.isfinite(array).all():
        raise ProtocolError(too_large)
    return array


def _binary_values(chunk: bytes, datatype: str, count: int, where: str) -> np.ndarray:
    """Decode a tensor's bytes into a 1-D array of ``count`` elements."""
    if datatype == "BYTES":
        return _binary_strings(chunk, count, where)
    dtype = DATATYPES[datatype]
    assert dtype is not None
    if len(chunk) != count * dtype.itemsize:
        raise ProtocolError(
            f"{where} declares {len(chunk)} bytes of binary data, but {count} {datatype} "
            f"elements take {count * dtype.itemsize}"
        )
    if datatype == "BOOL":
        raw = np.frombuffer(chunk, dtype=np.uint8)
        if (raw > 1).any():
            raise ProtocolError(f"{where} has a BOOL byte other than 0 or 1")
        return raw.astype(bool)
    array = np.frombuffer(chunk, dtype=dtype).copy()
    if datatype in _FLOAT_TYPES and not np.isfinite(array).all():
        raise ProtocolError(f"{where} holds NaN or infinity; send finite numbers")
    return array


def _binary_strings(chunk: bytes, count: int, where: str) -> np.ndarray:
    values = np.empty(count, dtype=object)
    offset = 0
    for index in range(count):
        if offset + 4 > len(chunk):
            raise ProtocolError(f"{where}: the binary BYTES data ends before element {index}")
        (length,) = _LENGTH.unpack_from(chunk, offset)
        offset += 4
        if offset + length > len(chunk):
            raise ProtocolError(f"{where}: BYTES element {index} runs past the binary data")
        try:
            values[index] = chunk[offset : offset + length].decode("utf-8")
        except UnicodeDecodeError:
            # Every text feature Modelport serves is a string; opaque bytes have no use.
            raise ProtocolError(f"{where}: BYTES element {index} is not valid UTF-8") from None
        offset += length
    if offset != len(chunk):
        raise ProtocolError(
            f"{where}: the binary BYTES data has {len(chunk) - offset} bytes after "
            f"its {count} elements"
        )
    return values


def _binary_size(parameters: dict, where: str) -> int | None:
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if type(size) is not int or size < 0:
        raise ProtocolError(f"{where}.parameters.binary_data_size must be a non-negative integer")
    return size


def _requested_outputs(raw: Any) -> list[dict] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise ProtocolError("outputs must be a list of objects with a name")
    requested: list[dict] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        where = f"outputs[{index}]"
        if not isinstance(item, dict):
            raise ProtocolError(f"{where} must be an object with a name")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise ProtocolError(f"{where}.name must be a non-empty string")
        if name in seen:
            raise ProtocolError(f"output {name!r} is requested twice")
        seen.add(name)
        parameters = _parameters(item, where)
        if "binary_data" in parameters and type(parameters["binary_data"]) is not bool:
            raise ProtocolError(f"{where}.parameters.binary_data must be true or false")
        if "classification" in parameters:
            raise ProtocolError("the classification extension is not supported")
        if "shared_memory_region" in parameters:
            raise ProtocolError("the shared-memory extension is not supported")
        requested.append({"name": name, "parameters": parameters})
    # An empty list asks for nothing in particular, as an omitted one does.
    return requested or None


def parse_infer_request(
    body: bytes, header_length: str | None, *, max_elements: int
) -> InferRequest:
    """Parse an inference request body (JSON, then binary tensor data) into tensors."""
    json_part, binary = _split_body(body, header_length)
    document = _load_json(json_part)
    if not isinstance(document, dict):
        raise ProtocolError("the inference request must be a JSON object")

    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError("id must be a string")
    parameters = _parameters(document, "request")
    if "binary_data_output" in parameters and type(parameters["binary_data_output"]) is not bool:
        raise ProtocolError("parameters.binary_data_output must be true or false")
    outputs = _requested_outputs(document.get("outputs"))

    raw_inputs = document.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise ProtocolError("inputs must be a non-empty list of tensors")

    inputs: list[Tensor] = []
    names: set[str] = set()
    offset = 0
    total = 0
    for index, raw in enumerate(raw_inputs):
        where = f"inputs[{index}]"
        if not isinstance(raw, dict):
            raise ProtocolError(f"{where} must be an object with name, shape, datatype and data")
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise ProtocolError(f"{where}.name must be a non-empty string")
        if name in names:
            raise ProtocolError(f"input {name!r} appears twice")
        names.add(name)
        where = f"input {name!r}"
        datatype = raw.get("datatype")
        if not isinstance(datatype, str) or datatype not in DATATYPES:
            raise ProtocolError(
                f"{where} has datatype {json.dumps(datatype)}; use one of {', '.join(DATATYPES)}"
            )
        if "shape" not in raw:
            raise ProtocolError(f"{where} has no shape")
        shape = _shape(raw["shape"], where)
        count = _element_count(shape)
        total += count
        # Checked before any data is decoded, so a huge declared shape costs nothing.
        if total > max_elements:
            raise ProtocolError(
                f"the request has more than {max_elements} tensor elements; send smaller batches"
            )
        tensor_parameters = _parameters(raw, where)
        if "shared_memory_region" in tensor_parameters:
            raise ProtocolError("the shared-memory extension is not supported")
        size = _binary_size(tensor_parameters, where)

        if size is not None:
            if "data" in raw:
                raise ProtocolError(f"{where} has both data and parameters.binary_data_size")
            if header_length is None:
                raise ProtocolError(
                    f"{where} has binary data but the request has no {HEADER_LENGTH} header"
                )
            if offset + size > len(binary):
                raise ProtocolError(
                    f"{where} declares {size} bytes of binary data but only "
                    f"{len(binary) - offset} remain in the body"
                )
            values = _binary_values(binary[offset : offset + size], datatype, count, where)
            offset += size
        else:
            if "data" not in raw:
                raise ProtocolError(f"{where} has no data")
            flat = _flatten(raw["data"], where)
            if len(flat) != count:
                raise ProtocolError(
                    f"{where} has {len(flat)} elements but shape {shape} needs {count}"
                )
            values = _json_values(flat, datatype, where)
        try:
            data = values.reshape(shape)
        except ValueError:
            # An empty tensor can still declare a dimension numpy cannot allocate.
            raise ProtocolError(f"{where} has shape {shape}, which is too large") from None
        inputs.append(Tensor(name, datatype, shape, data, tensor_parameters))

    if offset != len(binary):
        raise ProtocolError(
            f"the body has {len(binary) - offset} bytes after the JSON part that no input's "
            "binary_data_size accounts for"
        )
    return InferRequest(id=request_id, parameters=parameters, inputs=inputs, outputs=outputs)


# ---------------------------------------------------------------- response encoding


def check_requested_outputs(request: InferRequest, available: list[str]) -> None:
    """Refuse requested outputs the model does not have (call before predicting)."""
    for requested in request.outputs or []:
        if requested["name"] not in available:
            raise ProtocolError(
                f"unknown output {requested['name']!r}; this model's outputs are "
                f"{', '.join(available)}"
            )


def _output_bytes(tensor: Tensor) -> bytes:
    if tensor.datatype == "BYTES":
        parts = []
        for value in tensor.data.ravel(order="C").tolist():
            raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
            parts.append(_LENGTH.pack(len(raw)))
            parts.append(raw)
        return b"".join(parts)
    dtype = DATATYPES[tensor.datatype]
    return np.ascontiguousarray(tensor.data, dtype=dtype).tobytes()


def _output_values(tensor: Tensor) -> list:
    if tensor.datatype == "BYTES":
        values = []
        for value in tensor.data.ravel(order="C").tolist():
            if isinstance(value, bytes):
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError:
                    raise ProtocolError(
                        f"output {tensor.name!r} is not text; request it with "
                        "parameters.binary_data true"
                    ) from None
            values.append(value if isinstance(value, str) else str(value))
        return values
    return np.asarray(tensor.data, dtype=DATATYPES[tensor.datatype]).ravel(order="C").tolist()


def _check_output(tensor: Tensor) -> None:
    # The server built these tensors: a mismatch is a bug in Modelport, not the client's error.
    if tensor.datatype not in DATATYPES:
        raise ValueError(f"output {tensor.name!r} has unknown datatype {tensor.datatype!r}")
    if tensor.data.size != _element_count(tensor.shape):
        raise ValueError(f"output {tensor.name!r} has {tensor.data.size} values for {tensor.shape}")
    if tensor.datatype in _FLOAT_TYPES:
        with np.errstate(all="ignore"):
            converted = np.asarray(tensor.data, dtype=DATATYPES[tensor.datatype])
        if not np.isfinite(converted).all():
            raise ValueError(f"output {tensor.name!r} is not finite")


def encode_infer_response(
    *,
    model_name: str,
    model_version: str | None,
    request_id: str | None,
    outputs: list[Tensor],
    request: InferRequest,
    parameters: dict[str, Any] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """Encode outputs as the request asked (JSON or binary); return body and headers to set.
    ``parameters``: the response's own (the protocol's optional ``parameters`` object)."""
    by_name = {tensor.name: tensor for tensor in outputs}
    check_requested_outputs(request, list(by_name))
    binary_default = bool(request.parameters.get("binary_data_output", False))
    if request.outputs is None:
        selected = [(tensor, binary_default) for tensor in outputs]
    else:
        # A requested output's own binary_data overrides binary_data_output (Triton's rule).
        selected = [
            (by_name[item["name"]], item["parameters"].get("binary_data", binary_default))
            for item in request.outputs
        ]

    documents: list[dict] = []
    buffers: list[bytes] = []
    for tensor, binary in selected:
        _check_output(tensor)
        document: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": [int(dim) for dim in tensor.shape],
        }
        own = dict(tensor.parameters)
        if binary:
            raw = _output_bytes(tensor)
            buffers.append(raw)
            own["binary_data_size"] = len(raw)
        else:
            document["data"] = _output_values(tensor)
        if own:
            document["parameters"] = own
        documents.append(document)

    response: dict[str, Any] = {"model_name": model_name}
    if model_version is not None:
        response["model_version"] = model_version
    if request_id is not None:
        response["id"] = request_id
    if parameters:
        response["parameters"] = parameters
    response["outputs"] = documents
    header = json.dumps(response, separators=(",", ":"), allow_nan=False).encode("utf-8")
    if not buffers:
        return header, {"Content-Type": JSON_CONTENT_TYPE}
    headers = {"Content-Type": BINARY_CONTENT_TYPE, HEADER_LENGTH: str(len(header))}
    return b"".join([header, *buffers]), headers
