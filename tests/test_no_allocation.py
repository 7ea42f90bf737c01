"""The compiled training step allocates nothing: Numba's runtime allocation count of a
fit must not grow with the number of updates per compiled call."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent("""
    import numpy as np
    import fastmlp as fm
    from numba.core.runtime import rtsys
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2048, 20)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int) + 2 * (X[:, 1] > 0)
    m = fm.Sequential([fm.Dense(32), fm.BatchNorm(), fm.ReLU(), fm.Dense(16), fm.ReLU(),
                       fm.Dense(4), fm.Softmax()], seed=0)
    m.fit(X, y, epochs=1, batch_size=64, optimizer=fm.Adam(), verbose=0)  # compile
    # one compiled call per epoch: each call unboxes its array arguments, which Numba
    # counts as allocations, and fit sizes its calls by time; an explicit thread count
    # makes no 1-update calls to choose threads
    fm.training.EpochRunner.call_steps = lambda self: self.steps_per_epoch
    counts = []
    for batch in (256, 16):   # 8 vs 128 updates in the single compiled call of each epoch
        s0 = rtsys.get_allocation_stats()
        m.fit(X, y, epochs=2, batch_size=batch, verbose=0, n_threads=2)
        s1 = rtsys.get_allocation_stats()
        counts.append(s1.alloc - s0.alloc)
    print(*counts)
""")


def test_training_steps_do_not_allocate():
    env = dict(os.environ, NUMBA_NRT_STATS="1")
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, check=True, cwd=root).stdout.split()
    few_steps, many_steps = (int(v) for v in out)
    # 16x more updates per call; any per-step allocation would add >= 240 allocations.
    assert many_steps == few_steps, (few_steps, many_steps)
