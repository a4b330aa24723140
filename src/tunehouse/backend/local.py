"""An embedded Ray sized to this machine: started by the driver, its processes children of it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any, NoReturn

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
            ray.init(address="local", include_dashboard=False, _system_config=_QUICK_CONNECT, **INIT_KWARGS)

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


#: The raylet's first connection to its own object store races the store's thread; a lost race
#: cost a whole second (Ray's default retry wait, 1,000 ms x 10), seen in about half of the
#: embedded starts here. The same 10 s budget, in 20 ms steps.
_QUICK_CONNECT = {"raylet_client_connect_timeout_milliseconds": 20, "raylet_client_num_connect_attempts": 500}


def _skip_api_server(node: Any, **_: Any) -> None:
    node._webui_url = None  # what Ray records when its API server fails to start


#: Processes of Ray's head node that an embedded, fixed-size, dashboard-less Ray never uses:
#: the API server (dashboard, job server, state API), the autoscaler's monitor (one node, nothing
#: to scale) and the log monitor (``log_to_driver=False``: worker output is only ever in the
#: session's log files). Each is a Python process importing Ray that competes for the cores with
#: the driver's imports while Ray starts, and ray.init waits for the API server to be up.
_SKIPPED = {"start_api_server": _skip_api_server, "start_monitor": lambda node: None,
            "start_log_monitor": lambda node: None}


@contextlib.contextmanager
def _minimal_ray() -> Iterator[None]:
    """Start an embedded Ray as its minimal install would, without the processes it never uses.

    With the dashboard's dependencies installed (the `cluster` extra) Ray starts a full API
    server and a dashboard agent per node even with include_dashboard=False. Ray decides by one
    function (``get_dashboard_dependency_error``); we answer it for the duration of our own
    ray.init only, and skip the ``_SKIPPED`` processes (their ``Node`` methods) likewise.
    Measured here, ray.init alone: 2.2-3.3 s before, 1.55 s with these and ``_QUICK_CONNECT``.
    A Ray without one of these hooks starts that part as it is. Cluster mode never comes here.
    """
    patched: list[tuple[Any, str, Any]] = []
    try:
        from ray._private import node as ray_node
        from ray._private import utils as ray_utils
    except ImportError:  # a Ray laid out otherwise: start it as it is
        yield
        return
    hooks = [(ray_utils, "get_dashboard_dependency_error",
              lambda: ImportError("tunehouse: embedded Ray, no dashboard"))]
    hooks += [(ray_node.Node, name, fn) for name, fn in _SKIPPED.items()]
    for owner, name, fn in hooks:
        if callable(getattr(owner, name, None)):
            patched.append((owner, name, getattr(owner, name)))
            setattr(owner, name, fn)
    try:
        yield
    finally:
        for owner, name, original in patched:
            setattr(owner, name, original)
