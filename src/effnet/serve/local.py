"""``effnet serve --backend local``: uvicorn in this process, with a drain on SIGTERM/SIGINT.

uvicorn's own shutdown closes the listening socket at once; a load balancer polling
``/v2/health/ready`` would only see connection errors. Here the first signal turns readiness
false and refuses new inference (503) while accepted requests finish; then uvicorn shuts
down as usual (open responses complete, the service closes) and the process exits 0. A
second signal stops at once.
"""

from __future__ import annotations

import asyncio
from types import FrameType

from .app import create_app
from .service import Service


def serve_local(service: Service, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
                log_level: str = "info", on_ready=None) -> int:  # type: ignore[no-untyped-def]
    """Serve until a signal; returns the exit status (0 after a clean drain)."""
    try:
        import uvicorn
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("effnet serve needs uvicorn: pip install 'effnet[serve]'") from error
    if workers != 1:
        # uvicorn's workers re-import an app from a string: each would load its own model copy
        # and split the cores; one process with a batcher uses them better (docs/serve.md).
        raise ValueError("--workers above 1 runs several processes, each with its own model; use --backend ray "
                         "--replicas N for that")

    class DrainingServer(uvicorn.Server):
        drain_started = False

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if self.drain_started:  # a second signal: stop now
                self.force_exit = True
                self.should_exit = True
                return
            self.drain_started = True
            service.begin_drain()
            loop.call_soon_threadsafe(lambda: loop.create_task(self._drain_then_exit()))

        async def _drain_then_exit(self) -> None:
            drained = await service.batcher.wait_idle(service.settings.timeout_s)
            if not drained:
                print(f"effnet serve: {service.batcher.depth} requests still open after {service.settings.timeout_s:g} s; "
                      "stopping anyway", flush=True)
            self.should_exit = True

        async def startup(self, sockets=None) -> None:  # type: ignore[no-untyped-def]
            await super().startup(sockets)
            if on_ready is not None and not self.should_exit:
                on_ready(self)

    config = uvicorn.Config(create_app(service), host=host, port=port, log_level=log_level, access_log=False,
                            timeout_graceful_shutdown=max(1, int(service.settings.timeout_s)),
                            limit_concurrency=None, lifespan="on")
    server = DrainingServer(config)
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.serve())
    finally:
        loop.close()
    return 0 if server.started else 1
