"""CIFAR-10 from the standard binary files (`cifar-10-batches-bin`: data_batch_1..5.bin,
test_batch.bin), and their download (the authors' tar.gz, its MD5 checked, only those six
members extracted). No pickle anywhere: a record is 3073 bytes, the label (0-9) then 32x32
red, 32x32 green, 32x32 blue pixels, row-major (https://www.cs.toronto.edu/~kriz/cifar.html).
"""
from __future__ import annotations

import hashlib
import shutil
import tarfile
import urllib.request
from pathlib import Path

import numpy as np

FOLDER = "cifar-10-batches-bin"
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)
RECORD = 1 + 3 * 32 * 32
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
MD5 = "c32a1d4ab5d03f1284b67883e8d87530"   # published on the page above (170,052,171 bytes)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def read_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One binary batch file: images (n, 3, 32, 32) uint8 and labels (n,) int64. Raises
    ValueError naming the file when its size is not whole records or a label is not 0-9."""
    path = Path(path)
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc})") from exc
    if raw.size == 0 or raw.size % RECORD:
        raise ValueError(f"{path}: {raw.size} bytes is not a whole number of {RECORD}-byte "
                         "CIFAR-10 records (label byte + 3x32x32 pixels)")
    rec = raw.reshape(-1, RECORD)
    labels = rec[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise ValueError(f"{path}: label {int(labels.max())} outside 0-9; not a CIFAR-10 batch")
    return rec[:, 1:].reshape(-1, 3, 32, 32), labels


def find_folder(root: str | Path) -> Path | None:
    """The folder holding the batch files: root itself or root/cifar-10-batches-bin."""
    root = Path(root)
    for d in (root, root / FOLDER):
        if all((d / f).is_file() for f in TRAIN_FILES + TEST_FILES):
            return d
    return None


def read_cifar10(root: str | Path, download: bool = False, url: str = URL,
                 md5: str = MD5) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) from `root` (50,000 / 10,000 images, uint8
    (n, 3, 32, 32)); downloads and extracts the archive first when asked and missing."""
    root = Path(root)
    folder = find_folder(root)
    if folder is None and download:
        extract(download_archive(root, url, md5), root)
        folder = find_folder(root)
    if folder is None:
        raise FileNotFoundError(
            f"cifar10: the binary batches ({', '.join(TRAIN_FILES + TEST_FILES)}) are not in "
            f"{root} or {root / FOLDER}. Unpack {URL} there, set DEEPR_DATA to the parent of a "
            f"'cifar10' folder holding them, or pass download=True (--download) when online.")
    parts = [read_batch(folder / f) for f in TRAIN_FILES]
    xte, yte = read_batch(folder / TEST_FILES[0])
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), xte, yte)


def file_md5(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_archive(root: Path, url: str = URL, md5: str = MD5) -> Path:
    """Fetch the tar.gz into root (atomically) and check its MD5; a mismatch removes it and
    raises ValueError saying both sums."""
    root.mkdir(parents=True, exist_ok=True)
    target = root / url.rsplit("/", 1)[-1]
    if target.is_file() and file_md5(target) == md5:
        return target
    tmp = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
            shutil.copyfileobj(r, f)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise FileNotFoundError(f"could not download {url} into {root} ({exc})") from exc
    got = file_md5(tmp)
    if got != md5:
        tmp.unlink(missing_ok=True)
        raise ValueError(f"{url}: MD5 {got} does not match the published {md5}; file removed")
    tmp.replace(target)
    return target


def extract(archive: Path, root: Path) -> Path:
    """Extract only the six batch files (regular files named as expected) into
    root/cifar-10-batches-bin; nothing else in the archive is written."""
    wanted = set(TRAIN_FILES + TEST_FILES)
    out = Path(root) / FOLDER
    out.mkdir(parents=True, exist_ok=True)
    found = set()
    with tarfile.open(archive, "r:gz") as tar:
        for m in tar:
            name = m.name.rsplit("/", 1)[-1]
            if name in wanted and m.isfile():
                src = tar.extractfile(m)
                tmp = out / (name + ".part")
                with open(tmp, "wb") as f:
                    shutil.copyfileobj(src, f)
                tmp.replace(out / name)
                found.add(name)
    missing = sorted(wanted - found)
    if missing:
        raise ValueError(f"{archive}: the archive lacks {', '.join(missing)}")
    return out
