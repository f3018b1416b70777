"""Parallel numba kernels on torch's thread count.

numba's OpenMP threading layer shares torch's OpenMP runtime, and launching a parallel kernel
sets the runtime's thread count to numba's own (every core): without this, one keyed call would
undo `torch.set_num_threads(1)` for all the torch work after it. Each parallel kernel is wrapped
with `on_torch_threads`, so it runs on torch's thread count and leaves that count as it was.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

Kernel = TypeVar("Kernel", bound=Callable)


def on_torch_threads(kernel: Kernel) -> Kernel:
    """Wrap a parallel numba kernel; without torch imported it runs on numba's own count."""

    @functools.wraps(kernel)
    def run(*args):
        torch = sys.modules.get("torch")
        if torch is None:
            return kernel(*args)
        import numba

        threads = torch.get_num_threads()
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        try:
            return kernel(*args)
        finally:
            torch.set_num_threads(threads)

    return run  # type: ignore[return-value]
