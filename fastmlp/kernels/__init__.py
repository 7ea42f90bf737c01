"""Numba kernels: per-chunk compute (serial) and the compiled training loop.

Every kernel is dtype-generic: it compiles once for float32 (training) and once
for float64 (gradient checks). Scalars used in per-element math are cast to the
array dtype first (``X.dtype.type(...)``) so float32 work never silently runs in
float64.
"""
