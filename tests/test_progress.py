"""fastmlp/progress.py: the compile notice (the progress bar itself is tqdm's)."""
import io

import numba
import numpy as np

from fastmlp.progress import CompileNotice


def fresh_kernel():
    """A new dispatcher each call: nothing compiled (or cached) for it yet."""
    @numba.njit
    def inner(x):
        return x * 2.0

    @numba.njit
    def outer(x):
        return inner(x) + 1.0   # compiling outer compiles inner: a nested compile

    return outer


def test_notice_brackets_the_first_compile_once():
    out = io.StringIO()
    kernel = fresh_kernel()
    with CompileNotice(verbose=1, stream=out):
        assert kernel(1.5) == 4.0
        assert kernel(np.float32(2.0)) == 5.0   # a second compile: not reported again
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("fastmlp: compiling kernels")
    assert lines[1].startswith("fastmlp: compiled in ") and lines[1].endswith(" s")


def test_notice_is_silent_without_a_compile_or_when_not_verbose():
    kernel = fresh_kernel()
    quiet = io.StringIO()
    with CompileNotice(verbose=0, stream=quiet):
        kernel(1.0)
    kernel(2)   # compiled now for both argument types
    compiled = io.StringIO()
    with CompileNotice(verbose=1, stream=compiled):
        kernel(3.0)
        kernel(4)
    assert quiet.getvalue() == "" and compiled.getvalue() == ""


def test_notice_stops_listening_after_the_block():
    out = io.StringIO()
    with CompileNotice(verbose=1, stream=out):
        pass
    fresh_kernel()(1.0)
    assert out.getvalue() == ""
