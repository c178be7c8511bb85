"""``effnet serve``: any model effnet can load, behind the Open Inference (KServe V2)
protocol, with dynamic batching, back-pressure, Prometheus metrics and a drain on SIGTERM;
on uvicorn in one process or on Ray Serve replicas (docs/serve.md).

FastAPI, uvicorn and prometheus-client are optional (``pip install effnet[serve]``) and
imported when an app is made.
"""

from .batcher import Batcher
from .postprocess import encode_infer
from .protocol import InferRequest, ProtocolError, parse_infer
from .rejections import DeadlineExceeded, Draining, QueueFull, Rejected
from .service import Service
from .settings import ServeSettings

__all__ = ["Batcher", "DeadlineExceeded", "Draining", "InferRequest", "ProtocolError", "QueueFull", "Rejected",
           "ServeSettings", "Service", "encode_infer", "parse_infer"]
