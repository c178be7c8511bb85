"""``effnet serve --backend ray``: the same app on Ray Serve, model replicas behind it.

Two deployments, Ray Serve's model-composition pattern:

- ``effnet`` (the ingress, ``@serve.ingress``): the app of :func:`~effnet.serve.app.create_app`
  with its batcher; it decodes, preprocesses and batches, and sends each batch to a model
  replica through a ``DeploymentHandle``, one batch in flight per replica. A batch whose
  replica dies (killed, out of memory, node lost) is sent again to another one, so an
  accepted request is not lost with its replica.
- ``effnet-model`` (``--replicas N``, or autoscaling up to ``--max-replicas`` on queued
  batches): the runtime with its share of the cores; its health check runs one image.

Ray Serve's knobs follow effnet's: the ingress takes ``--max-queue`` requests at once
(``max_ongoing_requests``, so batches can fill) and Ray queues at most as many in front of
it (``max_queued_requests``, 503 past it); the HTTP proxy's ``request_timeout_s`` is
``--timeout-s``.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import torch

from ..factory import create_model
from .app import create_app
from .engine import InferenceEngine
from .service import Service
from .settings import ServeSettings

# How many times a batch is sent again when its replica died under it.
RETRIES = 3


class ModelReplica:
    """One model replica: ``infer(images) -> (logits, replica id)``."""

    def __init__(self, model_name: str | None, weights: str | None, settings: dict[str, Any], cache: bool) -> None:
        from ray import serve

        chosen = ServeSettings(**settings)
        self.engine = InferenceEngine(create_model(model_name, weights=weights), runtime=chosen.runtime,
                                      device=chosen.device, threads=chosen.threads, cache=cache, batch=chosen.max_batch)
        self.engine.check()  # warm-up
        self.replica = serve.get_replica_context().replica_id.unique_id

    def infer(self, images: np.ndarray) -> tuple[np.ndarray, str]:
        return self.engine(torch.from_numpy(images)).numpy(), self.replica

    def check_health(self) -> None:
        self.engine.check()


class Ingress:
    """The HTTP ingress (wrapped by ``serve.ingress()``): the app, the batcher, retries."""

    async def __init__(self, model_handle, model_name: str | None, weights: str | None,  # type: ignore[no-untyped-def]
                       settings: dict[str, Any], name: str | None, slots: int) -> None:
        from ray import serve

        self.handle = model_handle
        self.timeout_s = float(settings["timeout_s"])
        self.service = Service(create_model(model_name, weights=weights), ServeSettings(**settings), name=name,
                               weights=weights, remote=self._remote, remote_slots=slots)
        self.service.replica = serve.get_replica_context().replica_id.unique_id
        await self.service.start()   # the warm-up batch goes through a model replica

    def _remote(self, images: torch.Tensor) -> torch.Tensor:
        """One batch on a model replica (called on an executor thread, so blocking is fine)."""
        import ray.exceptions as errors

        last: Exception | None = None
        for _ in range(RETRIES + 1):
            try:
                logits, replica = self.handle.infer.remote(images.numpy()).result(timeout_s=self.timeout_s)
            except (errors.RayActorError, errors.ActorUnavailableError) as error:
                last = error   # the replica died under the batch: the router sends it to a live one
                self.service.metrics.retries.inc()
                continue
            self.service.metrics.batches_by_replica.labels(replica=replica).inc()
            return torch.from_numpy(logits)
        raise RuntimeError(f"no model replica answered after {RETRIES + 1} tries ({last})")

    def __serve_build_asgi_app__(self):  # type: ignore[no-untyped-def]
        return create_app(self.service)

    async def check_health(self) -> None:
        if not self.service.ready and not self.service.draining:
            raise RuntimeError("the ingress is not ready")


def application(model_name: str | None, weights: str | None, settings: ServeSettings, *, name: str | None,
                replicas: int = 1, max_replicas: int = 0, cache: bool = True):  # type: ignore[no-untyped-def]
    """The bound Ray Serve application (ingress + model replicas)."""
    from ray import serve

    most = max(replicas, max_replicas)
    # Each model replica gets its share of the cores (Ray's num_cpus is 0 so that replicas
    # and the ingress always fit a small machine; threads do the sharing).
    model_settings = replace(settings, threads=settings.threads or max(1, (os.cpu_count() or 1) // most))
    scaling: dict[str, Any] = ({"autoscaling_config": {"min_replicas": replicas, "max_replicas": max_replicas,
                                                       "target_ongoing_requests": 1}}
                               if max_replicas > replicas else {"num_replicas": replicas})
    model = serve.deployment(ModelReplica, name="effnet-model", max_ongoing_requests=2, health_check_period_s=5,
                             health_check_timeout_s=max(10.0, settings.timeout_s), graceful_shutdown_wait_loop_s=0.5,
                             ray_actor_options={"num_cpus": 0}, **scaling)
    ingress = serve.deployment(
        serve.ingress()(Ingress), name="effnet", num_replicas=1, max_ongoing_requests=settings.max_queue,
        max_queued_requests=settings.max_queue, health_check_period_s=5, graceful_shutdown_wait_loop_s=1,
        graceful_shutdown_timeout_s=max(5.0, settings.timeout_s), ray_actor_options={"num_cpus": 0})
    return ingress.bind(model.bind(model_name, weights, asdict(model_settings), cache), model_name, weights,
                        asdict(settings), name, most)


def serve_ray(model_name: str | None, weights: str | None, settings: ServeSettings, *, name: str | None,
              host: str, port: int, replicas: int, max_replicas: int = 0, address: str | None = None,
              cache: bool = True, block: bool = True, on_ready=None, log=None) -> int:  # type: ignore[no-untyped-def]
    """Start Ray (or join ``address``), deploy, and serve until SIGTERM/SIGINT; then delete
    the application gracefully (replicas finish what they hold) and shut Serve down."""
    try:
        import ray
        from ray import serve
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("--backend ray needs Ray Serve: pip install 'effnet[ray]'") from error
    if settings.runtime == "auto":
        # Measured once, here, and given to every replica: a replica that replaces a dead one
        # then starts at once instead of timing three runtimes while the others carry the
        # load. (On a cluster of unlike machines, pass --runtime instead.)
        probe = InferenceEngine(create_model(model_name, weights=weights), runtime="auto", device=settings.device,
                                threads=settings.threads, cache=cache, batch=settings.max_batch)
        if probe.choice is not None and log is not None:
            log(probe.choice.describe())
        settings = replace(settings, runtime=probe.runtime)
        del probe
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 **({} if address else {"num_cpus": os.cpu_count()}))
    serve.start(http_options={"host": host, "port": port, "request_timeout_s": settings.timeout_s})
    serve.run(application(model_name, weights, settings, name=name, replicas=replicas, max_replicas=max_replicas,
                          cache=cache), name="effnet", route_prefix="/")
    if on_ready is not None:
        on_ready()
    if not block:
        return 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    serve.delete("effnet")
    serve.shutdown()
    return 0
