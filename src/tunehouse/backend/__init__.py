"""How a search reaches Ray: an embedded local Ray, the local service, an attached cluster, or
Ray Client.

``backend_for(address)`` chooses once; the driver only ever talks to the ``Backend`` it got.
Add a way of running by adding one module with a ``Backend`` subclass and teaching
``backend_for`` its address.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable

from tunehouse.backend._attach import DEFAULT_CONNECT_TIMEOUT_S
from tunehouse.backend._base import Backend
from tunehouse.backend.client import RayClient
from tunehouse.backend.cluster import AttachedCluster
from tunehouse.backend.local import EmbeddedRay
from tunehouse.backend.service import LocalService, service_backend

__all__ = ["DEFAULT_CONNECT_TIMEOUT_S", "AttachedCluster", "Backend", "EmbeddedRay", "LocalService", "RayClient",
           "backend_for"]


def _stderr_line(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def backend_for(address: str | None, *, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
                own_signals: bool = False, service: bool = True,
                say: Callable[[str], None] = _stderr_line) -> Backend:
    """``address`` (else ``$RAY_ADDRESS``): none -> the local service when it is up (``tunehouse
    up``; ``service=False`` bypasses it), else an embedded Ray; ``local`` -> an embedded Ray;
    ``ray://`` -> Ray Client; anything else (``HOST:PORT``, ``auto``) -> attach to that cluster.
    Using the service, or finding its state stale, is said in one line through ``say``.

    Raises:
        SpecError: on ``--connect-timeout`` when it is not a positive number of seconds.
    """
    if not (isinstance(connect_timeout, (int, float)) and 0 < connect_timeout < math.inf):
        from tunehouse.errors import SpecError

        raise SpecError(f"expected a positive number of seconds, got {connect_timeout!r}", field="--connect-timeout")
    target = address or os.environ.get("RAY_ADDRESS") or None
    if target is None and service:
        found = service_backend(say, own_signals=own_signals, connect_timeout=connect_timeout)
        if found is not None:
            return found
    if target is None or target == "local":
        return EmbeddedRay(own_signals=own_signals)
    kind = RayClient if target.startswith("ray://") else AttachedCluster
    return kind(target, own_signals=own_signals, connect_timeout=connect_timeout)
