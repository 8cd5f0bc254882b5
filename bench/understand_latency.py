"""Latency and accuracy of ``understand`` over the test corpus.

Run from the repository root::

    .venv/bin/python bench/understand_latency.py [--passes 20]

It reads every message once cold (first call per process, timed apart), warms up with one
more pass, then times each message over ``--passes`` passes and prints p50/p90/p99/max
per message in milliseconds, and the per-field accuracy on the corpus. The target is
p99 under 20 ms.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
TARGET_P99_MS = 20.0


def corpus_module() -> ModuleType:
    """The corpus loader shared with the tests, so both judge answers the same way."""
    sys.path.insert(0, str(ROOT))
    return importlib.import_module("tests.conversation.test_understand")


def percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=20, help="timed passes over the corpus")
    args = parser.parse_args()

    corpus = corpus_module()
    cases = corpus.load_corpus()

    started = time.perf_counter()
    cases[0].run()
    cold_ms = (time.perf_counter() - started) * 1000

    for case in cases:  # warm-up: caches and regex engines
        case.run()

    samples: list[float] = []
    for _ in range(args.passes):
        for case in cases:
            started = time.perf_counter()
            case.run()
            samples.append((time.perf_counter() - started) * 1000)
    samples.sort()

    p99 = percentile(samples, 0.99)
    print(f"understand: {len(cases)} messages x {args.passes} passes = {len(samples)} calls")
    print(f"  first call (cold): {cold_ms:.2f} ms")
    print(
        f"  per message: p50 {percentile(samples, 0.50):.3f} ms"
        f"  p90 {percentile(samples, 0.90):.3f} ms"
        f"  p99 {p99:.3f} ms"
        f"  max {samples[-1]:.3f} ms"
        f"  mean {statistics.fmean(samples):.3f} ms"
    )
    print(f"  target p99 < {TARGET_P99_MS:.0f} ms: {'met' if p99 < TARGET_P99_MS else 'MISSED'}")

    correct, failures = corpus.field_accuracy(cases)
    print("accuracy on the corpus:")
    for name in corpus.FIELDS:
        share = correct[name] / len(cases)
        print(f"  {name:<11} {correct[name]:>4}/{len(cases)} ({share:.1%})")
    for line in failures:
        print(f"  FAIL {line}")
    return 0 if p99 < TARGET_P99_MS and not failures else 1


if __name__ == "__main__":
    raise SystemExit(main())
