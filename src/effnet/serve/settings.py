"""The knobs of ``effnet serve`` (its command-line options have the same names)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeSettings:
    """The knobs of ``effnet serve`` (its options have the same names)."""

    max_batch: int = 8
    max_delay_ms: float = 5.0
    max_queue: int = 64
    timeout_s: float = 10.0
    max_body_mb: float = 8.0
    # Decoded pixels per image: 40 megapixels is ~120 MB of RGB, past any photo a classifier
    # needs (JPEGs above it are decoded at 1/2..1/8 scale instead, see data.images).
    max_pixels: int = 40_000_000
    runtime: str = "auto"
    device: str | None = None
    threads: int = 0                # runtime threads (0: every core)

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_queue"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("timeout_s", "max_body_mb"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_delay_ms < 0:
            raise ValueError(f"max_delay_ms must be at least 0, got {self.max_delay_ms}")

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)
