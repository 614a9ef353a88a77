"""Data-parallel pieces with two real gloo processes: sharding and gradient averaging."""

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fasbench import distributed
from fasbench.interfaces import DomainBatch


def full_batch():
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(8, 3, generator=generator)
    labels = torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 0])  # k = 4 live then 4 spoof, as the samplers deliver
    return DomainBatch(images, torch.zeros(8, 1, 2, 2), labels, domain=0)


def model():
    torch.manual_seed(1)
    return torch.nn.Linear(3, 1)


def loss_of(net, batch):
    logits = net(batch.images).squeeze(1)
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, batch.labels)


def _worker(rank, init_file, results):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        (local,) = distributed.shard_batches([full_batch()])
        net = model()
        loss_of(net, local).backward()
        distributed.average_gradients(net.parameters())
        results[rank] = (local.labels.tolist(), [p.grad.clone() for p in net.parameters()])
    finally:
        dist.destroy_process_group()


def test_two_ranks_average_to_the_full_batch_gradient(tmp_path):
    manager = mp.get_context("spawn").Manager()
    results = manager.dict()
    mp.spawn(_worker, args=(str(tmp_path / "init"), results), nprocs=2, join=True)
    net = model()
    loss_of(net, full_batch()).backward()
    expected = [p.grad for p in net.parameters()]
    for rank in (0, 1):
        labels, grads = results[rank]
        assert labels == [1.0, 1.0, 0.0, 0.0]  # each rank keeps a balanced slice
        for got, want in zip(grads, expected, strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-7)


def test_single_process_is_a_no_op():
    batch = full_batch()
    assert distributed.shard_batches([batch])[0] is batch
    assert distributed.world_size() == 1 and distributed.is_main()
