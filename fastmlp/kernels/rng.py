"""Counter-based random numbers: a value depends only on (seed, counter a, counter b).

So noise and dropout masks do not depend on thread scheduling or chunking.
splitmix64's finaliser (Steele, Lea & Flood 2014) mixes the counters.
"""
import numpy as np

from .._config import JIT, kernel

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TWO_M53 = 1.0 / 9007199254740992.0  # 2^-53


@kernel(**JIT)
def mix64(x):
    """splitmix64 finaliser: a bijective avalanche of the uint64 x."""
    z = x + _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@kernel(**JIT)
def stream_key(seed, a):
    """The part of (seed, a, b)'s hash that does not depend on b: compute it once per
    stream (an update, a layer) and draw element b with uniform_at / normal_at."""
    return mix64(mix64(np.uint64(seed)) ^ np.uint64(a))


@kernel(**JIT)
def uniform_at(key, b):
    """Uniform float64 in (0, 1) for counter b of the stream `key` (see stream_key)."""
    return (np.float64(mix64(np.uint64(key) ^ np.uint64(b)) >> _S11) + 0.5) * _TWO_M53


@kernel(**JIT)
def normal_at(key, b):
    """Standard normal float64 for counter b of the stream `key` (Box-Muller on the
    uniforms of counters 2b and 2b + 1)."""
    u1 = uniform_at(key, 2 * b)
    u2 = uniform_at(key, 2 * b + 1)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


@kernel(**JIT)
def normal_pair_at(key, m):
    """Two independent standard normals (float64) for pair m of the stream `key`: both
    outputs of Box-Muller, r cos(theta) and r sin(theta), on the uniforms of counters
    2m and 2m + 1 (the first equals normal_at(key, m))."""
    r = np.sqrt(-2.0 * np.log(uniform_at(key, 2 * m)))
    theta = 2.0 * np.pi * uniform_at(key, 2 * m + 1)
    return r * np.cos(theta), r * np.sin(theta)


@kernel(**JIT)
def add_normal_noise(g, start, sigma, key):
    """g[i] += sigma z_(start + i), i < len(g), z_j standard normal from the stream `key`:
    elements 2m and 2m + 1 take the two outputs of normal_pair_at(key, m), so a value
    depends on its global index only (not on where a block starts)."""
    t = g.dtype.type
    n = g.shape[0]
    i = 0
    if start % 2 == 1:  # the first element is the second of its pair
        g[0] += t(sigma * normal_pair_at(key, start // 2)[1])
        i = 1
    while i + 1 < n:
        z0, z1 = normal_pair_at(key, (start + i) // 2)
        g[i] += t(sigma * z0)
        g[i + 1] += t(sigma * z1)
        i += 2
    if i < n:
        g[i] += t(sigma * normal_pair_at(key, (start + i) // 2)[0])


@kernel(**JIT)
def uniform(seed, a, b):
    """Uniform float64 in (0, 1) for integer counters (seed, a, b)."""
    return uniform_at(stream_key(seed, a), b)
