"""Compile-time switches (Plan.switches, kernels/loop.run_batches): a fit compiles
the kernels of the features it uses and not the others.

Runs in a fresh process with Numba's cache off, so every kernel a fit needs is
compiled there and shows up in its dispatcher's signatures.
"""
import json
import os
import subprocess
import sys

SCRIPT = r"""
import json
import numpy as np
import fastmlp as fm
from fastmlp.kernels import augment, dropout, losses, optim

KERNELS = {"adam": optim.adam_block, "rmsprop": optim.rmsprop_block,
           "penalties": optim.prepare_block, "dropout": dropout.dropout_forward,
           "augment": augment.augment_batch, "mse": losses.mse}

def compiled():
    return {name: len(f.signatures) for name, f in KERNELS.items()}

X = np.random.default_rng(0).standard_normal((64, 6)).astype(np.float32)
y = np.arange(64) % 3
plain = fm.Sequential([fm.Dense(8), fm.BatchNorm(), fm.ReLU(), fm.Dense(3), fm.Softmax()], seed=0)
plain.fit(X, y, epochs=1, batch_size=16, optimizer=fm.SGD(0.1), verbose=0)
plain.evaluate(X, y)
after_plain = compiled()
rich = fm.Sequential([fm.Dense(8, l1=1e-3), fm.ReLU(), fm.Dropout(0.5), fm.Dense(3), fm.Softmax()],
                     seed=0)
rich.fit(X, y, epochs=1, batch_size=16, optimizer=fm.Adam(1e-3), verbose=0)
print(json.dumps([after_plain, compiled()]))
"""


def test_a_plain_fit_compiles_no_kernel_of_unused_features():
    env = dict(os.environ, FASTMLP_NO_CACHE="1")
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, check=True,
                         capture_output=True, text=True).stdout
    after_plain, after_rich = json.loads(out.strip().splitlines()[-1])
    assert all(n == 0 for n in after_plain.values()), after_plain
    # the switches turn on with the features: Adam's family, L1, dropout
    for name in ("adam", "rmsprop", "penalties", "dropout"):
        assert after_rich[name] >= 1, (name, after_rich)
    assert after_rich["augment"] == 0 and after_rich["mse"] == 0, after_rich
