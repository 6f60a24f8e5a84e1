"""The command line: run folders are never overwritten by accident, --threads, help that says
what every flag means and allows, and the sweep subcommand."""
from __future__ import annotations

import csv
import dataclasses

import pytest
import torch

from deepr_engine.run import cli
from deepr_engine.run.cli import build_parser, main
from deepr_engine.run.config import RunConfig, preset

QUICK = ["--preset", "digits-demo", "--steps", "20", "--quiet"]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_out_holding_a_run_is_refused_unless_forced(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *QUICK, "--out", str(out)]) == 0
    first = (out / "checkpoint.safetensors").read_bytes()
    assert main(["train", *QUICK, "--seed", "5", "--out", str(out)]) == 2
    err = one_line_error(capsys)
    assert "already holds a run" in err and f"--resume {out}" in err and "--force" in err
    assert (out / "checkpoint.safetensors").read_bytes() == first     # untouched
    assert main(["train", *QUICK, "--seed", "5", "--out", str(out), "--force"]) == 0
    assert (out / "checkpoint.safetensors").read_bytes() != first


def test_resume_writes_back_to_its_own_folder_but_not_over_another_run(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", *QUICK, "--out", str(a)]) == 0
    assert main(["train", *QUICK, "--out", str(b)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(a), "--steps", "15", "--quiet"]) == 0
    assert "step 35" in capsys.readouterr().out          # --steps on --resume adds steps
    assert main(["train", "--resume", str(a), "--steps", "5", "--quiet", "--out", str(b)]) == 2
    assert "already holds a run" in one_line_error(capsys)
    assert main(["train", "--resume", str(a), "--steps", "5", "--quiet", "--out", str(tmp_path / "c")]) == 0


@pytest.mark.parametrize("where", ["file", "below a file"])
def test_out_pointing_at_a_file_is_one_line_and_exit_2(tmp_path, capsys, where):
    f = tmp_path / "notes.txt"
    f.write_text("x")
    out = f if where == "file" else f / "run"
    assert main(["train", *QUICK, "--out", str(out)]) == 2
    err = one_line_error(capsys)
    assert "--out" in err and "is a file" in err
    assert f.read_text() == "x"


def test_threads_sets_torch_threads_and_defaults_to_one(tmp_path, capsys):
    before = torch.get_num_threads()
    try:
        assert main(["train", *QUICK, "--threads", "2", "--out", str(tmp_path / "a")]) == 0
        assert torch.get_num_threads() == 2
        assert main(["train", *QUICK, "--out", str(tmp_path / "b")]) == 0
        assert torch.get_num_threads() == 1
        for bad in ("0", "x", "1000"):
            assert main(["train", *QUICK, "--threads", bad, "--out", str(tmp_path / "c")]) == 2
            assert "--threads takes an integer in [1, 256]" in one_line_error(capsys)
    finally:
        torch.set_num_threads(before)


def _train_help() -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices["train"].format_help()


def test_train_help_says_what_every_flag_means_and_allows():
    text = " ".join(_train_help().split())
    squashed = "".join(text.split())   # argparse wraps lines at hyphens too
    for f in dataclasses.fields(RunConfig):
        meaning = "".join(RunConfig.allowed(f.name).help.split())
        assert meaning, f"RunConfig field {f.name} says nothing about itself"
        assert f"--{f.name.replace('_', '-')}" in text and meaning in squashed, f.name
    assert text.count("allowed:") >= len(dataclasses.fields(RunConfig))
    assert "steps ADDED to the run" in text and "--force" in text and "--threads" in text


RANGED = [f.name for f in dataclasses.fields(RunConfig)
          if RunConfig.allowed(f.name).low is not None or RunConfig.allowed(f.name).high is not None]


@pytest.mark.parametrize("name", RANGED)
def test_the_ranges_in_the_help_are_the_ones_validation_enforces(name):
    a = RunConfig.allowed(name)
    low, high, low_open = a.low, a.high, a.low_open
    assert "".join(a.describe().split()) in "".join(_train_help().split())
    base = preset("digits-demo")
    is_int = isinstance(getattr(base, name), int)
    step = 1 if is_int else None

    def ok(v):
        try:
            base.replace(**{name: v})
            return True
        except ValueError:
            return False
    if low is not None:
        assert ok(low) != low_open, f"{name} at its low end {low}"
        below = low - (step or max(abs(low) * 0.5, 1e-3))
        assert ok(below) == (a.zero != "" and below == 0)   # 0 may mean "auto" (t_end)
    if high is not None:
        assert ok(high), f"{name} at its high end {high}"
        assert not ok(high + (step or max(abs(high) * 0.5, 1e-3)))


@pytest.mark.parametrize("argv,needle", [
    (["sweep", "--grid", "frob=1,2"], "unknown field 'frob'"),
    (["sweep", "--grid", "lr=fast"], "--grid lr: takes a float"),
    (["sweep", "--grid", "lr=0.1", "--grid", "lr=0.2"], "given twice"),
    (["sweep", "--random", "lr=log:0:1"], "0 < low"),
    (["sweep", "--random", "lr=gauss:0:1"], "log or uniform"),
    (["sweep", "--samples", "3", "--grid", "lr=0.1"], "--samples needs"),
    (["sweep", "--seeds", "0"], "--seeds"),
    (["sweep", "--seeds", "two"], "--seeds"),
    (["sweep", "--grid", "lr=500"], "lr must be in (0, 100]"),
    (["sweep", "--val-fraction", "0"], "--val-fraction"),
    (["sweep", "--cpus-per-trial", "0"], "--cpus-per-trial"),
    (["sweep", "--grid", "seed=1,2"], "--seeds"),
    (["sweep", "--asha", "--executor", "tasks"], "--asha needs"),
    (["sweep", "--executor", "spark"], "--executor"),
])
def test_bad_sweep_flags_are_one_line_and_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    assert needle in one_line_error(capsys)


def test_sweep_out_pointing_at_a_file_is_refused(tmp_path, capsys):
    f = tmp_path / "x"
    f.write_text("")
    assert main(["sweep", "--grid", "lr=0.1", "--out", str(f)]) == 2
    assert "is a file" in one_line_error(capsys)


def test_sweep_command_of_the_issue_writes_one_row_per_trial(tmp_path, capsys):
    out = tmp_path / "sw"
    handler = cli.signal.getsignal(cli.signal.SIGTERM)
    assert main(["sweep", "--preset", "digits-demo", "--steps", "30", "--grid", "temperature=1e-6,1e-4",
                 "--grid", "alpha=1e-5,1e-4", "--seeds", "1", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("] temperature=") == 4        # one progress line per trial
    assert "best on validation" in captured.out
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    assert list(rows[0])[:10] == ["temperature", "alpha", "seed", "val_acc", "test_acc", "connectivity",
                                  "turnover", "status", "seconds", "steps_done"]
    assert {(r["temperature"], r["alpha"]) for r in rows} == {
        ("1e-06", "1e-05"), ("1e-06", "0.0001"), ("0.0001", "1e-05"), ("0.0001", "0.0001")}
    assert all(r["status"] == "ok" for r in rows)
    # the same command again runs nothing
    assert main(["sweep", "--preset", "digits-demo", "--steps", "30", "--grid", "temperature=1e-6,1e-4",
                 "--grid", "alpha=1e-5,1e-4", "--seeds", "1", "--out", str(out)]) == 0
    assert "4 already in" in capsys.readouterr().err
    assert cli.signal.getsignal(cli.signal.SIGTERM) is handler   # the sweep's handler is gone
