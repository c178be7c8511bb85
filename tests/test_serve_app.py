"""The server's HTTP face in process (FastAPI's TestClient runs the real app and lifespan):
the KServe V2 routes, /classify identical to `effnet predict`, every error a JSON 4xx that
fails only its own request, readiness and drain, metrics."""

from __future__ import annotations

import base64
import gc
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import effnet
from effnet.predict import predict

from .optional import require
from .lite import lite0_pretrained
from .serving import flat_png, png_bytes, small_model

require("fastapi")
require("prometheus_client")
from fastapi.testclient import TestClient  # noqa: E402

from effnet.serve import ServeSettings, Service  # noqa: E402
from effnet.serve.app import create_app  # noqa: E402


@pytest.fixture(scope="module")
def small_service() -> Service:
    return Service(small_model(), ServeSettings(max_batch=4, max_pixels=200_000, max_body_mb=0.5), cache=False)


@pytest.fixture(scope="module")
def client(small_service: Service):  # type: ignore[no-untyped-def]
    with TestClient(create_app(small_service)) as c:
        yield c


URL = "/v2/models/fmnist_s0"


def test_health_metadata_and_page(client: TestClient, small_service: Service) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get(f"{URL}/ready").status_code == 200
    meta = client.get(URL).json()
    assert meta["name"] == "fmnist_s0" and meta["inputs"][0] == {"name": "input", "datatype": "FP32",
                                                                 "shape": [-1, 1, 28, 28]}
    assert meta["outputs"][0]["shape"] == [-1, 10] and meta["parameters"]["preprocessing"]["input_size"] == 28
    page = client.get("/")
    assert page.status_code == 200 and "fmnist_s0" in page.text and "classify" in page.text
    assert client.get("/v2").json()["extensions"] == ["binary_tensor_data", "classification"]


def test_classify_raw_and_multipart_give_predict_s_answer(client: TestClient, small_service: Service,
                                                          tmp_path: Path) -> None:
    data = png_bytes()
    (tmp_path / "x.png").write_bytes(data)
    expected = predict([tmp_path / "x.png"], small_service.model, top_k=3)[0].top_k
    raw = client.post(f"{URL}/classify?top_k=3", content=data, headers={"content-type": "image/png",
                                                                         "x-request-id": "r1"}).json()
    form = client.post(f"{URL}/classify?top_k=3", files={"file": ("x.png", data, "image/png")}).json()
    for answer in (raw, form):
        assert answer["model"] == "fmnist_s0" and len(answer["predictions"]) == 3
        assert [p["index"] for p in answer["predictions"]] == [s.index for s in expected]
        assert [p["label"] for p in answer["predictions"]] == [s.name for s in expected]
        assert np.allclose([p["score"] for p in answer["predictions"]], [s.probability for s in expected], atol=1e-5)
    assert raw["id"] == "r1" and len(form["id"]) == 32


def test_infer_with_tensors_and_images_matches_the_model(client: TestClient, small_service: Service) -> None:
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        expected = small_service.model(x).numpy()
    response = client.post(f"{URL}/infer", json={"id": "t", "inputs": [{"name": "input", "shape": [3, 1, 28, 28],
                                                                        "datatype": "FP32", "data": x.flatten().tolist()}]})
    assert response.status_code == 200, response.text
    out = response.json()["outputs"][0]
    assert out["shape"] == [3, 10] and np.allclose(np.array(out["data"]).reshape(3, 10), expected, atol=1e-4)
    images = [png_bytes(seed=s) for s in range(2)]
    response = client.post(f"{URL}/infer", json={
        "inputs": [{"name": "image", "shape": [2], "datatype": "BYTES", "data": [base64.b64encode(i).decode() for i in images]}],
        "outputs": [{"name": "probabilities", "parameters": {"classification": 2}}]})
    data = response.json()["outputs"][0]["data"]
    first = client.post(f"{URL}/classify?top_k=2", content=images[0], headers={"content-type": "image/png"}).json()
    assert data[0].split(":")[1] == str(first["predictions"][0]["index"])
    assert abs(float(data[0].split(":")[0]) - first["predictions"][0]["score"]) < 1e-5


@pytest.mark.parametrize(("kwargs", "status", "message"), [
    ({"content": b"<html>no</html>", "headers": {"content-type": "image/png"}}, 400, "HTML page"),
    ({"content": b"", "headers": {"content-type": "image/png"}}, 400, "empty body"),
    ({"content": flat_png(1000, 1000), "headers": {"content-type": "image/png"}}, 413, "too large"),
    ({"content": b"x" * 600_000, "headers": {"content-type": "image/png"}}, 413, "byte limit"),
    ({"content": png_bytes(), "headers": {"content-type": "text/plain"}}, 415, "unsupported content type"),
    ({"files": {"other": ("x.png", png_bytes(), "image/png")}}, 400, "'file' field"),
])
def test_bad_uploads_get_a_json_4xx(client: TestClient, kwargs: dict, status: int, message: str) -> None:
    response = client.post(f"{URL}/classify", **kwargs)
    assert response.status_code == status and message in response.json()["error"], response.text


def test_a_chunked_body_over_the_limit_is_refused_while_streaming(client: TestClient) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"x" * 50_000   # 1 MB in all, no Content-Length

    response = client.post(f"{URL}/classify", content=chunks(), headers={"content-type": "image/png"})
    assert response.status_code == 413 and "byte limit" in response.json()["error"]


def test_unknown_model_bad_top_k_and_bad_infer(client: TestClient) -> None:
    assert client.post("/v2/models/other/classify", content=png_bytes(),
                       headers={"content-type": "image/png"}).status_code == 404
    assert client.get("/v2/models/other").json()["error"].startswith("unknown model")
    assert client.post(f"{URL}/classify?top_k=0", content=png_bytes(), headers={"content-type": "image/png"}).status_code == 400
    assert client.post(f"{URL}/classify?top_k=many", content=png_bytes(),
                       headers={"content-type": "image/png"}).status_code == 400
    bad_shape = client.post(f"{URL}/infer", json={"inputs": [{"name": "input", "shape": [1, 3, 28, 28], "datatype": "FP32",
                                                              "data": [0.0] * 3 * 28 * 28}]})
    assert bad_shape.status_code == 400 and "[N, 1, 28, 28]" in bad_shape.json()["error"]
    assert client.post(f"{URL}/infer", content=b"{", headers={"content-type": "application/json"}).status_code == 400
    assert client.get("/nothing").json() == {"error": "Not Found"}


def test_a_bad_image_fails_only_its_own_request(client: TestClient) -> None:
    good, bad = png_bytes(seed=3), b"GIF89a broken"
    body = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [base64.b64encode(bad).decode()]}]}
    assert client.post(f"{URL}/infer", json=body).status_code == 400
    # And concurrently: requests in flight together, one bad, the others answered.
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(lambda data: client.post(f"{URL}/classify", content=data,
                                                       headers={"content-type": "image/png"}).status_code,
                              [good, bad, good, good, bad, good]))
    assert codes == [200, 400, 200, 200, 400, 200]


def test_deadline_504_and_drain_503() -> None:
    model = effnet.create_model("fmnist_s0")
    expired = Service(model, ServeSettings(timeout_s=1e-9), cache=False)
    with TestClient(create_app(expired)) as c:
        response = c.post(f"{URL}/classify", content=png_bytes(), headers={"content-type": "image/png"})
        assert response.status_code == 504 and "timeout" in response.json()["error"]
    service = Service(model, ServeSettings(), cache=False)
    with TestClient(create_app(service)) as c:
        assert c.get("/v2/health/ready").status_code == 200
        service.begin_drain()
        assert c.get("/v2/health/ready").json() == {"ready": False}
        response = c.post(f"{URL}/classify", content=png_bytes(), headers={"content-type": "image/png"})
        assert response.status_code == 503 and "draining" in response.json()["error"]
        assert c.get("/v2/health/live").status_code == 200


def test_not_ready_before_warm_up() -> None:
    service = Service(effnet.create_model("fmnist_s0"), ServeSettings(), cache=False)
    client = TestClient(create_app(service))   # no `with`: the lifespan (warm-up) has not run
    assert client.get("/v2/health/ready").status_code == 503
    response = client.post(f"{URL}/classify", content=png_bytes(), headers={"content-type": "image/png"})
    assert response.status_code == 503 and "loading" in response.json()["error"]


def test_ready_means_the_startup_heap_is_frozen() -> None:
    """A full garbage collection over torch + the runtime + the app stopped the event loop for
    0.3-0.5 s under overload (every 429 of that moment waited); after the warm-up the heap
    loaded so far is frozen out of the collector's view."""
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    with TestClient(create_app(Service(effnet.create_model("fmnist_s0"), ServeSettings(), cache=False))) as c:
        assert c.get("/v2/health/ready").status_code == 200
        assert gc.get_freeze_count() > 100_000


def test_metrics_count_requests_batches_and_rejections(client: TestClient) -> None:
    client.post(f"{URL}/classify", content=png_bytes(), headers={"content-type": "image/png"})
    client.post(f"{URL}/classify", content=b"junk", headers={"content-type": "text/plain"})
    text = client.get("/metrics").text
    assert 'effnet_requests_total{code="200",endpoint="/v2/models/{name}/classify"}' in text
    assert 'effnet_requests_total{code="415",endpoint="/v2/models/{name}/classify"}' in text
    # Durations by code too: a refusal's time is not hidden among the answers'.
    assert 'effnet_request_duration_seconds_count{code="415",endpoint="/v2/models/{name}/classify"}' in text
    assert "effnet_event_loop_lag_seconds_count" in text
    for name in ("effnet_request_duration_seconds_bucket", "effnet_queue_wait_seconds_count",
                 "effnet_preprocess_duration_seconds_count", "effnet_inference_duration_seconds_count",
                 "effnet_batch_size_bucket", "effnet_queue_depth", "effnet_ready 1.0"):
        assert name in text, name


def test_cam_is_a_png_over_the_crop_the_model_saw(client: TestClient) -> None:
    response = client.post(f"{URL}/cam", content=png_bytes(), headers={"content-type": "image/png"})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (28, 28)
    bad = client.post(f"{URL}/cam?class_index=99", content=png_bytes(), headers={"content-type": "image/png"})
    assert bad.status_code == 400 and "out of range" in bad.json()["error"]


def test_lite0_photo_classify_equals_effnet_predict(tmp_path: Path) -> None:
    skimage_data = require("skimage.data")
    model = lite0_pretrained()
    path = tmp_path / "coffee.jpg"
    Image.fromarray(skimage_data.coffee()).save(path, quality=95)
    onnx = require("onnxruntime") and "onnx"
    from effnet.deploy.runtime_choice import runtime_model
    expected = predict([path], runtime_model(model, onnx, cache=False), top_k=5)[0].top_k
    service = Service(model, ServeSettings(runtime="onnx"), weights="lite0.official", cache=False)
    with TestClient(create_app(service)) as c:
        answer = c.post("/v2/models/efficientnet_lite0/classify", content=path.read_bytes(),
                        headers={"content-type": "image/jpeg"}).json()
    assert [p["index"] for p in answer["predictions"]] == [s.index for s in expected]
    assert answer["predictions"][0]["label"] == "espresso"
    assert np.allclose([p["score"] for p in answer["predictions"]], [s.probability for s in expected], atol=1e-5)
    assert json.dumps(answer)  # plain JSON types
