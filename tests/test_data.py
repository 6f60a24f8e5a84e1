"""Data sets of the fidelity issue: epochs (the same passes and lr schedule in a run and in a
sweep trial that holds out validation data), the shipped MNIST test set (mnist10k), and
CIFAR-10 from binary batch files the tests write (reader, checked download, the paper's net)."""
import csv
import hashlib
import io
import tarfile

import numpy as np
import pytest
import torch

from deepr_engine.run import cifar
from deepr_engine.run.checkpoint import load
from deepr_engine.run.cli import main
from deepr_engine.run.config import preset
from deepr_engine.run.data import load_dataset
from deepr_engine.run.session import TrainingSession
from deepr_engine.run.trials import run_trial


def lr_per_epoch(cfg) -> tuple[list[float], int, int]:
    """The lr in force at every step, grouped by the batcher's epoch; steps run; n_train."""
    s = TrainingSession(cfg)
    seen: dict[int, set] = {}
    for _ in range(s.config.steps):
        s.step(1)
        seen.setdefault(s.batcher.epoch, set()).add(s.lr)
    assert all(len(v) == 1 for v in seen.values())   # lr changes only at an epoch boundary
    return [seen[e].pop() for e in sorted(seen)], s.step_count, len(s.data.x_train)


def test_epochs_give_the_same_schedule_in_a_run_and_in_a_sweep_trial(tmp_path, capsys):
    cfg = preset("digits-demo").replace(epochs=3.0, lr_decay=0.5, lr=0.2, batch_size=128,
                                        eval_every=10**6)
    run_lrs, run_steps, n_run = lr_per_epoch(cfg)
    trial = cfg.replace(val_fraction=0.2)            # what a sweep trial trains on
    sweep_lrs, sweep_steps, n_sweep = lr_per_epoch(trial)
    assert n_sweep < n_run                           # the hold-out shrinks the training split
    assert run_lrs == sweep_lrs == pytest.approx([0.2, 0.1, 0.05])   # 3 epochs, 2 decays each
    assert run_steps == 3 * (n_run // 128) and sweep_steps == 3 * (n_sweep // 128)
    row = run_trial(trial.to_dict())
    assert row["status"] == "ok" and row["steps_done"] == sweep_steps
    assert row["epochs_done"] == pytest.approx(3.0)
    # train on the command line: the same number of passes, so the same schedule
    assert main(["train", "--preset", "digits-demo", "--epochs", "3", "--lr-decay", "0.5",
                 "--lr", "0.2", "--batch-size", "128", "--quiet", "--out", str(tmp_path / "r")]) == 0
    s = load(tmp_path / "r" / "checkpoint.safetensors")
    assert s.step_count == run_steps and s.lr == pytest.approx(0.05)
    # steps beside epochs would do nothing: refused
    capsys.readouterr()
    assert main(["train", "--preset", "digits-demo", "--epochs", "2", "--steps", "50", "--quiet",
                 "--out", str(tmp_path / "r2")]) == 2
    assert "--steps: no effect here: epochs 2 > 0 sets the number of steps" in capsys.readouterr().err


def test_a_sweep_over_epochs_reports_the_epochs_done(tmp_path, monkeypatch):
    from deepr_engine.run import sweep
    monkeypatch.setattr(sweep.ray_exec, "run_on_ray", lambda todo, sink, *a, **k: [
        sink(key, run_trial(c)) for key, c in todo])
    base = preset("digits-demo").replace(batch_size=64, eval_every=10**6)
    rows = sweep.run_sweep(base, grid={"epochs": [0.5, 1.0]}, out=tmp_path, progress=False)
    with open(tmp_path / "results.csv", newline="") as f:
        cells = list(csv.DictReader(f))
    assert [float(r["epochs"]) for r in cells] == [0.5, 1.0]
    assert [float(r["epochs_done"]) for r in cells] == pytest.approx([0.5, 1.0], abs=0.05)
    assert int(rows[1]["steps_done"]) == 1078 // 64    # 1,078 digits left after the hold-out


def test_mnist10k_is_the_real_test_set_split_8000_2000_the_same_for_every_seed():
    a = load_dataset("mnist10k", seed=0)
    b = load_dataset("mnist10k", seed=5, val_fraction=0.2)
    assert (len(a.x_train), len(a.x_test), a.n_features, a.image_shape) == (8000, 2000, 784, (28, 28))
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_test, b.y_test)
    assert (len(b.x_train), len(b.x_val)) == (6400, 1600)
    counts = torch.bincount(torch.cat([a.y_train, a.y_test]), minlength=10).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]   # MNIST's t10k labels
    assert 0.0 <= float(a.x_train.min()) and float(a.x_train.max()) == 1.0


# -- CIFAR-10 from files the tests write ----------------------------------------------------------
def batch_bytes(labels, rng) -> tuple[bytes, np.ndarray]:
    pix = rng.integers(0, 256, (len(labels), 3, 32, 32), dtype=np.uint8)
    rec = np.concatenate([np.asarray(labels, np.uint8)[:, None], pix.reshape(len(labels), -1)], 1)
    return rec.tobytes(), pix


def write_cifar(folder, n=4, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for i, name in enumerate(cifar.TRAIN_FILES + cifar.TEST_FILES):
        labels = [(i + j) % 10 for j in range(n)]
        data, pix = batch_bytes(labels, rng)
        (folder / name).write_bytes(data)
        written[name] = (labels, pix)
    return written


def test_the_cifar10_reader_reads_records_label_then_red_green_blue_planes(tmp_path):
    written = write_cifar(tmp_path / cifar.FOLDER)
    xtr, ytr, xte, yte = cifar.read_cifar10(tmp_path)
    assert xtr.shape == (20, 3, 32, 32) and xte.shape == (4, 3, 32, 32)
    labels, pix = written["data_batch_2.bin"]
    assert ytr[4:8].tolist() == labels and np.array_equal(xtr[4:8], pix)
    assert yte.tolist() == written["test_batch.bin"][0]
    # byte 1 of a record is the red pixel (0, 0), byte 1025 the green one
    raw = (tmp_path / cifar.FOLDER / "test_batch.bin").read_bytes()
    assert (xte[0, 0, 0, 0], xte[0, 1, 0, 0], xte[0, 2, 31, 31]) == (raw[1], raw[1025], raw[3072])
    ds = load_dataset("cifar10", root=tmp_path)
    assert (ds.n_features, ds.image_shape, len(ds.x_train), len(ds.x_test)) == (3072, (32, 32), 20, 4)
    per_channel = ds.x_train.view(20, 3, -1).transpose(0, 1).reshape(3, -1)
    assert per_channel.mean(1).abs().max() < 1e-5      # standardised with train statistics


def test_bad_cifar10_files_are_refused_naming_the_file(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "data_batch_3.bin").write_bytes(b"\x00" * 3000)
    with pytest.raises(ValueError, match="data_batch_3.bin: 3000 bytes is not a whole number"):
        cifar.read_cifar10(tmp_path)
    data, _ = batch_bytes([10], np.random.default_rng(0))
    (tmp_path / "data_batch_3.bin").write_bytes(data)
    with pytest.raises(ValueError, match="label 10 outside 0-9"):
        cifar.read_cifar10(tmp_path)
    with pytest.raises(FileNotFoundError, match="cifar-10-binary.tar.gz"):
        load_dataset("cifar10", root=tmp_path / "empty")


def test_the_cifar10_download_checks_the_md5_and_extracts_only_the_batches(tmp_path):
    src = tmp_path / "src"
    write_cifar(src / cifar.FOLDER)
    archive = tmp_path / "cifar-10-binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / cifar.FOLDER, arcname=cifar.FOLDER)
        evil = tarfile.TarInfo("../../evil.bin")
        tar.addfile(evil, io.BytesIO(b""))
        link = tarfile.TarInfo(f"{cifar.FOLDER}/readme.html")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    root = tmp_path / "data"
    with pytest.raises(ValueError, match="does not match the published"):
        cifar.read_cifar10(root, download=True, url=archive.as_uri(), md5="0" * 32)
    assert not any(root.glob("*.tar.gz*"))             # a bad download is removed
    xtr, ytr, xte, yte = cifar.read_cifar10(root, download=True, url=archive.as_uri(), md5=md5)
    assert len(xtr) == 20 and len(xte) == 4
    assert sorted(p.name for p in (root / cifar.FOLDER).iterdir()) == sorted(
        cifar.TRAIN_FILES + cifar.TEST_FILES)
    assert not (tmp_path / "evil.bin").exists() and not (root.parent / "evil.bin").exists()


def test_paper_cifar10_trains_its_conv_net_on_written_batches(tmp_path):
    write_cifar(tmp_path, n=8)
    cfg = preset("paper-cifar10").replace(data_root=str(tmp_path), batch_size=8, epochs=0.0,
                                         steps=2, eval_every=1, device="cpu")
    s = TrainingSession(cfg)
    convs = [l for l in s.layers if len(l.weight_shape) == 4]
    assert [tuple(l.weight_shape) for l in convs] == [(64, 3, 5, 5), (64, 64, 5, 5)]
    assert [tuple(l.weight_shape) for l in s.layers[2:]] == [(384, 4096), (192, 384), (10, 192)]
    assert s.step(2) == 2 and np.isfinite(s.last["loss"])
