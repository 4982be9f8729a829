"""Run under torchrun: featurize a small classifier with sharded per-example gradients; rank 0 writes the index.

python -m torch.distributed.run --standalone --nproc-per-node N distributed_worker.py OUT_DIR
"""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist
from torch import nn

from attribution_oracle.attribution import Attributor, ClassificationTask
from attribution_oracle.attribution.distributed import sharded


def main() -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    x, y = torch.randn(100, 6), torch.randint(0, 3, (100,))
    model = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3))
    attributor = Attributor(model, ClassificationTask(), proj_dim=16, seed=3, batch_size=16, device="cpu")
    with sharded(attributor):
        attributor.featurize((x, y))
        queries = attributor.query_features((x[:5], y[:5]))
    if dist.get_rank() == 0:
        index = attributor.build_index(sys.argv[1], [f"c{i}" for i in range(100)])
        torch.save(queries, f"{sys.argv[1]}/queries.pt")
        print(f"world {dist.get_world_size()} rows {len(index)}", flush=True)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
