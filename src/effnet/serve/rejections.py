"""Why the server refuses a request, each with its HTTP status and a metric label, and
how long a refused client should wait."""

from __future__ import annotations

import math


class Rejected(Exception):
    """A request the server will not run; ``status`` is its HTTP code, ``reason`` a metric label."""

    status = 503
    reason = "rejected"
    retry_after: int | None = None


class QueueFull(Rejected):
    status = 429
    reason = "queue_full"
    retry_after = 1


class DeadlineExceeded(Rejected):
    status = 504
    reason = "deadline"


class Draining(Rejected):
    status = 503
    reason = "draining"


def retry_after_s(queued: int, images_per_s: float) -> int:
    """Seconds until a full queue has room again, for a ``Retry-After`` header (at least 1)."""
    return max(1, math.ceil(queued / images_per_s)) if images_per_s > 0 else 1
