"""How the driver reaches Ray: the base class and its rules."""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any, ClassVar, NoReturn

from tunehouse.errors import RunError

# Tune's own per-trial loggers (CSV/JSON/TensorBoard) cost more than a short trial: the
# catalog is our record (ray#48019, ray#11233). Set before ray.tune is imported; a user's
# explicit environment wins.
TUNE_ENV = {
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "TUNE_GLOBAL_CHECKPOINT_S": "30",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_DEDUP_LOGS": "0",
    # Tune's own SIGINT handler ends fit() normally on Ctrl-C, indistinguishable from a
    # finished search; without it KeyboardInterrupt reaches us and the experiment is
    # recorded as interrupted.
    "TUNE_DISABLE_SIGINT_HANDLER": "1",
    # A failed trial is one line on stderr (the tracker's) and its traceback goes to the
    # catalog; Tune's own traceback per failure made a failing search hundreds of lines.
    "TUNE_PRINT_ALL_TRIAL_ERRORS": "0",
}
INIT_KWARGS: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.ERROR, namespace="tunehouse")


class Backend(abc.ABC):
    """Where a search's trials run, decided once from the address (``backend_for``).

    Rules for an implementation (one module in ``tunehouse/backend/``):

    - ``start`` runs in the main thread (Ray's GCS client is bound to the thread that
      initialised it) and fails with one ``RunError`` line; when this process is already
      connected to Ray it uses that connection.
    - Everything that differs between an embedded Ray, an attached cluster and Ray Client
      lives here and nowhere else: which trials can ever be placed (``check_fits``), how many
      may wait for resources (``pending_trials``), whether
      Tune's loop, and with it the catalog callback, runs in this process (``remote_loop``),
      and how the process ends (``exit``). The driver asks; it never tests the run mode.
    - A backend decides nothing about the search.
    """

    #: what a run says it ran on
    kind: ClassVar[str]
    #: Tune's loop runs on the cluster (Ray Client): the callback there writes the catalog, and
    #: the driver reads the trials back from it
    remote_loop: ClassVar[bool] = False

    def __init__(self, address: str | None = None, *, own_signals: bool = False) -> None:
        """``own_signals``: this process's SIGINT/SIGTERM are the caller's to handle (the CLI)."""
        self.address, self.own_signals = address, own_signals

    def start(self, extra_paths: list[str]) -> None:
        """Connect (or start) Ray; ``extra_paths`` go on the workers' PYTHONPATH where we can."""
        for k, v in TUNE_ENV.items():
            os.environ.setdefault(k, v)
        with self._connecting():  # Ray reads some settings when it is first imported
            import ray

            if ray.is_initialized():
                return
            try:
                self._init(extra_paths)
            except RunError:
                raise
            except Exception as e:
                raise RunError(f"cannot start or reach Ray ({self.address or self.kind}): {first_lines(e)}") from e

    @contextlib.contextmanager
    def _connecting(self) -> Iterator[None]:
        yield

    @abc.abstractmethod
    def _init(self, extra_paths: list[str]) -> None:
        """``ray.init`` as this backend needs it."""

    def check_fits(self, bundle: dict[str, float]) -> None:  # noqa: B027  (optional hook)
        """Refuse (``SpecError``) a trial that can never be placed; a cluster may still grow."""

    def pending_trials(self, bundle: dict[str, float]) -> int | None:
        """How many trials Tune may keep waiting for resources (``TUNE_MAX_PENDING_TRIALS_PG``);
        None leaves Tune's own choice: for a grid or random search at least 200, so that an
        autoscaling cluster sees the demand."""
        return None

    def cluster_cpus(self) -> float:
        import ray

        return float(ray.cluster_resources().get("CPU", os.cpu_count() or 1))

    def cluster_nodes(self) -> int:
        import ray

        return sum(1 for n in ray.nodes() if n["Alive"])

    def shutdown(self) -> None:
        """Disconnect (an embedded Ray this process started stops with it)."""
        ray = sys.modules.get("ray")
        if ray is not None and ray.is_initialized():
            ray.shutdown()

    def exit(self, code: int) -> NoReturn:
        """End this process at once with ``code``, everything written (the CLI's last step)."""
        _flush()
        self.shutdown()
        _flush()
        os._exit(code)


def first_lines(e: BaseException) -> str:
    """An exception's first two non-empty lines, as one (Ray's errors run to screens)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return " ".join(lines[:2])[:500] if lines else type(e).__name__


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
