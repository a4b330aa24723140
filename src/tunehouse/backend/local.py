"""An embedded Ray sized to this machine: started by the driver, its processes children of it."""

from __future__ import annotations

import contextlib
import os
from typing import NoReturn

from tunehouse.backend._base import INIT_KWARGS, Backend, _flush


class EmbeddedRay(Backend):
    """``ray.init(address="local")``: a new Ray of this process's own, never one a ``ray start``
    left behind on this machine. (Preloading the model library into workers via
    ``preload_python_modules`` was measured and made runs about 2 s slower: the workers'
    imports then compete with the driver's.)"""

    kind = "embedded local Ray"

    def _init(self, extra_paths: list[str]) -> None:
        import ray

        # Workers of an embedded Ray inherit the driver's environment: let them import a
        # user's training function that sits next to the spec or in the working directory.
        paths = [*extra_paths, os.environ.get("PYTHONPATH", "")]
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        with _minimal_ray():
            ray.init(address="local", include_dashboard=False, **INIT_KWARGS)

    def check_fits(self, bundle: dict[str, float]) -> None:
        """An embedded Ray has the nodes it will ever have: a trial that fits none would wait forever.

        (Tune warns about missing CPUs and GPUs only, and not at all with its output off.)
        """
        import ray

        from tunehouse.errors import SpecError

        nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
        fields = {"CPU": "resources.cpus", "GPU": "resources.gpus", "memory": "resources.memory_mb"}
        for name, need in bundle.items():
            if not need or any(r.get(name, 0) >= need for r in nodes):
                continue
            have = max((r.get(name, 0) for r in nodes), default=0)
            if name == "memory":
                need, have, unit = need / 2**20, have / 2**20, " MB"
            else:
                unit = ""
            raise SpecError(f"a trial needs {need:g}{unit} {name} but this machine's Ray offers at most {have:g}{unit}",
                            field=fields.get(name, f"resources.custom.{name}"))

    def pending_trials(self, bundle: dict[str, float]) -> int:
        """Twice the trials that fit at once: when a trial ends, the next one of its slot is
        ready. A Ray of fixed size never grows for a queue, and Tune's own 200 made a grid or
        random search create 200 trials and placement groups before its first trial ran."""
        import ray

        total = ray.cluster_resources()
        fits = min((int(total.get(name, 0) // need) for name, need in bundle.items() if need), default=1)
        return max(2, 2 * fits)

    def exit(self, code: int) -> NoReturn:
        """Kill this process's children (the embedded Ray it started) and exit.

        Ray's graceful shutdown stops its processes one after another with a SIGTERM and up to
        a second's wait each (1.1-1.4 s measured here), longer than a short search's trials.
        Everything of an embedded Ray is a child of this process and nothing in it is still
        needed: the catalog is flushed and Tune has synced its storage.
        """
        _flush()
        import psutil

        for p in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                p.kill()  # SIGKILL is final; init reaps the orphans
        os._exit(code)


@contextlib.contextmanager
def _minimal_ray():
    """Start an embedded Ray as its minimal install would, even with ray[default] present.

    With the dashboard's dependencies installed (the `cluster` extra) Ray starts a full API
    server and a dashboard agent per node even with include_dashboard=False: measured here,
    +0.3-1.0 s of ray.init for a laptop run that shows no dashboard. Ray decides by one
    function (``get_dashboard_dependency_error``); we answer it for the duration of our own
    ray.init only. Cluster mode never comes here.
    """
    try:
        from ray._private import utils as ray_utils

        original = ray_utils.get_dashboard_dependency_error
    except (ImportError, AttributeError):  # a Ray without this hook: start it as it is
        yield
        return
    ray_utils.get_dashboard_dependency_error = lambda: ImportError("tunehouse: embedded Ray, no dashboard")
    try:
        yield
    finally:
        ray_utils.get_dashboard_dependency_error = original
