"""The counter-based generator (kernels/rng.py) against a plain-Python splitmix64.

Dropout masks, augmentation and gradient noise draw from it, and the saved /
resumed runs rely on its values not changing, so they are pinned here to an
independent transcription (Python integers modulo 2^64, written for clarity).
"""
import math
from types import SimpleNamespace

import numpy as np
import pytest
from _helpers import python_callable

from fastmlp.kernels import rng as _rng

rng = SimpleNamespace(**{name: python_callable(getattr(_rng, name)) for name in (
    "stream_key", "uniform_at", "uniform", "normal_at", "normal_pair_at", "add_normal_noise")})

MASK = (1 << 64) - 1


def splitmix64(x):
    """Steele, Lea & Flood (2014): z = x + golden; two xor-shift-multiply rounds."""
    z = (x + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def uniform_py(seed, a, b):
    h = splitmix64(splitmix64(splitmix64(seed & MASK) ^ (a & MASK)) ^ (b & MASK))
    return ((h >> 11) + 0.5) / 2.0 ** 53


def normal_py(seed, a, b):
    u1, u2 = uniform_py(seed, a, 2 * b), uniform_py(seed, a, 2 * b + 1)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


COUNTERS = [(0, 0, 0), (7, 3, 12345), (123456789, 1 << 40, 99), (42, (2 << 40) + 5, 7 * 784)]


@pytest.mark.parametrize("seed,a,b", COUNTERS)
def test_uniform_and_normal_match_plain_python(seed, a, b):
    key = np.uint64(rng.stream_key(seed, a))   # as the kernels hold it
    assert rng.uniform_at(key, b) == uniform_py(seed, a, b)
    assert rng.uniform(seed, a, b) == uniform_py(seed, a, b)
    assert rng.normal_at(key, b) == pytest.approx(normal_py(seed, a, b), rel=1e-12)


@pytest.mark.parametrize("seed,a,b", COUNTERS)
def test_normal_pair_matches_plain_python(seed, a, b):
    z0, z1 = rng.normal_pair_at(np.uint64(rng.stream_key(seed, a)), b)
    u1, u2 = uniform_py(seed, a, 2 * b), uniform_py(seed, a, 2 * b + 1)
    r = math.sqrt(-2.0 * math.log(u1))
    assert z0 == pytest.approx(r * math.cos(2 * math.pi * u2), rel=1e-12, abs=1e-14)
    assert z1 == pytest.approx(r * math.sin(2 * math.pi * u2), rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("start,n", [(0, 9), (1, 9), (4, 1), (5, 1), (7, 8)])
def test_noise_depends_on_the_global_index_only(start, n):
    """Element j of a block starting at `start` gets pair (start + j) // 2's output
    (start + j) % 2, whatever the block boundaries."""
    key = np.uint64(rng.stream_key(3, 8))
    g = np.zeros(n)
    rng.add_normal_noise(g, start, 2.0, key)
    expect = [2.0 * rng.normal_pair_at(key, (start + j) // 2)[(start + j) % 2] for j in range(n)]
    np.testing.assert_array_equal(g, expect)


def test_uniforms_are_uniform():
    key = np.uint64(rng.stream_key(5, 17))
    u = np.array([rng.uniform_at(key, b) for b in range(20000)])
    assert 0.0 < u.min() and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005
