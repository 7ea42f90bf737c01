"""The kernel cache cannot go stale (fastmlp/_config.py): its folder is keyed by a hash of
every kernel source, so after a change to any kernel file, a callee's included, a fresh
process compiles anew instead of loading code built from the old sources. Also covers
the BLAS-only GEMM path (FASTMLP_GEMM=blas) in a process of its own."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

import fastmlp as fm
from fastmlp import _config

PACKAGE = Path(fm.__file__).parent

# A fixed 2-layer net; prints the predictions, whether the tiles are on, the cache folder.
SCRIPT = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import fastmlp as fm
from fastmlp import _config
from fastmlp.kernels import tile_gemm
rng = np.random.default_rng(0)
X = rng.standard_normal((40, 30))
m = fm.Sequential([fm.Dense(48), fm.ReLU(), fm.Dense(3), fm.Softmax()], dtype=np.float64, seed=0)
m.build(30)
print(json.dumps({"pred": m.predict(X).tolist(), "tiles": tile_gemm.TILES,
                  "folder": _config.CACHE_FOLDER, "file": fm.__file__}))
"""


def _run(root, cache, gemm="blas"):
    env = dict(os.environ, FASTMLP_CACHE_DIR=str(cache), FASTMLP_GEMM=gemm)
    env.pop("NUMBA_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(root)], env=env, check=True,
                         capture_output=True, text=True, cwd=root).stdout
    return json.loads(out.strip().splitlines()[-1])


def _reference(relu_outputs_zero):
    """The same net's predictions in plain numpy (ReLU, or the changed ReLU giving 0)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 30))
    m = fm.Sequential([fm.Dense(48), fm.ReLU(), fm.Dense(3), fm.Softmax()], dtype=np.float64,
                      seed=0)
    m.build(30)
    W1, b1, W2, b2 = m.get_weights()
    H = np.zeros((40, 48)) if relu_outputs_zero else np.maximum(X @ W1 + b1, 0)
    Z = H @ W2 + b2
    e = np.exp(Z - Z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_a_changed_callee_is_never_loaded_from_the_old_cache(tmp_path):
    root = tmp_path / "src"
    shutil.copytree(PACKAGE, root / "fastmlp", ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "cache"
    first = _run(root, cache)
    assert Path(first["file"]).parent == root / "fastmlp"
    assert first["tiles"] is False   # FASTMLP_GEMM=blas: every product by BLAS
    np.testing.assert_allclose(first["pred"], _reference(False), rtol=1e-12)
    assert _run(root, cache)["pred"] == first["pred"]   # loaded from the cache

    # the ReLU lives in activations.py; dense and BN kernels (other files) inline it
    act = root / "fastmlp" / "kernels" / "activations.py"
    text = act.read_text()
    fused = "                row[j] = v if v > zero else zero\n"
    assert text.count(fused) == 1
    act.write_text(text.replace(fused, "                row[j] = zero\n"))
    changed = _run(root, cache)
    assert changed["folder"] != first["folder"]
    np.testing.assert_allclose(changed["pred"], _reference(True), rtol=1e-12)
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [Path(first["folder"]).name, Path(changed["folder"]).name])


def test_the_cache_folder_names_the_gemm_choice_and_the_sources():
    folder = Path(_config.CACHE_FOLDER)
    assert folder.parent == _config.cache_root()
    assert _config.sources_hash() in folder.name
    assert folder.name.endswith("-" + _config.GEMM_MODE)


def test_tiles_and_blas_give_the_same_predictions(tmp_path):
    """The default GEMM path (tiles where the host has AVX2 + FMA) against BLAS."""
    root = PACKAGE.parent
    auto = _run(root, tmp_path / "cache", gemm="auto")
    blas = _run(root, tmp_path / "cache", gemm="blas")
    np.testing.assert_allclose(auto["pred"], blas["pred"], rtol=1e-10)
    np.testing.assert_allclose(blas["pred"], _reference(False), rtol=1e-12)
