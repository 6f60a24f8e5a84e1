"""Deep R under DistributedDataParallel: 2 CPU processes (gloo), each with its own data shard.
The ranks must end with identical active sets and theta (same seeds, all-reduced gradients);
a control without the all-reduce shows the check can fail."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from deepr_engine import DeepR, rewired_layers, sparsify
from deepr_engine import distributed

STEPS = 200


def _model(compute):
    return sparsify(nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 10)),
                    connectivity=[0.15, 0.3], seed=0, compute=compute)


def _state(model):
    out = {}
    for i, l in enumerate(rewired_layers(model)):
        theta, _ = l.gather_active()
        out[f"{i}.active_idx"] = l.active_idx.clone()
        out[f"{i}.theta"] = theta
    return out


def _worker(rank, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(100 + rank)  # each rank its own data shard
    x, y = torch.randn(32, 20, generator=g), torch.randint(10, (32,), generator=g)
    result = {}
    for compute in ("dense", "sparse"):
        for parallel in (True, False):
            model = _model(compute)
            net = distributed.wrap(model) if parallel else model
            opt = DeepR(model, lr=0.05, alpha=1e-3, temperature=1e-3, seed=0)
            turnover = 0
            for _ in range(STEPS):
                opt.zero_grad()
                nn.functional.cross_entropy(net(x), y).backward()
                opt.step()  # the foreign-write check runs here: it must not fire
                turnover += sum(ev["pruned"].numel() for ev in opt.last_events)
            result[(compute, parallel)] = (_state(model), turnover)
    torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ranks_make_identical_rewiring_choices(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    for compute in ("dense", "sparse"):
        (s0, turnover), (s1, _) = r0[(compute, True)], r1[(compute, True)]
        assert turnover > 500, "the test needs rewiring to happen"
        for key in s0:
            assert torch.equal(s0[key], s1[key]), f"{compute}: ranks differ in {key}"
        # control: the same run without DDP (each rank its own gradients) diverges
        c0, c1 = r0[(compute, False)][0], r1[(compute, False)][0]
        assert not all(torch.equal(c0[k], c1[k]) for k in c0)
