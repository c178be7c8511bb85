"""The HTTP face of a :class:`~effnet.serve.service.Service`: the Open Inference (KServe V2)
protocol, ``/classify`` for plain image uploads, ``/metrics`` and a small page.

Every error is a JSON body ``{"error": "..."}`` with a 4xx code that says whose fault it is
(400 malformed or undecodable, 404 unknown model, 413 too large, 415 wrong content type, 429
queue full with ``Retry-After``, 503 not ready or draining, 504 past the deadline); a bad
image is refused before it joins a batch, so it never fails anyone else's request.

No ``from __future__ import annotations`` here: FastAPI reads the route functions'
annotations (``Request``) at run time, and they name classes imported inside create_app.
"""


import asyncio
import html
import time
import uuid
from contextlib import asynccontextmanager
from importlib import resources
from importlib.metadata import PackageNotFoundError, version

from ..data.images import ImageError, ImageTooLarge
from .postprocess import encode_infer
from .protocol import ProtocolError, parse_infer
from .rejections import Rejected, retry_after_s
from .service import Service

IMAGE_TYPES = ("image/", "application/octet-stream")


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


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
    _add_protocol_routes(app, service)
    _add_upload_routes(app, service)
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



def check_model(service: Service, name: str) -> None:
    if name != service.name:
        raise HttpError(404, f"unknown model {name!r}; this server serves {service.name!r}")

def check_ready(service: Service) -> None:
    """503 unless ready; 429 at once when the queue is full, before the body is read."""
    if service.draining:
        raise HttpError(503, "the server is draining (shutting down); send the request to another replica")
    if not service.ready:
        raise HttpError(503, "the model is still loading; retry in a few seconds")
    service.batcher.check_room()

async def read_body(service: Service, request) -> bytes:  # type: ignore[no-untyped-def]
    limit = service.settings.max_body_bytes
    length = request.headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise HttpError(400, f"Content-Length is not a number: {length!r}") from None
        if declared > limit:  # refused before a byte of the body is read
            raise HttpError(413, f"body of {declared:,} bytes is over the {limit:,}-byte limit (--max-body-mb)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"body is over the {limit:,}-byte limit (--max-body-mb)")
        chunks.append(chunk)
    return b"".join(chunks)

async def upload_of(service: Service, request) -> tuple[bytes, str]:  # type: ignore[no-untyped-def]
    from fastapi import Request
    from starlette.datastructures import UploadFile

    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        body = await read_body(service, request)

        async def replay():  # type: ignore[no-untyped-def]
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(request.scope, replay).form(max_files=1, max_fields=8)
        except Exception as error:  # noqa: BLE001 - python-multipart's errors are all "malformed form"
            raise HttpError(400, f"malformed multipart body ({' '.join(str(error).split())})") from None
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HttpError(400, "multipart/form-data needs a 'file' field holding the image")
        return await upload.read(), upload.filename or "upload"
    if content_type.startswith(IMAGE_TYPES):
        return await read_body(service, request), "upload"
    raise HttpError(415, f"unsupported content type {content_type or '(none)'!r}; send an image/* body "
                         "or multipart/form-data with a 'file' field")


def _add_protocol_routes(app, service: Service) -> None:  # type: ignore[no-untyped-def]
    """The Open Inference (KServe V2) routes."""
    from fastapi import Request, Response
    from fastapi.responses import JSONResponse

    # -- Open Inference protocol -----------------------------------------------------------------
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

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request):  # type: ignore[no-untyped-def]
        started = asyncio.get_running_loop().time()
        check_model(service, name)
        check_ready(service)
        body = await read_body(service, request)
        parsed = parse_infer(body, request.headers.get("inference-header-content-length"),
                             max_images=service.settings.max_queue)
        logits = await service.logits(images=parsed.images if parsed.tensor is None else None, tensor=parsed.tensor,
                                      deadline=service.deadline(started))
        content, headers = encode_infer(service.name, parsed, logits, service.class_names)
        return Response(content, headers=headers, media_type=headers["content-type"])



def _add_upload_routes(app, service: Service) -> None:  # type: ignore[no-untyped-def]
    """Plain uploads (classify, CAM), metrics and the page."""
    from fastapi import Request, Response
    from fastapi.responses import HTMLResponse

    # -- plain uploads -----------------------------------------------------------------------------
    @app.post("/v2/models/{name}/classify")
    async def classify(name: str, request: Request, top_k: int = 5):  # type: ignore[no-untyped-def]
        started = asyncio.get_running_loop().time()
        check_model(service, name)
        if top_k < 1:
            raise HttpError(400, f"top_k must be at least 1, got {top_k}")
        check_ready(service)
        data, filename = await upload_of(service, request)
        logits = await service.logits(images=[data], names=[filename], deadline=service.deadline(started))
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        return {"model": service.name, "id": request_id, "predictions": service.top_k(logits[0], top_k)}

    @app.post("/v2/models/{name}/cam")
    async def cam(name: str, request: Request, class_index: int | None = None):  # type: ignore[no-untyped-def]
        started = asyncio.get_running_loop().time()
        check_model(service, name)
        check_ready(service)
        data, _ = await upload_of(service, request)
        try:
            png = await service.cam_png(data, class_index, deadline=service.deadline(started))
        except ValueError as error:
            if isinstance(error, ImageError):
                raise
            raise HttpError(400, str(error)) from None
        return Response(png, media_type="image/png")

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
