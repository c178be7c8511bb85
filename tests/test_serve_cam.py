"""Class activation maps go through the same bounded admission as inference: a burst of them
is refused (429) past ``--max-queue`` instead of piling decoded images up in memory, each is
answered within its deadline, and the classify requests beside them are not starved."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

import pytest

from .serving import png_bytes, small_model

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")
from fastapi.testclient import TestClient  # noqa: E402

from effnet.serve import ServeSettings, Service  # noqa: E402
from effnet.serve import explain, predict, preprocess  # noqa: E402
from effnet.serve.app import create_app  # noqa: E402

URL = "/v2/models/fmnist_s0"
CAM_S = 0.3           # each CAM made this slow, so that a burst of them outlasts the deadline
TIMEOUT_S = 6.0
MAX_QUEUE = 3


class DecodedImages:
    """Counts the decoded images alive at once (collected first, so only those still held count)."""

    def __init__(self) -> None:
        self.live = 0
        self.peak = 0
        self.lock = threading.Lock()

    def wrap(self, decode):  # type: ignore[no-untyped-def]
        def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
            image = decode(*args, **kwargs)
            gc.collect()
            with self.lock:
                self.live += 1
                self.peak = max(self.peak, self.live)
            weakref.finalize(image, self.freed)
            return image
        return counted

    def freed(self) -> None:
        with self.lock:
            self.live -= 1


def test_a_burst_of_cams_is_admitted_like_inference_and_does_not_starve_classify(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    decoded = DecodedImages()
    monkeypatch.setattr(preprocess, "decode_image", decoded.wrap(preprocess.decode_image))
    cam = explain.class_activation_map
    monkeypatch.setattr(explain, "class_activation_map", lambda *a, **k: (time.sleep(CAM_S), cam(*a, **k))[1])
    # The inference thread at the loop's priority: on a crowded machine a niced one waits seconds
    # for a core, and this test is about admission, not priority.
    monkeypatch.setattr(predict, "yield_to_requests", lambda: None)
    service = Service(small_model(), ServeSettings(max_batch=4, max_queue=MAX_QUEUE, timeout_s=TIMEOUT_S,
                                                   runtime="torch"), cache=False)
    body, headers = png_bytes(), {"content-type": "image/png"}
    with TestClient(create_app(service)) as client:
        def post(route: str) -> tuple[str, int, float]:
            start = time.perf_counter()
            response = client.post(f"{URL}/{route}", content=body, headers=headers)
            return route, response.status_code, time.perf_counter() - start

        assert post("cam")[1] == 200            # the first CAM pays for matplotlib and the eager model
        decoded.peak = decoded.live
        with ThreadPoolExecutor(24) as pool:
            cams = [pool.submit(post, "cam") for _ in range(24)]
            classify = []
            for _ in range(10):                     # classify requests arrive while the CAMs wait
                time.sleep(0.2)
                classify.append(pool.submit(post, "classify"))
            answers = [f.result() for f in cams + classify]
        deadline = time.monotonic() + 10
        while service.batcher.depth and time.monotonic() < deadline:
            time.sleep(0.05)
        assert post("cam")[1] == 200            # and served as before once the burst is over
    for _, code, seconds in answers:
        assert code in (200, 429, 504), answers
        assert seconds < TIMEOUT_S + 1.0, answers       # the deadline holds for CAMs too
    cam_codes = [code for route, code, _ in answers if route == "cam"]
    assert cam_codes.count(429) >= 1 and cam_codes.count(200) >= 1, answers
    # A classify request waits behind at most a full queue of CAMs, never into a 504.
    classify_codes = [code for route, code, _ in answers if route == "classify"]
    assert set(classify_codes) <= {200, 429} and 200 in classify_codes, answers
    assert max(s for route, _, s in answers if route == "classify") < TIMEOUT_S, answers
    # Decoded images held at once: the admitted places, and the one CAM computing.
    assert decoded.peak <= MAX_QUEUE + 1, decoded.peak
