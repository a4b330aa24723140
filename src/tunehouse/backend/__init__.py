"""How a search reaches Ray: an embedded local Ray, an attached cluster, or Ray Client.

``backend_for(address)`` chooses once; the driver only ever talks to the ``Backend`` it got.
Add a way of running (say, a local service) by adding one module with a ``Backend`` subclass
and teaching ``backend_for`` its address.
"""

from __future__ import annotations

import math
import os

from tunehouse.backend._attach import DEFAULT_CONNECT_TIMEOUT_S
from tunehouse.backend._base import Backend
from tunehouse.backend.client import RayClient
from tunehouse.backend.cluster import AttachedCluster
from tunehouse.backend.local import EmbeddedRay

__all__ = ["DEFAULT_CONNECT_TIMEOUT_S", "AttachedCluster", "Backend", "EmbeddedRay", "RayClient", "backend_for"]


def backend_for(address: str | None, *, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
                own_signals: bool = False) -> Backend:
    """``address`` (else ``$RAY_ADDRESS``): none or ``local`` -> an embedded Ray, ``ray://`` ->
    Ray Client, anything else (``HOST:PORT``, ``auto``) -> attach to that cluster.

    Raises:
        SpecError: on ``--connect-timeout`` when it is not a positive number of seconds.
    """
    if not (isinstance(connect_timeout, (int, float)) and 0 < connect_timeout < math.inf):
        from tunehouse.errors import SpecError

        raise SpecError(f"expected a positive number of seconds, got {connect_timeout!r}", field="--connect-timeout")
    target = address or os.environ.get("RAY_ADDRESS") or None
    if target is None or target == "local":
        return EmbeddedRay(own_signals=own_signals)
    kind = RayClient if target.startswith("ray://") else AttachedCluster
    return kind(target, own_signals=own_signals, connect_timeout=connect_timeout)
