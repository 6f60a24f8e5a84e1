"""Fork from here: a fork with unchanged hyperparameters continues its parent bit for bit; a
fork with a change differs only by it; checkpoints carry where a run forked off."""
import torch

from deepr_engine.run import checkpoint
from deepr_engine.run.config import preset
from deepr_engine.run.session import TrainingSession


def state(s: TrainingSession) -> list[torch.Tensor]:
    return [t.detach().clone() for t in s.model.state_dict().values()] + \
        [l.active_idx.clone() for l in s.layers]


def test_unchanged_fork_matches_the_parents_continuation_bit_for_bit():
    parent = TrainingSession(preset("digits-demo").replace(lr_decay=0.9))
    parent.step(37)                         # mid-epoch, after rewiring has happened
    child = parent.fork()
    assert child.step_count == parent.step_count == 37 and child.data is parent.data
    assert child.fork_of == {"step": 37, "changes": {}}
    cursors = [parent.telemetry.events_since(None).cursor, child.telemetry.events_since(None).cursor]
    parent.step(60)
    child.step(60)                          # crosses an epoch boundary (data order, lr decay)
    for a, b in zip(state(parent), state(child), strict=True):
        assert torch.equal(a, b)
    assert parent.last == child.last and parent.lr == child.lr < 0.9 * preset('digits-demo').lr + 1e-12
    for a, b in zip(parent.telemetry.events_since(cursors[0]).layers,
                    child.telemetry.events_since(cursors[1]).layers):
        assert all((a[k] == b[k]).all() and len(a[k]) for k in ("pruned", "activated"))


def test_a_fork_with_a_change_differs_by_it_and_leaves_the_parent_alone():
    parent = TrainingSession("digits-demo")
    parent.step(20)
    before = state(parent)
    t = parent.hyperparams()["temperature"]
    hot = parent.fork(temperature=t * 1000)
    assert hot.hyperparams()["temperature"] == t * 1000 and parent.hyperparams()["temperature"] == t
    assert all(torch.equal(a, b) for a, b in zip(before, state(parent)))   # forking is a read
    assert all(torch.equal(a, b) for a, b in zip(before, state(hot)))      # same state at the fork
    parent.step(30)
    hot.step(30)
    assert not all(torch.equal(a, b) for a, b in zip(state(parent), state(hot)))


def test_a_checkpoint_keeps_the_fork_point():
    child = TrainingSession("spiral-demo").fork(lr=0.01)
    again = checkpoint.load(checkpoint.to_bytes(child))
    assert again.fork_of == {"step": 0, "changes": {"lr": 0.01}}


def test_train_fork_from_starts_a_new_folder_that_continues_like_resume(tmp_path):
    from safetensors.torch import load_file

    from deepr_engine.run.cli import main
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert main(["train", "--preset", "spiral-demo", "--steps", "40", "--out", str(a), "--quiet"]) == 0
    before = (a / "checkpoint.safetensors").read_bytes()
    assert main(["train", "--fork-from", str(a), "--steps", "25", "--out", str(b), "--quiet"]) == 0
    assert main(["train", "--resume", str(a), "--steps", "25", "--out", str(c), "--quiet"]) == 0
    assert main(["train", "--fork-from", str(a), "--resume", str(a), "--quiet"]) == 2
    forked, resumed = (load_file(p / "checkpoint.safetensors") for p in (b, c))
    model = [k for k in forked if k.startswith("model.")]
    assert model and all(torch.equal(forked[k], resumed[k]) for k in model)
    assert checkpoint.load(b / "checkpoint.safetensors").fork_of == {"step": 40, "changes": {}}
    assert (a / "checkpoint.safetensors").read_bytes() == before   # the source is untouched
