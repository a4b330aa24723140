"""An existing Ray cluster, attached to by its GCS address (``HOST:PORT`` or ``auto``)."""

from __future__ import annotations

from tunehouse.backend._attach import DEFAULT_CONNECT_TIMEOUT_S, attach, connect_budget
from tunehouse.backend._base import INIT_KWARGS, Backend


class AttachedCluster(Backend):
    """The driver runs here, its trials on the cluster's nodes; reaching it is bounded by a timeout."""

    kind = "Ray cluster"

    def __init__(self, address: str, *, own_signals: bool = False,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S) -> None:
        super().__init__(address, own_signals=own_signals)
        self.connect_timeout = connect_timeout

    def _connecting(self):
        return connect_budget(self.connect_timeout)

    def _init(self, extra_paths: list[str]) -> None:
        attach(self.address, self.connect_timeout, INIT_KWARGS, own_signals=self.own_signals)
