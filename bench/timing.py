"""Shared timing helper of the reference benchmarks."""
import time


def best_of(steps, fn):
    """Seconds of the fastest of `steps` calls of `fn`, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(max(steps, 1)):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
