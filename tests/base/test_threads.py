"""Parallel numba kernels keep torch's thread count (they share one OpenMP runtime)."""

import numba
import numpy as np
import torch

from privcam.nets.ops.depthwise import keyed_depthwise_conv
from privcam.privacy import Key
from privcam.privacy.prp import prp_permutation


def test_kernels_run_on_and_keep_torch_thread_count():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        table = torch.from_numpy(np.arange(8, dtype=np.int32).reshape(4, 2) % 5)
        keyed_depthwise_conv(torch.randn(2, 5, 3), torch.randn(2, 3), None, table)
        prp_permutation(Key(bytes(32)), "threads", 1000)
        assert torch.get_num_threads() == 1
        assert numba.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
