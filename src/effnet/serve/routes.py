"""The inference routes, each KServe's pipeline behind the admission checks: preprocess
(body -> rows), predict (rows -> logits, holding places in the bounded queue), postprocess
(logits -> the answer); and the request checks the app's other routes share.

No ``from __future__ import annotations`` here: FastAPI reads the route functions'
annotations (``Request``) at run time, and they name classes imported inside the functions.
"""


import asyncio
import uuid

from ..data.images import ImageError
from .protocol import parse_infer
from .service import Service

IMAGE_TYPES = ("image/", "application/octet-stream")


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


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


def add_inference_routes(app, service: Service) -> None:  # type: ignore[no-untyped-def]
    """POST infer (KServe V2), classify and cam (plain uploads)."""
    from fastapi import Request, Response

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request):  # type: ignore[no-untyped-def]
        started = asyncio.get_running_loop().time()
        check_model(service, name)
        check_ready(service)
        body = await read_body(service, request)
        parsed = parse_infer(body, request.headers.get("inference-header-content-length"),
                             max_images=service.settings.max_queue)
        rows = None if parsed.tensor is None else service.preprocess.tensor(parsed.tensor)
        with service.predict.admission(parsed.count) as ticket:
            if rows is None:
                rows = await service.preprocess.images(parsed.images)
            logits = await service.predict.logits(ticket, rows, service.deadline(started))
        content, headers = service.postprocess.infer_response(parsed, logits)
        return Response(content, headers=headers, media_type=headers["content-type"])

    @app.post("/v2/models/{name}/classify")
    async def classify(name: str, request: Request, top_k: int = 5):  # type: ignore[no-untyped-def]
        started = asyncio.get_running_loop().time()
        check_model(service, name)
        if top_k < 1:
            raise HttpError(400, f"top_k must be at least 1, got {top_k}")
        check_ready(service)
        data, filename = await upload_of(service, request)
        with service.predict.admission(1) as ticket:
            rows = await service.preprocess.images([data], [filename])
            logits = await service.predict.logits(ticket, rows, service.deadline(started))
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        return {"model": service.name, "id": request_id, "predictions": service.postprocess.top_k(logits[0], top_k)}

    @app.post("/v2/models/{name}/cam")
    async def cam(name: str, request: Request, class_index: int | None = None):  # type: ignore[no-untyped-def]
        started = asyncio.get_running_loop().time()
        check_model(service, name)
        check_ready(service)
        data, _ = await upload_of(service, request)
        try:
            service.explain.check(class_index)
            with service.predict.admission(1) as ticket:
                # The decoded image (up to 40 megapixels) goes straight into the job: no local
                # here holds it, only its place in the queue does.
                png = await service.predict.call(ticket, service.explain.job(
                    await service.preprocess.image(data), class_index), service.deadline(started))
        except ValueError as error:
            if isinstance(error, ImageError):
                raise
            raise HttpError(400, str(error)) from None
        return Response(png, media_type="image/png")
