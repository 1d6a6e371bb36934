"""LiteRT interpreters, the one place their settings are read.

Both networks that run in LiteRT on a CPU (the classifier's embedding backbone,
`ml.embeddings`, and the detector's RetinaNet, `ml.serving`) get their
interpreter here, so one setting governs both:

RUSTWATCH_LITERT_THREADS  CPU threads per interpreter invoke (default: the CPUs this
                          process may run on, os.sched_getaffinity, else os.cpu_count();
                          a container pinned to 2 of 16 cores gets 2). Where other
                          processes share the cores (several workers, a training run),
                          fewer threads each keep them from waiting on one another.
"""

from __future__ import annotations

import os

__all__ = ["THREADS_ENV", "interpreter", "litert_threads", "usable_cpus"]

THREADS_ENV = "RUSTWATCH_LITERT_THREADS"


def litert_threads() -> int:
    """Threads per LiteRT invoke: $RUSTWATCH_LITERT_THREADS, else the usable CPU count."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if not raw:
        return usable_cpus()
    try:
        threads = int(raw)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ValueError(f"{THREADS_ENV} must be a whole number >= 1, not {raw!r}")
    return threads


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # no affinity on this platform (macOS, Windows)
        return os.cpu_count() or 1


def interpreter(model_content: bytes):
    """A LiteRT interpreter (XNNPACK kernels) of a converted model, `litert_threads()`
    threads; not yet planned (call `allocate_tensors`)."""
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=model_content, num_threads=litert_threads())
