"""Random values for synthetic weights, drawn the fastest ways numpy offers (every writer shares them)."""

from __future__ import annotations

import numpy as np


def random_bytes(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` writable random bytes; raw 64-bit draws are the fastest source numpy offers."""
    return rng.bit_generator.random_raw(-(-n // 8)).view(np.uint8)[:n]


def random_uint16(rng: np.random.Generator, n: int) -> np.ndarray:
    return random_bytes(rng, 2 * n).view(np.uint16)


def normal_f16_table(rng: np.random.Generator) -> np.ndarray:
    """65536 fp16 draws of normal * 0.02 (HF's initializer_range). Indexed by random uint16s
    (:func:`normal_f16`) they fill a matrix several times faster than a normal draw per value, which
    matters for 70B (69 G values); each value is still N(0, 0.02)."""
    return (rng.standard_normal(1 << 16, dtype=np.float32) * 0.02).astype(np.float16)


def normal_f16(rng: np.random.Generator, table: np.ndarray, n: int) -> np.ndarray:
    return table[random_uint16(rng, n)]
