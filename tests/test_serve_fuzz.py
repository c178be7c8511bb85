"""Whatever a client POSTs, the server answers it with a 4xx that says what is wrong, or
with a 200: never a 500, never a traceback, and a good request still gets its answer
afterwards. Hypothesis throws arbitrary JSON values, near-valid KServe V2 requests with
fields of the wrong type, and arbitrary bytes at every POST route."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from .serving import png_bytes, small_model

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")
from fastapi.testclient import TestClient  # noqa: E402

from effnet.serve import ServeSettings, Service  # noqa: E402
from effnet.serve.app import create_app  # noqa: E402

URL = "/v2/models/fmnist_s0"
ROUTES = ("infer", "classify", "cam")
CONTENT_TYPES = ("application/json", "image/png", "application/octet-stream", "multipart/form-data; boundary=x",
                 "text/plain", "")
PNG = png_bytes()
GOOD = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [base64.b64encode(PNG).decode()]}]}
FUZZ = settings(max_examples=100, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)


def either(*good: object) -> st.SearchStrategy:
    """A valid value of a field, or any JSON value in its place."""
    return st.sampled_from(good) | json_values


tensors = st.fixed_dictionaries(
    {"name": either("input", "image"), "shape": either([1, 1, 28, 28], [1], [1, 1]),
     "datatype": either("FP32", "BYTES"), "data": either([0.5] * 784, GOOD["inputs"][0]["data"], [])},
    optional={"parameters": json_values | st.fixed_dictionaries({"binary_data_size": json_values})})
outputs = st.lists(st.fixed_dictionaries(
    {"name": either("logits", "probabilities")},
    optional={"parameters": json_values | st.fixed_dictionaries(
        {}, optional={"classification": either(2), "binary_data": either(True, False)})}), max_size=2)
requests = st.fixed_dictionaries(
    {"inputs": st.lists(tensors, min_size=1, max_size=2) | json_values},
    optional={"id": either("r1"), "outputs": outputs | json_values,
              "parameters": json_values | st.fixed_dictionaries({"binary_data_output": either(True, False)})})


@pytest.fixture(scope="module")
def client():  # type: ignore[no-untyped-def]
    service = Service(small_model(), ServeSettings(max_batch=4, max_pixels=200_000, max_body_mb=0.5,
                                                   runtime="torch"), cache=False)
    with TestClient(create_app(service), raise_server_exceptions=False) as c:
        yield c


def answered_well(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text and 'File "' not in response.text, response.text
    if response.status_code != 200:
        assert set(response.json()) == {"error"}, response.text


def good_requests_still_answered(client: TestClient) -> None:
    assert client.post(f"{URL}/infer", json=GOOD).status_code == 200
    for route in ("classify", "cam"):
        assert client.post(f"{URL}/{route}", content=PNG, headers={"content-type": "image/png"}).status_code == 200


def test_any_json_at_any_post_route_is_answered_without_a_500(client: TestClient) -> None:
    @FUZZ
    @given(body=requests | json_values, route=st.sampled_from(ROUTES), content_type=st.sampled_from(CONTENT_TYPES))
    @example(body={**GOOD, "parameters": [1, 2]}, route="infer", content_type="application/json")
    @example(body={**GOOD, "parameters": "binary"}, route="infer", content_type="application/json")
    @example(body={**GOOD, "parameters": 3}, route="infer", content_type="application/json")
    @example(body={"inputs": [{**GOOD["inputs"][0], "parameters": [1]}]}, route="infer", content_type="")
    @example(body={"inputs": [{**GOOD["inputs"][0], "parameters": "x"}]}, route="infer", content_type="")
    @example(body={**GOOD, "outputs": [{"name": "logits", "parameters": 7}]}, route="infer", content_type="")
    def throw(body: object, route: str, content_type: str) -> None:
        answered_well(client.post(f"{URL}/{route}", content=json.dumps(body).encode(),
                                  headers={"content-type": content_type}))

    throw()
    good_requests_still_answered(client)


def test_any_bytes_at_any_post_route_are_answered_without_a_500(client: TestClient) -> None:
    @FUZZ
    @given(body=st.binary(max_size=300), route=st.sampled_from(ROUTES), content_type=st.sampled_from(CONTENT_TYPES),
           header_length=st.none() | st.integers(-2, 320).map(str) | st.sampled_from(["", "x", "1e3"]))
    @example(body=b"[" * 5000 + b"]" * 5000, route="infer", content_type="application/json", header_length=None)
    @example(body=b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}", route="infer", content_type="",
             header_length=None)
    @example(body=b'{"inputs": [], "id": ' + b"9" * 5000 + b"}", route="infer", content_type="", header_length=None)
    def throw(body: bytes, route: str, content_type: str, header_length: str | None) -> None:
        headers = {"content-type": content_type}
        if header_length is not None:
            headers["inference-header-content-length"] = header_length
        answered_well(client.post(f"{URL}/{route}", content=body, headers=headers))

    throw()
    good_requests_still_answered(client)
