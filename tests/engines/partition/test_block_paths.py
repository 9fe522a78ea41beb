"""benchmarks/partition_gpu.py sizes GPUs from a one-block mesh that takes a split block's code paths:
it must compute what the plain network computes, or its memory would describe some other computation."""

import copy

import torch

from benchmarks.partition_gpu import BlockPathsMesh
from engines.partition import conv, norm
from engines.partition.convert import partition_model
from engines.partition.models import build_model


def block_paths_against_plain(name: str) -> dict:
    torch.manual_seed(0)
    plain = build_model(name, out_channels=3, width=2).double()
    mesh = BlockPathsMesh((1, 1, 1))
    net = partition_model(copy.deepcopy(plain), mesh)
    calls = {"halo_pad": 0, "global_norm": 0}
    real = {"halo_pad": conv.halo_pad, "global_norm": norm.global_norm}

    def counting(name):
        def wrapped(*args, **kwargs):
            calls[name] += 1
            return real[name](*args, **kwargs)
        return wrapped

    conv.halo_pad, norm.global_norm = counting("halo_pad"), counting("global_norm")
    try:
        x = torch.randn(1, 1, 32, 32, 32, dtype=torch.float64, requires_grad=True)
        x_ref = x.detach().clone().requires_grad_()
        out, out_ref = net(x), plain(x_ref)
        out.square().sum().backward()
        out_ref.square().sum().backward()
    finally:
        conv.halo_pad, norm.global_norm = real["halo_pad"], real["global_norm"]
    # As partition-check's max_rel_err_grad: the largest gradient error over the largest reference gradient.
    grads = [(p.grad, q.grad) for p, q in zip(net.parameters(), plain.parameters(), strict=True)]
    grads.append((x.grad, x_ref.grad))
    grad_err = max(float((a - b).abs().max()) for a, b in grads) / max(float(b.abs().max()) for _, b in grads)
    out_err = float((out - out_ref).detach().abs().max() / out_ref.detach().abs().max())
    return {"out_err": out_err, "grad_err": grad_err, **calls}


def test_block_paths_take_the_halo_and_global_norm_paths_and_match_the_plain_network(ranks):
    (basicunet,) = ranks(1).run(block_paths_against_plain, "basicunet")
    assert basicunet["halo_pad"] > 10 and basicunet["global_norm"] > 10  # the split-block code really ran
    assert basicunet["out_err"] < 1e-9 and basicunet["grad_err"] < 1e-9  # issue 3's float64 tolerance
