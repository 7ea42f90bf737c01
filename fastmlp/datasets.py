"""Dataset loaders: MNIST, Fashion-MNIST (IDX files) and CIFAR-10 (python pickles).

CIFAR-10 batches are pickles: they are read with a restricted unpickler that accepts only
NumPy arrays, lists and basic types (dicts, bytes, strings, numbers) and refuses every
other class. Sizes declared by a file (IDX dimensions, CIFAR label counts) are checked
against the file before anything is allocated; malformed files raise ``ValueError``.

All loaders return NumPy arrays: images as ``uint8`` and labels as ``int64``.
``load_mnist()`` with no arguments loads the MNIST subset bundled with the package
(8,000 train / 2,000 test digits, see ``fastmlp/data/README.md``).  With
``download=True`` the canonical files are fetched (checksum-verified, written
atomically) into ``data_dir`` (default: ``$FASTMLP_DATA``, else ``~/.fastmlp/data``).
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import pickle
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = [
    "read_idx", "load_mnist", "load_fashion_mnist", "load_cifar10",
    "cifar10_label_names", "cifar10_course_split", "CourseSplit",
    "get_data_dir", "DownloadError",
]

# --- download sources (module-level so tests and users can override them) ------------
DATA_ENV_VAR = "FASTMLP_DATA"
MNIST_BASE_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FASHION_MNIST_BASE_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
# "algorithm:hexdigest", or None to skip verification of that file (with a warning).
MNIST_CHECKSUMS = {
    "train-images-idx3-ubyte.gz": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "md5:d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "md5:9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "md5:ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_MNIST_CHECKSUMS = {
    "train-images-idx3-ubyte.gz": "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "md5:25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "md5:bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "md5:bb300cfdad3c16e7a12a480ee83cd310",
}
CIFAR10_CHECKSUMS = {"cifar-10-python.tar.gz": "md5:c58f30108f718f92721af3b95e74349a"}
DOWNLOAD_TIMEOUT = 60.0  # seconds per network operation

_BUNDLED_MNIST = Path(__file__).resolve().parent / "data" / "mnist10k"
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_SPLITS = {"train": "train", "test": "t10k"}
_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")


class DownloadError(OSError):
    """A download failed (network error or checksum mismatch)."""


class CourseSplit(NamedTuple):
    """Train/validation/test split; each field is a pair ``(X, y)``.

    ``X`` is ``uint8`` of shape ``(n, 3072)``, ``y`` is ``int64`` of shape ``(n,)``.
    """
    train: tuple
    val: tuple
    test: tuple


def get_data_dir(data_dir=None) -> Path:
    """Return the download directory: ``data_dir``, else ``$FASTMLP_DATA``, else ``~/.fastmlp/data``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".fastmlp" / "data"


# --- IDX -------------------------------------------------------------------------------
def _readinto_full(f, buf) -> int:
    view, got = memoryview(buf).cast("B"), 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def read_idx(filename) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a NumPy array.

    Returns an array of shape given by the header dims (e.g. ``(n, 28, 28)`` ``uint8`` for
    image files, magic 2051, or ``(n,)`` ``uint8`` for label files, magic 2049) in native
    byte order.  Raises ``ValueError`` naming the file when it is not a valid IDX file:
    bad gzip stream, wrong magic number, unknown dtype code, a zero-length dimension, or a
    payload whose length differs from the product of the dimensions (truncated file or
    trailing bytes); the sizes are checked before the array is allocated.
    """
    path = Path(filename)
    with open(path, "rb") as raw:
        size = os.fstat(raw.fileno()).st_size
        gz = raw.read(2) == b"\x1f\x8b" or path.suffix == ".gz"
        raw.seek(0)
        f = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
        try:
            header = f.read(4)
            if len(header) < 4:
                raise ValueError(f"{path}: file too short for an IDX header ({len(header)} bytes)")
            if header[:2] != b"\0\0" or header[2] not in _IDX_DTYPES or header[3] == 0:
                raise ValueError(f"{path}: bad IDX magic number 0x{header.hex()} (expected "
                                 "0x00000803 for images or 0x00000801 for labels; wrong file?)")
            ndim = header[3]
            dims_raw = f.read(4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise ValueError(f"{path}: truncated IDX header (expected {ndim} dimensions)")
            dims = tuple(int(d) for d in np.frombuffer(dims_raw, dtype=">u4"))
            if 0 in dims:
                raise ValueError(f"{path}: IDX header has a zero-length dimension {dims} "
                                 "(an empty or corrupted file)")
            dtype = np.dtype(_IDX_DTYPES[header[2]])
            expected = int(np.prod(dims, dtype=object)) * dtype.itemsize
            what = {3: "pixel data", 1: "label data"}.get(ndim, "data")
            if not gz and expected != size - 4 - 4 * ndim:  # raw file: sizes known up front
                found = size - 4 - 4 * ndim
                hint = "file truncated?" if found < expected else "wrong header or corrupted file?"
                raise ValueError(f"{path}: expected {expected} bytes of {what}, found {found} ({hint})")
            # gzip cannot expand more than ~1032x: reject absurd headers before allocating.
            if gz and expected > 1100 * size + (1 << 20):
                raise ValueError(f"{path}: header dims {dims} need {expected} bytes of {what}, "
                                 f"impossible for a {size}-byte gzip file (corrupted header?)")
            out = np.empty(dims, dtype=dtype)
            got = _readinto_full(f, out)
            if got != expected:
                raise ValueError(f"{path}: expected {expected} bytes of {what}, found {got} "
                                 "(file truncated?)")
            extra = len(f.read(1 << 16))
            if extra:
                raise ValueError(f"{path}: {extra}{'+' if extra == 1 << 16 else ''} unexpected "
                                 f"bytes after {expected} bytes of {what} (wrong header or corrupted file?)")
        except (OSError, EOFError, zlib.error) as exc:
            problem = "bad or truncated gzip data" if gz else "read error"
            raise ValueError(f"{path}: {problem} ({type(exc).__name__}: {exc})") from exc
        finally:
            if gz:
                f.close()
    return out if dtype.isnative else out.astype(dtype.newbyteorder("="))


def _find(directory: Path, name: str) -> Path:
    for candidate in (directory / (name + ".gz"), directory / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{directory}: neither {name}.gz nor {name} found")


def _load_idx_split(directory: Path, prefix: str, flatten: bool):
    img_path = _find(directory, f"{prefix}-images-idx3-ubyte")
    lab_path = _find(directory, f"{prefix}-labels-idx1-ubyte")
    X, y = read_idx(img_path), read_idx(lab_path)
    if X.ndim != 3 or X.dtype != np.uint8:
        raise ValueError(f"{img_path}: expected 3-d uint8 images, got {X.ndim}-d {X.dtype}")
    if y.ndim != 1 or y.dtype != np.uint8:
        raise ValueError(f"{lab_path}: expected 1-d uint8 labels, got {y.ndim}-d {y.dtype}")
    if len(X) != len(y):
        raise ValueError(f"{img_path} has {len(X)} images but {lab_path} has {len(y)} labels")
    if y.size and y.max() > 9:
        raise ValueError(f"{lab_path}: label {int(y.max())} out of range 0..9")
    return (X.reshape(len(X), -1) if flatten else X), y.astype(np.int64)


def _load_idx_dataset(directory, flatten):
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"dataset directory {directory} does not exist")
    return tuple(_load_idx_split(directory, p, flatten) for p in _IDX_SPLITS.values())


def load_mnist(path=None, *, flatten=False, download=False, data_dir=None):
    """Load MNIST as ``(X_train, y_train), (X_test, y_test)``.

    ``X`` is ``uint8`` of shape ``(n, 28, 28)`` (or ``(n, 784)`` with ``flatten=True``),
    ``y`` is ``int64`` of shape ``(n,)`` with values 0..9.  ``path`` is a directory holding
    ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte`` (each raw or ``.gz``).  ``path=None`` loads the bundled
    8,000/2,000 MNIST subset, unless ``download=True``: then the full MNIST (60,000/10,000)
    is fetched from ``MNIST_BASE_URL`` into ``get_data_dir(data_dir) / "mnist"``
    (or into ``path`` if given) and loaded.
    """
    if download:
        path = Path(path) if path is not None else get_data_dir(data_dir) / "mnist"
        _download_set(MNIST_BASE_URL, MNIST_CHECKSUMS, path)
    elif path is None:
        path = _BUNDLED_MNIST
    return _load_idx_dataset(path, flatten)


def load_fashion_mnist(path=None, *, flatten=False, download=False, data_dir=None):
    """Load Fashion-MNIST as ``(X_train, y_train), (X_test, y_test)``.

    Same file names, format and return types as :func:`load_mnist` (60,000/10,000 images
    28x28 ``uint8``, labels ``int64`` 0..9).  There is no bundled copy: ``path=None`` means
    ``get_data_dir(data_dir) / "fashion_mnist"``; with ``download=True`` missing files
    are fetched from ``FASHION_MNIST_BASE_URL`` there (or into ``path``).
    """
    path = Path(path) if path is not None else get_data_dir(data_dir) / "fashion_mnist"
    if download:
        _download_set(FASHION_MNIST_BASE_URL, FASHION_MNIST_CHECKSUMS, path)
    elif not path.is_dir():
        raise FileNotFoundError(
            f"Fashion-MNIST directory {path} does not exist: pass path= to a folder with the "
            "four IDX files (train-images-idx3-ubyte.gz, ...) or use download=True")
    return _load_idx_dataset(path, flatten)


# --- downloading -----------------------------------------------------------------------
def _file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _split_checksum(checksum: str):
    algorithm, _, digest = checksum.partition(":")
    return algorithm.lower(), digest.lower()


def _download(url: str, dest: Path, checksum) -> None:
    """Fetch ``url`` to ``dest`` via a temporary file in the same folder and ``os.replace``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if checksum is None:
        warnings.warn(f"no checksum known for {dest.name}: skipping verification of {url}",
                      stacklevel=3)
    else:
        algorithm, expected = _split_checksum(checksum)
        h = hashlib.new(algorithm)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as resp:
                    for block in iter(lambda: resp.read(1 << 20), b""):
                        out.write(block)
                        if checksum is not None:
                            h.update(block)
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", exc)
                if isinstance(exc, urllib.error.HTTPError):
                    reason = f"HTTP {exc.code}: {exc.reason}"
                    exc.close()
                raise DownloadError(
                    f"could not download {url} ({reason}). Download it by "
                    f"hand and put it at {dest}") from exc
        if checksum is not None and h.hexdigest() != expected:
            raise DownloadError(
                f"checksum mismatch for {url}: expected {algorithm} {expected}, got "
                f"{h.hexdigest()}; the download was discarded. Retry, or put a correct copy at {dest}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _have_valid(dest: Path, checksum) -> bool:
    if not dest.is_file():
        return False
    if checksum is None:
        return True
    algorithm, expected = _split_checksum(checksum)
    return _file_digest(dest, algorithm) == expected


def _download_set(base_url: str, checksums: dict, directory: Path) -> None:
    base = base_url if base_url.endswith("/") else base_url + "/"
    for name, checksum in checksums.items():
        dest = Path(directory) / name
        if not _have_valid(dest, checksum):
            _download(base + name, dest, checksum)


def _download_cifar10(directory: Path, needed) -> None:
    if all((directory / n).is_file() for n in needed):
        return
    archive_name = CIFAR10_URL.rstrip("/").rsplit("/", 1)[-1]
    archive = directory / archive_name
    checksum = CIFAR10_CHECKSUMS.get(archive_name)
    if not _have_valid(archive, checksum):
        _download(CIFAR10_URL, archive, checksum)
    # Safe extraction: only regular files with the expected names, written by us.
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar.getmembers():
                parts = member.name.replace("\\", "/").split("/")
                if (member.isfile() and len(parts) == 2 and parts[0] == _CIFAR_DIR
                        and parts[1] in _CIFAR_FILES):
                    src = tar.extractfile(member)
                    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{parts[1]}.", suffix=".part")
                    try:
                        with os.fdopen(fd, "wb") as out:
                            for block in iter(lambda: src.read(1 << 20), b""):
                                out.write(block)
                        os.replace(tmp, directory / parts[1])
                    finally:
                        if os.path.exists(tmp):
                            os.unlink(tmp)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{archive}: cannot extract CIFAR-10 archive ({exc}); delete it and "
                         "retry") from exc


# --- CIFAR-10 --------------------------------------------------------------------------
class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds NumPy arrays/scalars (CIFAR batches need nothing else)."""
    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
                ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        return super().find_class(module, name)


def _read_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _SafeUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            ImportError, IndexError, KeyError, MemoryError, OverflowError) as exc:
        raise ValueError(f"{path}: not a valid CIFAR-10 pickle ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _load_cifar_batch(path: Path):
    d = _read_pickle(path)
    missing = [k for k in ("data", "labels") if k not in d]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}; found {sorted(map(str, d))}")
    X = d["data"]
    if not isinstance(X, np.ndarray) or X.dtype != np.uint8 or X.ndim != 2 or X.shape[1] != 3072:
        desc = f"{X.dtype} array of shape {X.shape}" if isinstance(X, np.ndarray) else type(X).__name__
        raise ValueError(f"{path}: 'data' must be a uint8 array of shape (n, 3072), got {desc}")
    y = _cifar_labels(path, d["labels"], len(X))
    return np.ascontiguousarray(X), y


def _cifar_labels(path, labels, n):
    """The n labels of a batch as int64 (n,), checked BEFORE any array is built from
    them: a list whose items are lists (or one list referenced many times, which a
    small pickle can hold) must not turn into a huge array."""
    if isinstance(labels, np.ndarray):
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise ValueError(f"{path}: 'labels' must be a flat list of integers, got a "
                             f"{labels.dtype} array of shape {labels.shape}")
    elif isinstance(labels, (list, tuple)):
        if len(labels) == n and not all(isinstance(v, (int, np.integer))
                                        and not isinstance(v, bool) for v in labels):
            raise ValueError(f"{path}: 'labels' must be a flat list of integers")
    else:
        raise ValueError(f"{path}: 'labels' must be a list of integers, got "
                         f"{type(labels).__name__}")
    if len(labels) != n:
        raise ValueError(f"{path}: {n} images but {len(labels)} labels")
    if n and not all(0 <= v <= 9 for v in labels):
        bad = next(int(v) for v in labels if not 0 <= v <= 9)
        raise ValueError(f"{path}: labels must lie in 0..9, found {bad}")
    return np.asarray(labels, dtype=np.int64).reshape(n)


def _cifar_dir(path, data_dir) -> Path:
    path = Path(path) if path is not None else get_data_dir(data_dir) / _CIFAR_DIR
    if (path / _CIFAR_DIR).is_dir() and not (path / "test_batch").is_file():
        path = path / _CIFAR_DIR  # accept the parent of the extracted archive folder
    return path


def _check_present(directory: Path, names) -> None:
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 file(s) missing in {directory}: {', '.join(missing)}. Put the files of "
            f"cifar-10-python.tar.gz (folder {_CIFAR_DIR}/) there, use download=True, or "
            "request only the batches you have, e.g. batches=(1,)")


def load_cifar10(path=None, batches=(1, 2, 3, 4, 5), *, download=False, data_dir=None):
    """Load CIFAR-10 (python version) as ``(X_train, y_train), (X_test, y_test)``.

    ``X`` is ``uint8`` of shape ``(n, 3072)`` in the original channel-major layout (1024
    red, 1024 green, then 1024 blue values, each plane 32x32 row-major); use
    ``X.reshape(-1, 3, 32, 32)`` for images.  ``y`` is ``int64`` ``(n,)`` in 0..9.
    ``X_train`` concatenates ``data_batch_<i>`` for ``i`` in ``batches`` (in that order);
    the test part is ``test_batch``.  ``path`` is the folder with the batch files (or its
    parent); ``None`` means ``get_data_dir(data_dir) / "cifar-10-batches-py"``.  With
    ``download=True`` the archive is fetched from ``CIFAR10_URL`` if files are missing.
    Raises ``FileNotFoundError`` listing missing batches, ``ValueError`` naming a bad file.
    The batches are pickles, read with a restricted unpickler that accepts only NumPy
    arrays, lists and basic types; the labels' structure and count are checked before
    an array is built from them.
    """
    batches = tuple(batches)
    if not batches or any(not isinstance(b, (int, np.integer)) or not 1 <= b <= 5 for b in batches) \
            or len(set(batches)) != len(batches):
        raise ValueError(f"batches must be distinct integers in 1..5, got {batches!r}")
    names = [f"data_batch_{b}" for b in batches] + ["test_batch"]
    parts = _load_cifar_files(path, names, download, data_dir)
    train = parts[:-1]
    if len(train) == 1:
        return train[0], parts[-1]
    return (np.concatenate([p[0] for p in train]), np.concatenate([p[1] for p in train])), parts[-1]


def _load_cifar_files(path, names, download, data_dir):
    directory = _cifar_dir(path, data_dir)
    if download:
        directory.mkdir(parents=True, exist_ok=True)
        _download_cifar10(directory, names)
    _check_present(directory, names)
    return [_load_cifar_batch(directory / n) for n in names]


def cifar10_label_names(path=None, *, data_dir=None) -> list:
    """Return the 10 class names (``list[str]``) from ``batches.meta`` in ``path``."""
    meta = _cifar_dir(path, data_dir) / "batches.meta"
    _check_present(meta.parent, ["batches.meta"])
    names = _read_pickle(meta).get("label_names")
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, (bytes, str)) for n in names):
        raise ValueError(f"{meta}: missing or invalid 'label_names'")
    return [n.decode("utf-8") if isinstance(n, bytes) else n for n in names]


def cifar10_course_split(path=None, mode="batch1", n_val=5000, *, download=False,
                         data_dir=None) -> CourseSplit:
    """CIFAR-10 splits used in the DD2424 course, as a :class:`CourseSplit`.

    ``mode="batch1"``: train = ``data_batch_1``, val = ``data_batch_2``, test =
    ``test_batch`` (``n_val`` is ignored).  ``mode="all"``: train = the five data batches
    minus the last ``n_val`` images, which form val; test = ``test_batch``.
    Each field is ``(X, y)`` with ``X`` ``uint8`` ``(n, 3072)`` and ``y`` ``int64`` ``(n,)``.
    Example: ``(X_tr, y_tr), (X_va, y_va), (X_te, y_te) = cifar10_course_split(p)``.
    """
    if mode not in ("batch1", "all"):
        raise ValueError(f"mode must be 'batch1' or 'all', got {mode!r}")
    if mode == "all" and (not isinstance(n_val, (int, np.integer)) or n_val < 1):
        raise ValueError(f"n_val must be a positive integer, got {n_val!r}")
    if mode == "batch1":
        names = ["data_batch_1", "data_batch_2", "test_batch"]
        return CourseSplit(*_load_cifar_files(path, names, download, data_dir))
    (X, y), test = load_cifar10(path, download=download, data_dir=data_dir)
    if n_val >= len(X):
        raise ValueError(f"n_val={n_val} must be smaller than the {len(X)} training images")
    cut = len(X) - n_val
    return CourseSplit((X[:cut], y[:cut]), (X[cut:], y[cut:]), test)
