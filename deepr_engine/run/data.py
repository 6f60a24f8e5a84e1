"""Data sets held as tensors on the session's device, and minibatches drawn from them.

digits (sklearn's 8x8 digits, shipped with scikit-learn) is the embedded default; spiral, moons,
circles, xor and blobs are 2-D sets generated here, as in TensorFlow Playground; MNIST and
Fashion-MNIST are read from the standard IDX files in a folder (downloaded when asked and online);
mnist10k is the real MNIST test set's 10,000 images shipped in assets/mnist-t10k, split 8,000
train / 2,000 test; cifar10 is read from the standard binary batches (cifar.py).
"""
from __future__ import annotations

import gzip
import math
import os
import shutil
import struct
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import validate

TOY_SETS = ("spiral", "moons", "circles", "xor", "blobs")
IMAGE_SETS = ("digits", "digits-28", "mnist", "mnist10k", "fashion-mnist", "cifar10")
DATASETS = IMAGE_SETS + TOY_SETS

IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}
# the MNIST test set's IDX files (from a public mirror of the original files), shipped with the
# repository: the training files are absent from mirrors that can be read here
MNIST10K_FOLDER = Path(__file__).resolve().parents[2] / "assets" / "mnist-t10k"
MNIST10K_TEST = 2000   # of the 10,000 images: 8,000 train, 2,000 test (one fixed split)


@dataclass
class Dataset:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    image_shape: tuple[int, int] | None = None  # (height, width) for image data
    x_val: torch.Tensor | None = None             # carved from the training data (val_fraction)
    y_val: torch.Tensor | None = None

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    @property
    def is_2d(self) -> bool:
        return self.n_features == 2


def default_data_root() -> Path:
    return Path(os.environ.get("DEEPR_DATA", Path.home() / ".cache" / "deepr_studio"))


def load_dataset(name: str, *, n_samples: int = 1000, noise: float = 0.1, seed: int = 0,
                 test_fraction: float = 0.25, device: str | torch.device = "cpu",
                 root: str | Path | None = None, download: bool = False,
                 val_fraction: float = 0.0) -> Dataset:
    """Load or generate a data set, split it with a seeded shuffle, normalise it, and put it on
    the device. Images are scaled to [0, 1]; 2-D sets are standardised with train statistics.
    val_fraction > 0 moves that share of the training examples (seeded) into x_val / y_val:
    hyperparameters are chosen there, the test split is never looked at."""
    validate.finite("val_fraction", val_fraction, low=0.0, high=0.5)
    return _to(_split_validation(_load(name, n_samples, noise, seed, test_fraction, root, download),
                                 val_fraction, seed), device)


def _split_validation(ds: Dataset, val_fraction: float, seed: int) -> Dataset:
    if val_fraction <= 0:
        return ds
    n = len(ds.x_train)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7919))
    n_val = max(1, int(round(n * val_fraction)))
    val, train = order[:n_val], order[n_val:]
    ds.x_val, ds.y_val = ds.x_train[val], ds.y_train[val]
    ds.x_train, ds.y_train = ds.x_train[train], ds.y_train[train]
    return ds


def _load(name, n_samples, noise, seed, test_fraction, root, download) -> Dataset:
    validate.choice("dataset", name, DATASETS)
    validate.integer("n_samples", n_samples, low=20, high=1_000_000)
    validate.finite("noise", noise, low=0.0, high=10.0)
    validate.finite("test_fraction", test_fraction, low=0.0, high=0.9, low_open=True)
    if name == "mnist10k":
        return _mnist10k(Path(root) if root is not None else MNIST10K_FOLDER)
    if name == "cifar10":
        return _cifar10(Path(root) if root is not None else default_data_root() / "cifar10",
                        download)
    if name in ("mnist", "fashion-mnist"):
        root = Path(root) if root is not None else default_data_root() / name
        xtr, ytr = read_idx_pair(root, "train", name, download)
        xte, yte = read_idx_pair(root, "test", name, download)
        ds = Dataset(name, torch.from_numpy(xtr.reshape(len(xtr), -1).astype(np.float32) / 255.0),
                     torch.from_numpy(ytr.astype(np.int64)),
                     torch.from_numpy(xte.reshape(len(xte), -1).astype(np.float32) / 255.0),
                     torch.from_numpy(yte.astype(np.int64)), 10, tuple(xtr.shape[1:]))
        return ds
    rng = np.random.default_rng(seed)
    if name in ("digits", "digits-28"):
        from sklearn.datasets import load_digits
        x, y = load_digits(return_X_y=True)
        x = x.astype(np.float32) / 16.0
        shape, n_classes = (8, 8), 10
        if name == "digits-28":  # MNIST-shaped (784 inputs) without a download: bilinear 8x8 -> 28x28
            x = torch.nn.functional.interpolate(torch.from_numpy(x).view(-1, 1, 8, 8), size=(28, 28),
                                                mode="bilinear", align_corners=False)
            x, shape = x.reshape(len(y), -1).numpy(), (28, 28)
    else:
        x, y = make_toy(name, n_samples, noise, rng)
        shape, n_classes = None, int(y.max()) + 1
    order = rng.permutation(len(x))
    n_test = max(1, int(round(len(x) * test_fraction)))
    test, train = order[:n_test], order[n_test:]
    xtr, xte = x[train], x[test]
    if shape is None:  # standardise 2-D sets with the training split's statistics
        mean, std = xtr.mean(0), xtr.std(0) + 1e-8
        xtr, xte = (xtr - mean) / std, (xte - mean) / std
    ds = Dataset(name, torch.tensor(xtr, dtype=torch.float32), torch.tensor(y[train], dtype=torch.long),
                 torch.tensor(xte, dtype=torch.float32), torch.tensor(y[test], dtype=torch.long),
                 n_classes, shape)
    return ds


def _mnist10k(root: Path) -> Dataset:
    """The MNIST test set's 10,000 images split 8,000 / 2,000 by one fixed permutation (seed 0,
    the same for every run: seeds vary init, batches and the validation hold-out)."""
    x, y = read_idx_pair(root, "test", "mnist10k")
    x = torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / 255.0)
    y = torch.from_numpy(y.astype(np.int64))
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    test, train = order[:MNIST10K_TEST], order[MNIST10K_TEST:]
    return Dataset("mnist10k", x[train], y[train], x[test], y[test], 10, (28, 28))


def _cifar10(root: Path, download: bool) -> Dataset:
    """50,000 / 10,000 colour images, flattened channel-major (3 x 32 x 32 = 3072 inputs),
    scaled to [0, 1] and standardised per channel with the training split's statistics.
    image_shape is (32, 32); models read the channel count from the input size."""
    from .cifar import read_cifar10
    xtr, ytr, xte, yte = read_cifar10(root, download)
    xtr = torch.from_numpy(xtr).float().div_(255.0)
    xte = torch.from_numpy(xte).float().div_(255.0)
    mean = xtr.mean((0, 2, 3), keepdim=True)
    std = xtr.std((0, 2, 3), keepdim=True) + 1e-8
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    return Dataset("cifar10", xtr.reshape(len(xtr), -1), torch.from_numpy(ytr),
                   xte.reshape(len(xte), -1), torch.from_numpy(yte), 10, (32, 32))


def _to(ds: Dataset, device) -> Dataset:
    dev = torch.device(device)
    for f in ("x_train", "y_train", "x_test", "y_test", "x_val", "y_val"):
        if getattr(ds, f) is not None:
            setattr(ds, f, getattr(ds, f).to(dev))
    return ds


def make_toy(name: str, n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """2-D classification sets (two classes, blobs three)."""
    if name == "spiral":  # two interleaved arms, as in TensorFlow Playground
        half = n // 2
        t = np.sqrt(rng.uniform(0, 1, half)) * 3 * math.pi
        arms = []
        for k in (0, 1):
            ang = t + k * math.pi
            arms.append(np.stack([t * np.cos(ang), t * np.sin(ang)], 1) / (3 * math.pi))
        x = np.concatenate(arms) + rng.normal(0, noise * 0.5, (2 * half, 2))
        y = np.repeat([0, 1], half)
    elif name == "moons":
        half = n // 2
        t = rng.uniform(0, math.pi, half)
        upper = np.stack([np.cos(t), np.sin(t)], 1)
        lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1)
        x = np.concatenate([upper, lower]) + rng.normal(0, noise, (2 * half, 2))
        y = np.repeat([0, 1], half)
    elif name == "circles":
        half = n // 2
        t = rng.uniform(0, 2 * math.pi, 2 * half)
        r = np.concatenate([np.full(half, 1.0), np.full(half, 0.4)])
        x = np.stack([r * np.cos(t), r * np.sin(t)], 1) + rng.normal(0, noise * 0.5, (2 * half, 2))
        y = np.repeat([0, 1], half)
    elif name == "xor":
        x = rng.uniform(-1, 1, (n, 2))
        y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.int64)
        x = x + rng.normal(0, noise * 0.5, x.shape)
    elif name == "blobs":
        centers = np.array([[-1.0, -0.6], [1.0, -0.6], [0.0, 1.0]])
        y = rng.integers(0, 3, n)
        x = centers[y] + rng.normal(0, 0.3 + noise, (n, 2))
    else:
        raise ValueError(f"dataset must be one of {', '.join(TOY_SETS)} for make_toy; got {name!r}")
    return x.astype(np.float32), np.asarray(y, dtype=np.int64)


# -- IDX files (MNIST, Fashion-MNIST) ---------------------------------------------------------
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (gzipped or not). Raises ValueError naming the file if it is not IDX."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read ({exc})") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    body = data[4 + 4 * ndim:]
    if len(body) != expected:
        raise ValueError(f"{path}: IDX body has {len(body)} bytes, header says {expected}")
    return np.frombuffer(body, dtype=dtype).reshape(shape)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write an array as an IDX file (gzipped if the name ends in .gz); used by tests and tools."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def _find(root: Path, base: str) -> Path | None:
    for name in (base, base + ".gz"):
        if (root / name).is_file():
            return root / name
    return None


def read_idx_pair(root: Path, split: str, name: str = "mnist", download: bool = False,
                  mirrors: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one split from `root`; downloads missing files when asked."""
    root = Path(root)
    paths = []
    for base in IDX_FILES[split]:
        path = _find(root, base)
        if path is None and download:
            path = download_file(base + ".gz", root, mirrors or MIRRORS.get(name, []))
        if path is None:
            wanted = ", ".join(b + "[.gz]" for pair in IDX_FILES.values() for b in pair)
            raise FileNotFoundError(
                f"{name}: {base}[.gz] not found in {root}. Put the four IDX files there "
                f"({wanted}), set DEEPR_DATA to their parent folder, or pass download=True "
                f"(--download) when online.")
        paths.append(path)
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{root}: {split} images {images.shape} and labels {labels.shape} do not match")
    return images, labels


def download_file(filename: str, root: Path, mirrors: list[str]) -> Path:
    """Fetch filename from the first mirror that answers into root (atomically)."""
    root.mkdir(parents=True, exist_ok=True)
    errors = []
    for base in mirrors:
        tmp = root / (filename + ".part")
        try:
            with urllib.request.urlopen(base + filename, timeout=30) as r, open(tmp, "wb") as f:
                shutil.copyfileobj(r, f)
            read_idx(tmp.rename(root / filename))  # refuses a broken download
            return root / filename
        except (OSError, ValueError) as exc:
            errors.append(f"{base}: {exc}")
            tmp.unlink(missing_ok=True)
            (root / filename).unlink(missing_ok=True)
    raise FileNotFoundError(f"could not download {filename} into {root} ({'; '.join(errors) or 'no mirror'})")


class Batcher:
    """Minibatches from tensors already on the device: a seeded permutation per epoch, sliced.
    No DataLoader, no host round trip per step."""

    def __init__(self, n: int, batch_size: int, device, seed: int = 0):
        self.n = n
        self.batch_size = validate.integer("batch_size", batch_size, low=1, high=n)
        self.generator = torch.Generator().manual_seed(seed)
        self.device = torch.device(device)
        self.epoch = 0
        self.pos = 0
        self.order = torch.randperm(n, generator=self.generator).to(self.device)

    def next(self) -> torch.Tensor:
        if self.pos + self.batch_size > self.n:
            self.epoch += 1
            self.pos = 0
            self.order = torch.randperm(self.n, generator=self.generator).to(self.device)
        idx = self.order[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx

    def state(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos, "batch_size": self.batch_size,
                "order": self.order.cpu(), "generator": self.generator.get_state()}

    def load_state(self, s: dict) -> None:
        self.epoch, self.pos = int(s["epoch"]), int(s["pos"])
        self.batch_size = int(s["batch_size"])
        self.order = s["order"].to(self.device, torch.long)
        self.generator.set_state(s["generator"])
