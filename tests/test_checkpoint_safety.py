"""Checkpoints that could hurt a run are refused before anything is built, with the entry named
(checkpoint.load, ckpt_check, ckpt_meta); the CLI refuses them (and a negative --steps) with one
line and exit 2 and leaves the run folder as it was; files a run writes are whole after a
kill -9 in the middle of writing them (atomic.write_atomic)."""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import signal
import subprocess
import time

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from deepr_engine.run import checkpoint, ckpt_check
from deepr_engine.run.atomic import write_atomic
from deepr_engine.run.cli import main
from deepr_engine.run.config import RunConfig, preset
from deepr_engine.run.session import TrainingSession


def _cfg(**kw) -> RunConfig:
    return preset("spiral-demo").replace(steps=20, eval_every=10, **kw)


@pytest.fixture(scope="module")
def good() -> bytes:
    s = TrainingSession(_cfg(gradient="adam"), n_tracked=4)   # adam: per-parameter state too
    s.step(30)
    return checkpoint.to_bytes(s)


def poison(blob: bytes, tensors=None, meta=None) -> bytes:
    """The checkpoint with some tensors / metadata entries changed (None: removed)."""
    t = dict(st_load(blob))
    m = dict(checkpoint.read_metadata(blob))
    for k, v in (tensors or {}).items():
        t.pop(k) if v is None else t.__setitem__(k, v(t[k]) if callable(v) else v)
    for k, fn in (meta or {}).items():
        m[k] = json.dumps(fn(json.loads(m[k])))
    return st_save(t, metadata=m)


def edit(key, value):
    def fn(d):
        d[key] = value
        return d
    return fn


def refused(blob: bytes, monkeypatch, *parts: str) -> str:
    """load refuses, before a session (data and model) is built, with every part in the message."""
    def built(*a, **k):
        raise AssertionError("a session was built for a refused checkpoint")
    monkeypatch.setattr(checkpoint, "TrainingSession", built)
    with pytest.raises(ValueError) as err:
        checkpoint.load(blob)
    msg = str(err.value)
    assert msg.startswith("checkpoint: ") and all(p in msg for p in parts), msg
    return msg


def test_saved_runs_of_every_kind_load_and_train(good):
    a = checkpoint.load(good)
    assert a.step_count == 30 and a.step(2) == 2
    for cfg in (_cfg(compute="sparse", bias=False, val_fraction=0.2),):   # compact layers
        s = TrainingSession(cfg, n_tracked=4)
        s.step(25)
        back = checkpoint.load(checkpoint.to_bytes(s))
        assert back.step_count == 25 and back.step(2) == 2


def test_active_positions_out_of_range_repeated_or_not_integer(good, monkeypatch):
    idx = st_load(good)["model.0.active_idx"]
    n = 2 * 16   # layer 0 of spiral-demo: 16 x 2
    out = idx.clone()
    out[:3] = torch.tensor([n, n + 5, -1])
    refused(poison(good, {"model.0.active_idx": out}), monkeypatch,
            "layer 0 (16x2) model.0.active_idx: 3 position(s) out of range [0, 32)")
    dup = idx.clone()
    dup[1] = dup[0]
    refused(poison(good, {"model.0.active_idx": dup}), monkeypatch, "model.0.active_idx",
            "1 repeated position(s)")
    refused(poison(good, {"model.0.active_idx": idx.float()}), monkeypatch,
            "model.0.active_idx", "expected I64")
    refused(poison(good, {"model.0.active_idx": idx[:-1]}), monkeypatch,   # K against theta >= 0
            "model.0.active_idx", "must list exactly the positions with theta >= 0")


def test_batch_order_must_be_a_permutation_of_the_training_set(good, monkeypatch):
    order = st_load(good)["batch.order"]
    bad = order.clone()
    bad[0] = bad[1]
    refused(poison(good, {"batch.order": bad}), monkeypatch, "batch.order",
            f"permutation of the {len(order)} training examples")
    refused(poison(good, {"batch.order": order[:-1]}), monkeypatch, "batch.order",
            f"shape [{len(order)}]")
    big = order.clone()
    big[0] = 10**9
    refused(poison(good, {"batch.order": big}), monkeypatch, "batch.order")


def test_nan_or_out_of_range_hyperparameters_and_negative_steps(good, monkeypatch):
    refused(poison(good, meta={"session": edit("lr", float("nan"))}), monkeypatch,
            "session.lr must be finite")
    refused(poison(good, meta={"session": edit("lr", 1e9)}), monkeypatch, "session.lr must be in (0, 100]")
    refused(poison(good, meta={"session": edit("step_count", -3)}), monkeypatch,
            "session.step_count must be an integer in [0,")
    refused(poison(good, meta={"session": edit("step_count", 2.5)}), monkeypatch,
            "session.step_count must be an integer")

    def group_lr(groups):
        groups[1]["lr"] = float("inf")
        return groups
    refused(poison(good, meta={"param_groups": group_lr}), monkeypatch, "lr must be finite")

    def group_k(groups):
        groups[0]["k"] = -4
        return groups
    refused(poison(good, meta={"param_groups": group_k}), monkeypatch, "param_groups[0].k")
    refused(poison(good, meta={"opt_extra": edit("step_count", -1)}), monkeypatch,
            "opt_extra.step_count")
    refused(poison(good, meta={"session": lambda s: s | {"batch": s["batch"] | {"pos": 10**6}}}),
            monkeypatch, "session.batch.pos")


def test_non_finite_weights_bad_generators_and_telemetry(good, monkeypatch):
    theta = st_load(good)["model.2.theta"].clone()
    theta[0, 0] = float("nan")
    refused(poison(good, {"model.2.theta": theta}), monkeypatch, "model.2.theta", "not finite")
    refused(poison(good, {"batch.generator": torch.zeros(5056, dtype=torch.uint8)}), monkeypatch,
            "batch.generator: not a valid random generator state")
    refused(poison(good, {"opt.0.exp_avg": torch.zeros(2, 16)}), monkeypatch, "opt.0.exp_avg",
            "expected F32 of shape [16, 2]")
    refused(poison(good, meta={"telemetry": lambda t: t | {"tracked_pos": [10**6] * len(t["tracked_pos"])}}),
            monkeypatch, "telemetry.tracked_pos[0]")
    refused(poison(good, meta={"telemetry": lambda t: t | {"pruned": t["pruned"] | {
        "values": [[1.0]] * len(t["pruned"]["values"])}}}), monkeypatch, "telemetry.pruned",
        "one per rewired layer")
    refused(poison(good, meta={"config": edit("hidden", [16, -2])}), monkeypatch, "config: hidden[1]")


def test_a_huge_config_is_refused_before_anything_is_built(good, monkeypatch):
    """A config of 8 x 4096 dense layers (134M positions) in a small file: refused from the
    header, in well under a second (it took 83 s to build)."""
    blob = poison(good, meta={"config": lambda c: c | {"hidden": [4096] * 8, "connectivity": [0.1]}})
    t0 = time.perf_counter()
    msg = refused(blob, monkeypatch, "expected F32 of shape [4096, 2]")
    assert time.perf_counter() - t0 < 1.0, msg


def test_check_config_runs_first_and_its_refusal_stops_the_load(good, monkeypatch):
    seen = []

    def limits(cfg):
        seen.append(cfg)
        raise ValueError("hidden: 16 units is over this server's limit max_hidden = 8")
    monkeypatch.setattr(ckpt_check, "dataset_for", lambda cfg: pytest.fail("data was loaded"))
    with pytest.raises(ValueError, match="checkpoint: hidden: 16 units is over .* max_hidden = 8"):
        checkpoint.load(good, check_config=limits)
    assert isinstance(seen[0], RunConfig) and seen[0].hidden == [16, 16]


def _run_folder(tmp_path, blob: bytes):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.safetensors").write_bytes(blob)
    (out / "metrics.csv").write_text("step,series,value,previous\n")
    return out, {f: (out / f).read_bytes() for f in ("checkpoint.safetensors", "metrics.csv")}


@pytest.mark.parametrize("flag", ["--resume", "--fork-from"])
def test_cli_refuses_a_poisoned_checkpoint_with_one_line(tmp_path, capsys, good, flag):
    idx = st_load(good)["model.0.active_idx"].clone()
    idx[0] = 999
    out, before = _run_folder(tmp_path, poison(good, {"model.0.active_idx": idx}))
    extra = ["--out", str(tmp_path / "fork")] if flag == "--fork-from" else []
    assert main(["train", flag, str(out), "--steps", "5", "--quiet", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err
    assert "model.0.active_idx: 1 position(s) out of range [0, 32)" in err
    assert {f: (out / f).read_bytes() for f in before} == before
    assert not (tmp_path / "fork").exists()


def test_cli_refuses_negative_steps_on_resume(tmp_path, capsys, good):
    out, before = _run_folder(tmp_path, good)
    assert main(["train", "--resume", str(out), "--steps", "-5", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --steps must be an integer in [0, 1000000000], got -5"
    assert {f: (out / f).read_bytes() for f in before} == before


# -- kill -9 while writing ---------------------------------------------------------------------
def _plain_write(path, data) -> None:
    """A non-atomic writer for the control: in place, flushed to disk in 1 MB pieces."""
    data = data if isinstance(data, bytes) else data.encode()
    with open(path, "wb") as f:
        for i in range(0, len(data), 1 << 20):
            f.write(data[i:i + (1 << 20)])
            f.flush()
            os.fsync(f.fileno())


def _writer(versions, folder: str, atomic: bool) -> None:
    """Write the run's two files over and over, alternating two versions, as cli._train does."""
    write = write_atomic if atomic else _plain_write
    for i in range(10**6):
        blob, text = versions[i % 2]
        write(os.path.join(folder, "checkpoint.safetensors"), blob)
        write(os.path.join(folder, "metrics.csv"), text)


def _kill_while_writing(versions, tmp_path, atomic: bool, kills: int, seed: int) -> list[bool]:
    """kill -9 the writer (a forked process) at seeded random moments after its first write;
    per kill: is each file one of the versions, whole?"""
    ctx = multiprocessing.get_context("fork")
    folder = tmp_path / ("atomic" if atomic else "plain")
    folder.mkdir()
    sha = lambda b: hashlib.sha256(b).hexdigest()  # noqa: E731
    known = {sha(b) for v in versions for b in v}
    rng, whole = random.Random(seed), []
    for _ in range(kills):
        p = ctx.Process(target=_writer, args=(versions, str(folder), atomic))
        p.start()
        t0 = time.monotonic()
        while not (folder / "metrics.csv").exists() and time.monotonic() - t0 < 30:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        whole.append(all(sha((folder / f).read_bytes()) in known
                         for f in ("checkpoint.safetensors", "metrics.csv")))
    return whole


def test_kill_9_while_writing_leaves_every_file_whole(tmp_path):
    """Seeded kill moments while a process rewrites a 4 MB checkpoint and a metrics.csv (two
    versions, a training step apart): with atomic writes every file is a whole
    version after every kill; plain writes in the same harness are caught half-written (so the
    check can fail)."""
    s = TrainingSession(_cfg(hidden=[400, 400], connectivity=[0.5]), n_tracked=0)
    versions = []
    for _ in range(2):
        versions.append((checkpoint.to_bytes(s), (s.metrics_csv() * 400).encode()))
        s.step(1)
    assert all(_kill_while_writing(versions, tmp_path, atomic=True, kills=6, seed=1))
    back = st_load((tmp_path / "atomic" / "checkpoint.safetensors").read_bytes())
    assert back["model.2.theta"].shape == (400, 400)
    assert not all(_kill_while_writing(versions, tmp_path, atomic=False, kills=6, seed=1))


def test_a_killed_writers_temp_file_is_removed_by_the_next_write(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = tmp_path / f".m.csv.{dead.pid}.x1.part"         # its writer is gone
    live = tmp_path / f".m.csv.{os.getppid()}.x2.part"      # a writer still running
    orphan.write_text("half")
    live.write_text("half")
    write_atomic(tmp_path / "m.csv", "a,b\n")
    assert not orphan.exists() and live.exists() and (tmp_path / "m.csv").read_text() == "a,b\n"
