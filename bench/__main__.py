"""python -m bench [name ...]: run the named benchmarks (default: all)."""

from __future__ import annotations

import argparse
import importlib
import sys

BENCHMARKS = {
    "intake": "bench.intake",
    "router": "bench.router",
    "sla": "bench.sla",
    "feedback": "bench.feedback",
    "e2e": "bench.e2e",
    "outbound": "bench.outbound",
    "console-live": "bench.console_live",
}
# Run only when named: `python -m bench chaos` (make chaos) kills services, Kafka and PostgreSQL.
ON_REQUEST = {"chaos": "bench.chaos", "scale": "bench.scale"}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "names",
        nargs="*",
        help=f"any of {', '.join(BENCHMARKS | ON_REQUEST)} (default: all but chaos)",
    )
    parser.add_argument("--duration", type=int, default=None, help="seconds per load run")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(BENCHMARKS) - set(ON_REQUEST))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    for name in args.names or list(BENCHMARKS):
        module = importlib.import_module((BENCHMARKS | ON_REQUEST)[name])
        module.main(duration=args.duration)
    return 0


if __name__ == "__main__":
    sys.exit(main())
