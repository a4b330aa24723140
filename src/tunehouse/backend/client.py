"""Ray Client (``ray://HOST:10001``): Tune's loop runs on the cluster, driven from here."""

from __future__ import annotations

from tunehouse.backend.cluster import AttachedCluster


class RayClient(AttachedCluster):
    """Tune runs ``fit()`` on the cluster with a copy of the catalog callback, which writes the
    same catalog through a writer of its own; the driver reads the trials back from there."""

    kind = "Ray Client"
    remote_loop = True
