"""Kernels called through C entries (kernels/c_entry.py): a body called through its
entry from a parallel loop computes what the body called directly computes, with
arrays, booleans, nested tuples, NamedTuples and None switches in its arguments;
integers of any type reach it as int64; a call whose argument types were never
linked fails to compile, naming the entry."""
from typing import NamedTuple

import numba
import numpy as np
import pytest
from numba import prange, types
from numba.core.errors import TypingError

from fastmlp.kernels import c_entry


class Scale(NamedTuple):
    factor: float
    shift: float


@numba.njit
def body(c, x, out, flag, pair, scale, switch):
    """Row c of out from row c of x; returns a uint8 that depends on every argument."""
    a, b = pair
    for j in range(x.shape[1]):
        out[c, j] = x[c, j] * scale.factor + scale.shift + a * b
    if flag:
        out[c, 0] = -1.0
    if switch is not None:
        out[c, 1] = -2.0
    return np.uint8(c + (1 if flag else 0))


def body_entry(args):
    return body(*c_entry.load_arguments(args))


call_body = c_entry.caller("body", types.uint8)


@numba.njit(parallel=True)
def through_entry(x, out, codes, scale, switch):
    for c in prange(x.shape[0]):
        codes[c] = call_body((c, x, out, c % 2 == 0, (np.int32(3), 0.5), scale, switch))


@numba.njit
def direct(x, out, codes, scale, switch):
    for c in range(x.shape[0]):
        codes[c] = body(c, x, out, c % 2 == 0, (3, 0.5), scale, switch)


def sample(x, out, switch):
    return (0, x, out, True, (0, 0.0), Scale(0.0, 0.0), switch)


@pytest.mark.parametrize("switch", [None, True])
def test_entry_from_a_parallel_loop_matches_the_direct_call(switch):
    rng = np.random.default_rng(0)
    x = rng.integers(-50, 50, size=(7, 5)).astype(np.float64)   # every result exact
    out, want = np.zeros_like(x), np.zeros_like(x)
    codes, want_codes = np.zeros(7, np.uint8), np.zeros(7, np.uint8)
    c_entry.link("body", body_entry, types.uint8, sample(x, out, switch))
    through_entry(x, out, codes, Scale(1.5, -0.25), switch)
    direct(x, want, want_codes, Scale(1.5, -0.25), switch)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(codes, want_codes)
    assert (out[:, 1] == -2.0).all() == (switch is not None)


def test_canonical_makes_integers_int64_and_keeps_the_rest():
    tup = types.Tuple([types.uint64, types.IntegerLiteral(3), types.BooleanLiteral(True),
                       types.Tuple([types.int32, types.float64]), types.float32, types.none])
    assert c_entry.canonical(tup) == types.Tuple([
        types.int64, types.int64, types.boolean, types.Tuple([types.int64, types.float64]),
        types.float32, types.none])
    named = numba.typeof(Scale(1.0, 2.0))
    assert c_entry.canonical(named) == named


def test_an_unlinked_argument_type_fails_to_compile_naming_the_entry():
    call_unlinked = c_entry.caller("never_linked", types.void)

    @numba.njit
    def f(x):
        call_unlinked((x,))

    with pytest.raises(TypingError, match="never_linked"):
        f(np.zeros(3))


def test_link_is_idempotent_and_symbols_differ_by_type():
    x = np.zeros((2, 2))
    first = c_entry.link("body", body_entry, types.uint8, sample(x, x, None))
    again = c_entry.link("body", body_entry, types.uint8, sample(x, x, None))
    other = c_entry.link("body", body_entry, types.uint8, sample(x.astype(np.float32),
                                                                    x.astype(np.float32), None))
    assert first == again != other


def test_link_tells_apart_samples_that_differ_only_in_an_array_flag():
    """link remembers samples by sample_key: a read-only or Fortran-ordered array is a
    different Numba type, so it must reach a symbol of its own."""
    x = np.zeros((2, 2))
    frozen = x.copy()
    frozen.setflags(write=False)
    symbols = {c_entry.link("body", body_entry, types.uint8, sample(a, x, None))
               for a in (x, frozen, np.asfortranarray(np.zeros((2, 3))))}
    assert len(symbols) == 3
    assert c_entry.link("body", body_entry, types.uint8, sample(x.copy(), x, None)) in symbols
