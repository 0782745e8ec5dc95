"""Shared timing and reporting helpers of the reference benchmarks."""
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


def result_row(batch, train_seconds, inference_seconds):
    """One entry of the "alexnet" list, with kiln-bench's field names."""
    return {"batch": batch, "train_step_s": round(train_seconds, 4),
            "train_images_per_s": round(batch / train_seconds, 2),
            "inference_s": round(inference_seconds, 4),
            "inference_images_per_s": round(batch / inference_seconds, 2)}
