"""Whether this machine's BLAS computes a matrix product block by block bit for bit as in one call.

The blockwise ranking (`evaluation.distances.topk`, `evaluate_embeddings`, `rerank`) is exact to the
last bit only where it is: OpenBLAS's AVX-512 kernels are (the machines the project was built on),
its AVX2 kernels are not for blocks of a few rows (the last bit of a distance can change, and with it
the order of near-tied gallery items). Tests of "blocks do not change the result" assert equality
where the BLAS allows it and, elsewhere, that the difference stays at rounding level.
"""

from __future__ import annotations

import functools

import numpy as np

from reid_export.evaluation import blocks


@functools.cache
def blocks_are_bit_identical() -> bool:
    rng = np.random.default_rng(0)
    q = blocks.prepare(rng.standard_normal((64, 128)).astype(np.float32), "cosine")
    g = blocks.prepare(rng.standard_normal((300, 128)).astype(np.float32), "cosine")
    whole = blocks.distance_block(q, g, "cosine").copy()
    for q0, q1 in blocks.spans(64, 2):
        for g0, g1 in blocks.spans(300, 2):
            part = blocks.distance_block(blocks.take(q, q0, q1), blocks.take(g, g0, g1), "cosine")
            if not np.array_equal(part, whole[q0:q1, g0:g1]):
                return False
    return True
