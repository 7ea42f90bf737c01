"""Tests for fastmlp.datasets: bundled MNIST, shared sample files, generated IDX/CIFAR files,
and the download path against a local HTTP server (never the internet)."""
import gzip
import hashlib
import http.server
import io
import pickle
import socket
import tarfile
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from fastmlp import datasets as ds

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
# the reason names no folder: this one lies outside the repository (a development checkout's
# sibling), and a skip message should not show the tester's file system
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason="the development machine's shared sample data are absent "
                                "(not part of the repository)")
IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B,
             np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


# --- helpers ----------------------------------------------------------------------------
def idx_bytes(arr):
    arr = np.asarray(arr)
    big = arr.astype(arr.dtype.newbyteorder(">")) if arr.dtype.itemsize > 1 else arr
    header = bytes([0, 0, IDX_CODES[big.dtype], arr.ndim])
    return header + np.array(arr.shape, dtype=">u4").tobytes() + big.tobytes()


def write_idx(path, arr, gz=None):
    data = idx_bytes(arr)
    gz = str(path).endswith(".gz") if gz is None else gz
    Path(path).write_bytes(gzip.compress(data) if gz else data)
    return Path(path)


def make_idx_set(directory, n_train=30, n_test=10, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        X = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n).astype(np.uint8)
        write_idx(directory / f"{prefix}-images-idx3-ubyte{ext}", X)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{ext}", y)
        out[prefix] = (X, y)
    return out


def write_cifar_batch(path, X, y, str_keys=False, **extra):
    d = {"data": X, "labels": list(map(int, y)), "batch_label": "batch", **extra}
    if not str_keys:
        d = {k.encode(): (v.encode() if isinstance(v, str) else v) for k, v in d.items()}
    path.write_bytes(pickle.dumps(d, protocol=2))


def make_cifar_dir(directory, n=20, seed=0, str_keys=False):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    parts = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        X = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        y = np.arange(n) % 10
        write_cifar_batch(directory / name, X, y, str_keys=str_keys)
        parts[name] = (X, y)
    meta = {b"label_names": [f"c{i}".encode() for i in range(10)], b"num_vis": 3072}
    (directory / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return parts


def md5(path):
    return "md5:" + hashlib.md5(Path(path).read_bytes()).hexdigest()


# --- bundled MNIST (must never skip) -------------------------------------------------
def test_bundled_mnist_shapes_dtypes_labels():
    (X, y), (Xt, yt) = ds.load_mnist()
    assert X.shape == (8000, 28, 28) and Xt.shape == (2000, 28, 28)
    assert X.dtype == Xt.dtype == np.uint8
    assert y.shape == (8000,) and yt.shape == (2000,) and y.dtype == yt.dtype == np.int64
    assert y.min() == 0 and y.max() == 9 and yt.min() == 0 and yt.max() == 9
    assert np.all(np.bincount(y, minlength=10) > 600) and np.all(np.bincount(yt, minlength=10) > 150)
    assert X.min() == 0 and X.max() == 255 and X.flags.c_contiguous and X.flags.writeable


def test_bundled_mnist_flatten_and_files():
    (X, y), (Xt, yt) = ds.load_mnist()
    (Xf, yf), (Xtf, _) = ds.load_mnist(flatten=True)
    assert Xf.shape == (8000, 784) and Xtf.shape == (2000, 784)
    np.testing.assert_array_equal(Xf, X.reshape(8000, 784))
    np.testing.assert_array_equal(yf, y)
    pkg_data = Path(ds.__file__).parent / "data"
    assert (pkg_data / "README.md").is_file()
    assert len(list((pkg_data / "mnist10k").glob("*-idx?-ubyte.gz"))) == 4


# --- shared sample files ---------------------------------------------------------------
@needs_shared
def test_shared_mnist_matches_bundled():
    (X, y), (Xt, yt) = ds.load_mnist(SHARED / "mnist10k")
    (Xb, yb), (Xtb, ytb) = ds.load_mnist()
    for a, b in ((X, Xb), (y, yb), (Xt, Xtb), (yt, ytb)):
        np.testing.assert_array_equal(a, b)


@needs_shared
def test_cifar_sample():
    path = SHARED / "cifar10-sample"
    (X, y), (Xt, yt) = ds.load_cifar10(path, batches=(1,))
    assert X.shape == (1000, 3072) and Xt.shape == (500, 3072)
    assert X.dtype == Xt.dtype == np.uint8 and y.dtype == yt.dtype == np.int64
    assert np.bincount(y, minlength=10).tolist() == [100] * 10
    assert np.bincount(yt, minlength=10).tolist() == [50] * 10
    assert ds.cifar10_label_names(path) == ["airplane", "automobile", "bird", "cat", "deer",
                                            "dog", "frog", "horse", "ship", "truck"]
    with pytest.raises(FileNotFoundError, match=r"data_batch_2.*data_batch_5.*batches=\(1,\)"):
        ds.load_cifar10(path)
    with pytest.raises(FileNotFoundError, match="data_batch_2"):
        ds.cifar10_course_split(path)


# --- IDX reader --------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, ">i2", ">i4", ">f4", ">f8"])
def test_idx_round_trip(tmp_path, gz, dtype):
    arr = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
    f = write_idx(tmp_path / ("a.idx.gz" if gz else "a.idx"), arr, gz=gz)
    out = ds.read_idx(f)
    assert out.shape == arr.shape and out.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated(tmp_path, gz):
    data = idx_bytes(np.zeros((10, 28, 28), np.uint8))[:16 + 1000]
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    f = tmp_path / name
    f.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(ValueError, match=rf"{name}: expected 7840 bytes of pixel data, found 1000 \(file truncated\?\)"):
        ds.read_idx(f)


def test_idx_bad_headers_and_trailing_bytes(tmp_path):
    good = idx_bytes(np.zeros(5, np.uint8))
    cases = {"magic.idx": b"\x00\x00\x07\x01" + good[4:],  # unknown dtype code
             "pk.idx": b"PK\x03\x04" + good[4:],            # a zip file, not IDX
             "short.idx": b"\x00\x00",
             "dims.idx": b"\x00\x00\x08\x03\x00\x00",
             "trailing.idx": good + b"xyz",
             "huge.idx": b"\x00\x00\x08\x03" + np.array([60000, 28000, 28000], ">u4").tobytes()}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=name.replace(".", r"\.")):
            ds.read_idx(tmp_path / name)
    with pytest.raises(ValueError, match="magic number"):
        ds.read_idx(tmp_path / "pk.idx")
    with pytest.raises(ValueError, match=r"expected 5 bytes of label data, found 8 \(wrong header"):
        ds.read_idx(tmp_path / "trailing.idx")
    (tmp_path / "trailing.gz").write_bytes(gzip.compress(good + b"xyz"))
    with pytest.raises(ValueError, match=r"trailing\.gz: 3 unexpected bytes"):
        ds.read_idx(tmp_path / "trailing.gz")
    (tmp_path / "huge.gz").write_bytes(gzip.compress(cases["huge.idx"]))
    with pytest.raises(ValueError, match=r"huge\.gz: .*impossible"):
        ds.read_idx(tmp_path / "huge.gz")


def test_idx_bad_gzip(tmp_path):
    f = tmp_path / "t10k-labels-idx1-ubyte.gz"
    f.write_bytes(b"this is not gzip at all")
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz: bad or truncated gzip"):
        ds.read_idx(f)
    rng = np.random.default_rng(1)  # incompressible payload, so cutting it truncates the stream
    comp = gzip.compress(idx_bytes(rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)))
    g = tmp_path / "cut.gz"
    g.write_bytes(comp[: len(comp) // 2])
    with pytest.raises(ValueError, match=r"cut\.gz"):
        ds.read_idx(g)
    h = tmp_path / "crc.gz"
    h.write_bytes(comp[:-8] + bytes(8))  # damaged CRC/length trailer
    with pytest.raises(ValueError, match=r"crc\.gz"):
        ds.read_idx(h)


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_from_generated_dir(tmp_path, gz):
    ref = make_idx_set(tmp_path, gz=gz)
    (X, y), (Xt, yt) = ds.load_mnist(tmp_path)
    np.testing.assert_array_equal(X, ref["train"][0])
    np.testing.assert_array_equal(yt, ref["t10k"][1])
    assert y.dtype == np.int64
    (Xf, _), _ = ds.load_fashion_mnist(tmp_path, flatten=True)
    assert Xf.shape == (30, 784)


def test_load_mnist_inconsistent_files(tmp_path):
    make_idx_set(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(29, np.uint8))
    with pytest.raises(ValueError, match=r"30 images but .*train-labels-idx1-ubyte\.gz has 29 labels"):
        ds.load_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.full(30, 12, np.uint8))
    with pytest.raises(ValueError, match="out of range"):
        ds.load_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros((30, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="1-d uint8 labels"):
        ds.load_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        ds.load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="download=True"):
        ds.load_fashion_mnist(data_dir=tmp_path / "nothing")


# --- CIFAR-10 pickles --------------------------------------------------------------------
@pytest.mark.parametrize("str_keys", [False, True])
def test_cifar_round_trip_and_splits(tmp_path, str_keys):
    parts = make_cifar_dir(tmp_path / "cifar-10-batches-py", str_keys=str_keys)
    (X, y), (Xt, yt) = ds.load_cifar10(tmp_path)  # parent folder is accepted too
    assert X.shape == (100, 3072) and X.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(X[20:40], parts["data_batch_2"][0])
    np.testing.assert_array_equal(Xt, parts["test_batch"][0])
    (X31, _), _ = ds.load_cifar10(tmp_path / "cifar-10-batches-py", batches=(3, 1))
    np.testing.assert_array_equal(X31[:20], parts["data_batch_3"][0])
    assert ds.cifar10_label_names(tmp_path)[:2] == ["c0", "c1"]
    sp = ds.cifar10_course_split(tmp_path, mode="batch1")
    np.testing.assert_array_equal(sp.train[0], parts["data_batch_1"][0])
    np.testing.assert_array_equal(sp.val[0], parts["data_batch_2"][0])
    np.testing.assert_array_equal(sp.test[1], parts["test_batch"][1])
    sp = ds.cifar10_course_split(tmp_path, mode="all", n_val=15)
    assert sp.train[0].shape == (85, 3072) and sp.val[0].shape == (15, 3072)
    np.testing.assert_array_equal(sp.val[0], parts["data_batch_5"][0][5:])
    (a, b), (c, d), (e, f) = sp
    assert a.shape[0] == b.shape[0] == 85
    for bad in (dict(mode="all", n_val=100), dict(mode="all", n_val=0), dict(mode="x")):
        with pytest.raises(ValueError):
            ds.cifar10_course_split(tmp_path, **bad)
    for bad in ((), (0,), (6,), (1, 1)):
        with pytest.raises(ValueError, match="batches"):
            ds.load_cifar10(tmp_path, batches=bad)


def test_cifar_invalid_files(tmp_path):
    d = tmp_path / "c"
    make_cifar_dir(d)
    f = d / "data_batch_1"
    X = np.zeros((20, 3072), np.uint8)
    cases = [
        (b"garbage, not a pickle", "not a valid CIFAR-10 pickle"),
        (pickle.dumps({b"data": X}, protocol=2)[:-40], "not a valid CIFAR-10 pickle"),
        (b"cos\nsystem\n(S'echo pwned'\ntR.", "refusing to load global os.system"),
        (pickle.dumps([1, 2], protocol=2), "expected a pickled dict"),
        (pickle.dumps({b"data": X, b"fine_labels": [0] * 20}, protocol=2), r"missing key\(s\) \['labels'\]"),
        (pickle.dumps({b"data": X[:, :100], b"labels": [0] * 20}, protocol=2), r"shape \(n, 3072\)"),
        (pickle.dumps({b"data": X.astype(np.float32), b"labels": [0] * 20}, protocol=2), "uint8"),
        (pickle.dumps({b"data": X, b"labels": [0] * 19}, protocol=2), "20 images but 19 labels"),
        (pickle.dumps({b"data": X, b"labels": [10] * 20}, protocol=2), r"0\.\.9"),
    ]
    for content, message in cases:
        f.write_bytes(content)
        with pytest.raises(ValueError, match=message) as info:
            ds.load_cifar10(d, batches=(1,))
        assert "data_batch_1" in str(info.value)


# --- downloads (local HTTP server only) ------------------------------------------------
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "srv"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_mnist(server, tmp_path, monkeypatch):
    root, url = server
    ref = make_idx_set(root)
    sums = {p.name: md5(p) for p in root.iterdir()}
    monkeypatch.setattr(ds, "MNIST_BASE_URL", url)
    monkeypatch.setattr(ds, "MNIST_CHECKSUMS", sums)
    (X, y), (Xt, yt) = ds.load_mnist(download=True, data_dir=tmp_path / "dl")
    np.testing.assert_array_equal(X, ref["train"][0])
    assert sorted(p.name for p in (tmp_path / "dl" / "mnist").iterdir()) == sorted(sums)
    # Files are present and valid: a second call needs no network.
    monkeypatch.setattr(ds, "MNIST_BASE_URL", f"http://127.0.0.1:{_free_port()}/")
    (X2, _), _ = ds.load_mnist(download=True, data_dir=tmp_path / "dl")
    np.testing.assert_array_equal(X2, X)


def test_download_fashion_sha256_env_dir(server, tmp_path, monkeypatch):
    root, url = server
    make_idx_set(root, seed=3)
    sums = {p.name: "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest() for p in root.iterdir()}
    monkeypatch.setattr(ds, "FASHION_MNIST_BASE_URL", url.rstrip("/"))
    monkeypatch.setattr(ds, "FASHION_MNIST_CHECKSUMS", sums)
    monkeypatch.setenv("FASTMLP_DATA", str(tmp_path / "env"))
    assert ds.get_data_dir() == tmp_path / "env"
    (X, _), _ = ds.load_fashion_mnist(download=True)
    assert X.shape == (30, 28, 28)
    assert (tmp_path / "env" / "fashion_mnist" / "t10k-images-idx3-ubyte.gz").is_file()
    (X2, _), _ = ds.load_fashion_mnist()  # the default folder is used without download
    np.testing.assert_array_equal(X2, X)
    monkeypatch.delenv("FASTMLP_DATA")
    assert ds.get_data_dir() == Path.home() / ".fastmlp" / "data"


def test_download_wrong_checksum_leaves_nothing(server, tmp_path, monkeypatch):
    root, url = server
    make_idx_set(root)
    sums = {name: md5(root / name) for name in ds.MNIST_CHECKSUMS}
    sums["train-labels-idx1-ubyte.gz"] = "md5:" + "0" * 32
    monkeypatch.setattr(ds, "MNIST_BASE_URL", url)
    monkeypatch.setattr(ds, "MNIST_CHECKSUMS", sums)
    with pytest.raises(ds.DownloadError, match=r"checksum mismatch for .*train-labels-idx1-ubyte\.gz"):
        ds.load_mnist(download=True, data_dir=tmp_path / "dl")
    left = sorted(p.name for p in (tmp_path / "dl" / "mnist").iterdir())
    assert left == ["train-images-idx3-ubyte.gz"]  # no partial or temporary file left


def test_download_failures(server, tmp_path, monkeypatch):
    root, url = server
    monkeypatch.setattr(ds, "DOWNLOAD_TIMEOUT", 5.0)
    monkeypatch.setattr(ds, "MNIST_BASE_URL", url)  # server is up but has no files
    with pytest.raises(ds.DownloadError, match=r"404.*by hand and put it at"):
        ds.load_mnist(download=True, data_dir=tmp_path / "a")
    dead = f"http://127.0.0.1:{_free_port()}/"
    monkeypatch.setattr(ds, "MNIST_BASE_URL", dead)
    with pytest.raises(ds.DownloadError) as info:
        ds.load_mnist(download=True, data_dir=tmp_path / "b")
    msg = str(info.value)
    assert dead + "train-images-idx3-ubyte.gz" in msg and str(tmp_path / "b" / "mnist") in msg
    assert isinstance(info.value, OSError)
    assert list((tmp_path / "b" / "mnist").iterdir()) == []


def test_download_without_checksum_warns(server, tmp_path, monkeypatch):
    root, url = server
    make_idx_set(root)
    monkeypatch.setattr(ds, "MNIST_BASE_URL", url)
    monkeypatch.setattr(ds, "MNIST_CHECKSUMS", {p.name: None for p in root.iterdir()})
    with pytest.warns(UserWarning, match="skipping verification"):
        (X, _), _ = ds.load_mnist(download=True, data_dir=tmp_path / "dl")
    assert X.shape == (30, 28, 28)


def test_download_cifar10_safe_extract(server, tmp_path, monkeypatch):
    root, url = server
    src = tmp_path / "src" / "cifar-10-batches-py"
    parts = make_cifar_dir(src)
    archive = root / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-py")
        evil = tarfile.TarInfo("../../evil.txt")
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil"))
        link = tarfile.TarInfo("cifar-10-batches-py/readme.html")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    monkeypatch.setattr(ds, "CIFAR10_URL", url + "cifar-10-python.tar.gz")
    monkeypatch.setattr(ds, "CIFAR10_CHECKSUMS", {"cifar-10-python.tar.gz": md5(archive)})
    dl = tmp_path / "dl"
    (X, y), (Xt, yt) = ds.load_cifar10(download=True, data_dir=dl, batches=(1, 2))
    np.testing.assert_array_equal(X[20:], parts["data_batch_2"][0])
    target = dl / "cifar-10-batches-py"
    assert (target / "data_batch_5").is_file() and not (target / "readme.html").exists()
    assert not any(p.name == "evil.txt" for p in tmp_path.rglob("*"))
    assert not [p for p in target.iterdir() if p.name.endswith(".part")]
    sp = ds.cifar10_course_split(data_dir=dl, mode="all", n_val=30)
    assert sp.val[0].shape == (30, 3072)
    monkeypatch.setattr(ds, "CIFAR10_CHECKSUMS", {"cifar-10-python.tar.gz": "md5:" + "1" * 32})
    with pytest.raises(ds.DownloadError, match="checksum mismatch"):
        ds.load_cifar10(download=True, data_dir=tmp_path / "dl2")
    assert [p.name for p in (tmp_path / "dl2" / "cifar-10-batches-py").iterdir()] == []


# --- hostile files: sizes are checked before anything is allocated ---------------------
def test_cifar_nested_labels_are_refused_without_a_huge_allocation(tmp_path):
    import tracemalloc
    d = tmp_path / "c"
    make_cifar_dir(d)
    X = np.zeros((20, 3072), np.uint8)
    row = [0] * 20_000
    cases = [  # one row referenced 20,000 times: ~100 KB of pickle, 3.2 GB as an array
        ({b"data": X[:2], b"labels": [row] * 20_000}, "2 images but 20000 labels"),
        ({b"data": X, b"labels": [row] * 20}, "flat list of integers"),
        ({b"data": X, b"labels": np.zeros((20, 2), np.int64)}, "flat list of integers"),
        ({b"data": X, b"labels": "0" * 20}, "list of integers"),
        ({b"data": X, b"labels": [True] * 20}, "flat list of integers"),
        ({b"data": X, b"labels": [2 ** 80] * 20}, r"0\.\.9"),
    ]
    f = d / "data_batch_1"
    for content, message in cases:
        f.write_bytes(pickle.dumps(content, protocol=2))
        assert f.stat().st_size < 400_000
        tracemalloc.start()
        try:
            with pytest.raises(ValueError, match=message):
                ds.load_cifar10(d, batches=(1,))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 20 * 2 ** 20, (message, peak)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_zero_length_dimension_is_a_clear_value_error(tmp_path, gz):
    path = tmp_path / ("empty.idx" + (".gz" if gz else ""))
    write_idx(path, np.zeros((0, 28, 28), np.uint8), gz=gz)
    with pytest.raises(ValueError, match="zero-length dimension") as info:
        ds.read_idx(path)
    assert "empty.idx" in str(info.value)


def test_idx_header_claiming_more_than_the_file_holds_allocates_nothing(tmp_path):
    import tracemalloc
    raw = tmp_path / "big.idx"
    raw.write_bytes(b"\0\0\x08\x03" + np.array([60000, 28000, 28000], ">u4").tobytes() + b"\0" * 64)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="expected .* bytes"):
            ds.read_idx(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 ** 20
