"""Command-line interface: argument parsing and output formatting only.

Each command calls the Python API; a ``TunehouseError`` becomes one line on stderr and exit
code 2 (bad input) or 1 (run-time failure). ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tunehouse import __version__
from tunehouse.errors import TunehouseError


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except TunehouseError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tunehouse",
        description="Hyperparameter search on Ray Tune, recorded in a Parquet catalog.",
    )
    p.add_argument("--version", action="version", version=f"tunehouse {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    r = sub.add_parser("run", help="run the search a spec describes", description=cmd_run.__doc__)
    r.add_argument("spec", help="YAML spec, e.g. search_spaces/quickstart.yaml")
    r.add_argument("--catalog", default=None, help="catalog folder or s3:// URI (default ./tunehouse-catalog or $TUNEHOUSE_CATALOG)")
    r.add_argument("--address", default=None, help="Ray cluster to attach to (auto, ray://HOST:10001); default: an embedded local Ray")
    r.add_argument("--num-samples", type=int, default=None, help="override search.num_samples")
    r.add_argument("--json", action="store_true", help="print the result as JSON")
    r.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    r.set_defaults(func=cmd_run)

    v = sub.add_parser("validate", help="check a spec (model, data, space) without running", description=cmd_validate.__doc__)
    v.add_argument("spec", nargs="+", help="YAML spec(s)")
    v.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    v.set_defaults(func=cmd_validate)

    s = sub.add_parser("schema", help="print the spec's JSON Schema", description=cmd_schema.__doc__)
    s.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_schema)
    return p


def cmd_run(args: argparse.Namespace) -> int:
    """Run a grid, random or Bayesian search on an embedded Ray (or --address) and print the best trial."""
    from tunehouse.driver import run, shutdown
    from tunehouse.errors import SpecError
    from tunehouse.spec import load_spec

    spec = load_spec(args.spec, check=False)
    if args.num_samples is not None:
        if args.num_samples < 1:
            raise SpecError(f"--num-samples must be >= 1 (got {args.num_samples})")
        spec.search.num_samples = args.num_samples
    from tunehouse.spec import _line_for, _line_map

    try:
        result = run(spec, address=args.address, catalog=args.catalog)
    except SpecError as e:
        if e.file is None:  # found while loading data or the model: point at the spec
            raise SpecError(e.reason, file=args.spec, field=e.field,
                            line=_line_for(_line_map(spec.text), e.field)) from None
        raise
    finally:
        shutdown()
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
        return 0
    _print_run(result)
    return 0


def _print_run(result: Any) -> None:
    n, failed = len(result.trials), len(result.failed)
    print(f"experiment {result.experiment_id}: {n} trials ({failed} failed) in {result.wall_s:.1f}s, "
          f"{result.algorithm} search, {result.mode} {result.objective}")
    b = result.best
    if b is None:
        print("no successful trial")
        return
    print(f"best trial {b.trial_id}")
    print(f"  {result.objective}: {b.metrics[result.objective]:.6g}"
          + (f" ± {b.metrics[result.objective + '_std']:.3g}" if result.objective + "_std" in b.metrics else ""))
    for k, v in b.params.items():
        print(f"  param {k} = {v!r}")
    for k, v in sorted(b.metrics.items()):
        if k != result.objective and not k.endswith("_std"):
            print(f"  {k}: {v:.6g}")
    for k, v in sorted(result.test_metrics.items()):
        print(f"  test {k}: {v:.6g}")
    u = b.usage
    if u:
        print(f"  usage: wall {u.get('wall_s', 0):.2f}s, cpu {u.get('cpu_s', 0):.2f}s, "
              f"peak rss {u.get('peak_rss_mb', 0):.0f} MB, node {str(u.get('node_id', ''))[:12]} pid {u.get('pid')}")
    if b.checkpoint:
        print(f"  checkpoint: {b.checkpoint}")


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate specs: YAML, fields, the model and its parameter names, metrics, and the data."""
    from tunehouse.spec import load_spec

    for path in args.spec:
        spec = load_spec(path, check=True)
        print(f"{path}: ok ({spec.task}, {spec.search.algorithm} search, {spec.search.num_samples} samples, "
              f"{len(spec.space)} params, objective {spec.mode} {spec.objective.name})")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of the experiment spec (for editors and CI)."""
    from tunehouse.spec import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0
