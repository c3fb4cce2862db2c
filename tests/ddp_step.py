"""One optimiser step of a small camera + low-dim policy network on a fixed batch, through the training
loop's loss module: alone (``python tests/ddp_step.py OUT``) on the whole batch, or under
``torchrun --nproc_per_node=N`` with each rank on its 1/N of the rows. Rank 0 writes the gradients
and the updated weights to OUT; test_distributed.py compares the two.

The step is plain SGD: it is linear in the gradient, so float noise in the averaged gradient stays
float noise in the weights. Adam's first steps divide each gradient by its own size, so an element
whose gradient nearly cancels over the rows (relative noise large) moves by noise of the order of the
learning rate: equal gradients are what DDP promises."""

from __future__ import annotations

import sys

import torch

from shortcut_policy.config import load_config
from shortcut_policy.features import obs_features
from shortcut_policy.models.network import build_network
from shortcut_policy.training import distributed

BATCH = 8


class Regression:
    """A loss without random draws, so that the same rows give the same gradient however they are split
    over ranks (GroupNorm normalises per sample, so no statistic crosses rows)."""

    def loss(self, net, x1, cond_input, target_net=None, generator=None):
        cond = net.encode(cond_input)  # inside DDP's forward: the image encoder's gradients are averaged too
        b = x1.shape[0]
        loss = ((net(0.5 * x1, torch.full((b,), 0.3), torch.zeros(b), cond) - x1) ** 2).mean()
        return loss, {"loss": loss.item()}


def main(out: str) -> None:
    ranks, device = distributed.init(torch.device("cpu"))
    torch.manual_seed(0)
    policy = load_config({"policy": {"horizon": 8, "n_action_steps": 4, "unet": {"down_dims": [16, 32]},
                                     "vision": {"num_kp": 4, "feature_dim": 8, "crop_ratio": 1.0}}}).policy
    net = build_network(policy, obs_features({"cam": (24, 24, 3), "pos": (2,)}, rgb=["cam"]), 2)
    data = torch.Generator().manual_seed(1)
    obs = {"cam": torch.rand(BATCH, 2, 24, 24, 3, generator=data) * 2 - 1, "pos": torch.randn(BATCH, 2, 2, generator=data)}
    x1 = torch.randn(BATCH, 8, 2, generator=data)
    rows = slice(ranks.rank * BATCH // ranks.world_size, (ranks.rank + 1) * BATCH // ranks.world_size)
    module = distributed.wrap(Regression(), net, ranks, device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    loss, _ = module(x1[rows], {k: v[rows] for k, v in obs.items()})
    loss.backward()
    grads = {f"grad.{name}": p.grad.clone() for name, p in net.named_parameters()}
    optimizer.step()
    if ranks.main:
        torch.save({**grads, **net.state_dict()}, out)
    distributed.close()


if __name__ == "__main__":
    main(sys.argv[1])
