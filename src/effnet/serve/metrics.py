"""The server's Prometheus metrics (prometheus-client), in a registry of their own so that
several apps (tests, replicas) never share counters."""

from __future__ import annotations

# Latency buckets from 1 ms to 30 s: batch-1 inference is a few ms, a queue under overload
# seconds. Batch sizes in powers of two up to 256.
SECONDS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75,
           1.0, 2.0, 5.0, 10.0, 30.0)
SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """Counters, histograms and gauges of one server; :meth:`exposition` is ``GET /metrics``."""

    def __init__(self) -> None:
        try:
            import prometheus_client as prom
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError("effnet serve needs prometheus-client: pip install 'effnet[serve]'") from error
        self._prom = prom
        self.registry = prom.CollectorRegistry()
        r = self.registry
        self.requests = prom.Counter("effnet_requests", "HTTP requests by endpoint and status code",
                                     ["endpoint", "code"], registry=r)
        self.request_seconds = prom.Histogram("effnet_request_duration_seconds", "Time from request to response "
                                              "(in the app: from the ASGI call to the response's end)",
                                              ["endpoint", "code"], buckets=SECONDS, registry=r)
        self.queue_seconds = prom.Histogram("effnet_queue_wait_seconds", "Time an image waited for its batch",
                                            buckets=SECONDS, registry=r)
        self.preprocess_seconds = prom.Histogram("effnet_preprocess_duration_seconds",
                                                 "Decode, resize and normalise one request's images",
                                                 buckets=SECONDS, registry=r)
        self.inference_seconds = prom.Histogram("effnet_inference_duration_seconds", "One batch in the runtime",
                                                buckets=SECONDS, registry=r)
        self.batch_size = prom.Histogram("effnet_batch_size", "Images per inference batch", buckets=SIZES, registry=r)
        self.loop_lag_seconds = prom.Histogram("effnet_event_loop_lag_seconds", "How late the event loop woke "
                                               "from a 50 ms sleep (what every request waits when it is busy)",
                                               buckets=SECONDS, registry=r)
        self.queue_depth = prom.Gauge("effnet_queue_depth", "Images admitted and not yet answered", registry=r)
        self.rejections = prom.Counter("effnet_rejections", "Requests refused, by reason", ["reason"], registry=r)
        self.batches_by_replica = prom.Counter("effnet_batches_by_replica", "Batches answered, by model replica "
                                               "(Ray Serve backend)", ["replica"], registry=r)
        self.retries = prom.Counter("effnet_batch_retries", "Batches sent again after their replica died "
                                    "(Ray Serve backend)", registry=r)
        self.ready = prom.Gauge("effnet_ready", "1 when the model is loaded, warmed up and not draining", registry=r)

    def observe(self, name: str, value: object) -> None:
        """The batcher's hook: ``queue_wait``, ``inference``, ``batch_size``, ``rejected``."""
        if name == "queue_wait":
            self.queue_seconds.observe(float(value))  # type: ignore[arg-type]
        elif name == "inference":
            self.inference_seconds.observe(float(value))  # type: ignore[arg-type]
        elif name == "batch_size":
            self.batch_size.observe(float(value))  # type: ignore[arg-type]
        elif name == "rejected":
            self.rejections.labels(reason=str(value)).inc()

    def exposition(self) -> tuple[bytes, str]:
        return self._prom.generate_latest(self.registry), self._prom.CONTENT_TYPE_LATEST
