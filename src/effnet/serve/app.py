"""The HTTP face of a :class:`~effnet.serve.service.Service`: the Open Inference (KServe V2)
protocol, ``/classify`` for plain image uploads, ``/metrics`` and a small page.

Every error is a JSON body ``{"error": "..."}`` with a 4xx code that says whose fault it is
(400 malformed or undecodable, 404 unknown model, 413 too large, 415 wrong content type, 429
queue full with ``Retry-After``, 503 not ready or draining, 504 past the deadline); a bad
image is refused before it joins a batch, so it never fails anyone else's request.

No ``from __future__ import annotations`` here: FastAPI reads the route functions'
annotations at run time, and they name classes imported inside the functions.
"""


import html
import time
from contextlib import asynccontextmanager
from importlib import resources
from importlib.metadata import PackageNotFoundError, version

from ..data.images import ImageError, ImageTooLarge
from .protocol import ProtocolError
from .rejections import Rejected, retry_after_s
from .routes import HttpError, add_inference_routes, check_model
from .service import Service


def create_app(service: Service):  # type: ignore[no-untyped-def]
    """A FastAPI app serving ``service``: it starts the service (warm-up) at startup and
    closes it at shutdown (uvicorn and Ray Serve replicas both run the ASGI lifespan)."""
    try:
        from fastapi import FastAPI
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("effnet serve needs FastAPI and uvicorn: pip install 'effnet[serve]'") from error

    @asynccontextmanager
    async def lifespan(app):  # type: ignore[no-untyped-def]
        await service.start()
        yield
        await service.close()

    app = FastAPI(title=f"effnet serve: {service.name}", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.service = service
    _add_error_handlers(app, service)
    app.add_middleware(CountRequests, service=service)
    _add_routes(app, service)
    add_inference_routes(app, service)
    return app


def _add_error_handlers(app, service: Service) -> None:  # type: ignore[no-untyped-def]
    """Every error as JSON ``{"error": ...}`` with the status that says whose fault it is."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    def error_response(status: int, message: str, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.exception_handler(HttpError)
    async def on_http_error(request: Request, error: HttpError):  # type: ignore[no-untyped-def]
        return error_response(error.status, str(error), error.headers)

    @app.exception_handler(Rejected)
    async def on_rejected(request: Request, error: Rejected):  # type: ignore[no-untyped-def]
        headers = None
        if error.retry_after is not None:
            headers = {"Retry-After": str(retry_after_s(service.batcher.queued, _images_per_s(service)))}
        return error_response(error.status, str(error), headers)

    @app.exception_handler(ProtocolError)
    async def on_protocol_error(request: Request, error: ProtocolError):  # type: ignore[no-untyped-def]
        return error_response(error.status, str(error))

    @app.exception_handler(ImageError)
    async def on_image_error(request: Request, error: ImageError):  # type: ignore[no-untyped-def]
        return error_response(413 if isinstance(error, ImageTooLarge) else 400, str(error))

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, error: RequestValidationError):  # type: ignore[no-untyped-def]
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in error.errors()]
        return error_response(400, "; ".join(parts) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def on_starlette_error(request: Request, error: StarletteHTTPException):  # type: ignore[no-untyped-def]
        return error_response(error.status_code, str(error.detail), getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def on_failure(request: Request, error: Exception):  # type: ignore[no-untyped-def]
        return error_response(500, f"inference failed: {type(error).__name__}: {' '.join(str(error).split())}")


class CountRequests:
    """Requests by endpoint and code, and their durations: a plain ASGI middleware (FastAPI's
    ``@app.middleware("http")`` runs each request through an extra task and memory
    streams, a cost paid on every 429 under overload)."""

    def __init__(self, inner, service: Service) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.service = service

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_counted(message) -> None:  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                if self.service.replica:
                    message.setdefault("headers", []).append((b"x-effnet-replica", self.service.replica.encode()))
            await send(message)

        try:
            await self.inner(scope, receive, send_counted)
        finally:
            endpoint = getattr(scope.get("route"), "path", "unmatched")
            self.service.metrics.requests.labels(endpoint=endpoint, code=str(status[0])).inc()
            self.service.metrics.request_seconds.labels(endpoint=endpoint, code=str(status[0])).observe(
                time.perf_counter() - start)



def _add_routes(app, service: Service) -> None:  # type: ignore[no-untyped-def]
    """Health, metadata, metrics and the page; the inference routes are :mod:`.routes`'."""
    from fastapi import Response
    from fastapi.responses import HTMLResponse, JSONResponse

    @app.get("/v2")
    async def server_metadata():  # type: ignore[no-untyped-def]
        return {"name": "effnet", "version": _version(), "extensions": ["binary_tensor_data", "classification"]}

    @app.get("/v2/health/live")
    async def live():  # type: ignore[no-untyped-def]
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready():  # type: ignore[no-untyped-def]
        return JSONResponse({"ready": service.ready}, status_code=200 if service.ready else 503)

    @app.get("/v2/models/{name}")
    async def model_metadata(name: str):  # type: ignore[no-untyped-def]
        check_model(service, name)
        return service.metadata()

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str):  # type: ignore[no-untyped-def]
        check_model(service, name)
        return JSONResponse({"name": name, "ready": service.ready}, status_code=200 if service.ready else 503)

    @app.get("/metrics")
    async def prometheus():  # type: ignore[no-untyped-def]
        service.metrics.queue_depth.set(service.batcher.depth)
        content, media_type = service.metrics.exposition()
        return Response(content, media_type=media_type)

    @app.get("/", response_class=HTMLResponse)
    async def page():  # type: ignore[no-untyped-def]
        return HTMLResponse(_page(service))


def _images_per_s(service: Service) -> float:
    """Recent throughput from the inference histogram, for Retry-After (0 when unknown)."""
    histogram = service.metrics.inference_seconds
    total = sum(s.value for m in histogram.collect() for s in m.samples if s.name.endswith("_sum"))
    images = sum(s.value for m in service.metrics.batch_size.collect() for s in m.samples if s.name.endswith("_sum"))
    return images / total if total > 0 else 0.0


def _page(service: Service) -> str:
    template = resources.files("effnet.serve").joinpath("page.html").read_text(encoding="utf-8")
    return template.replace("{{MODEL}}", html.escape(service.name)).replace(
        "{{WEIGHTS}}", html.escape(service.weights or "random weights"))


def _version() -> str:
    try:
        return version("effnet")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"
