"""The transformer denoiser: causal attention, and its two ways in for the condition."""

import pytest
import torch
from torch import nn

from shortcut_policy.models.transformer import TransformerDenoiser


def tiny(conditioning: str, causal: bool = True, randomize: bool = True) -> TransformerDenoiser:
    torch.manual_seed(0)
    net = TransformerDenoiser(action_dim=2, cond_dim=6, horizon=8, n_obs_steps=2, d_model=32, n_heads=4, n_layers=2,
                              dropout=0.0, causal=causal, conditioning=conditioning).eval()
    if randomize:  # adaLN-Zero's zero-initialised layers get weights, so that every path carries signal
        for p in net.parameters():
            if not p.any():
                nn.init.normal_(p, std=0.1)
    return net


def inputs(b: int = 3):
    gen = torch.Generator().manual_seed(1)
    return (torch.randn(b, 8, 2, generator=gen), torch.rand(b, generator=gen), torch.rand(b, generator=gen),
            torch.randn(b, 6, generator=gen))


@pytest.mark.parametrize("conditioning", ["cross_attention", "adaln"])
@pytest.mark.parametrize("causal", [True, False])
def test_a_causal_chunk_step_sees_no_later_step(conditioning, causal):
    net = tiny(conditioning, causal)
    x, t, d, cond = inputs()
    later = x.clone()
    later[:, 5:] += 1.0  # change chunk steps 5..7
    with torch.no_grad():
        before, after = net(x, t, d, cond), net(later, t, d, cond)
    earlier_moved = (before[:, :5] - after[:, :5]).abs().max()
    assert (before[:, 5:] - after[:, 5:]).abs().max() > 1e-3
    if causal:
        assert earlier_moved < 1e-6
    else:
        assert earlier_moved > 1e-3


@pytest.mark.parametrize("conditioning", ["cross_attention", "adaln"])
def test_every_condition_reaches_the_output(conditioning):
    net = tiny(conditioning)
    x, t, d, cond = inputs()
    with torch.no_grad():
        base = net(x, t, d, cond)
        for changed in (net(x, t + 0.1, d, cond), net(x, t, d + 0.1, cond), net(x, t, d, cond + 0.5)):
            assert (changed - base).abs().max() > 1e-4


def test_adaln_starts_as_zero_output():
    """adaLN-Zero: every block starts as the identity and the final layer outputs zero, so training starts
    from a network that predicts nothing, whatever the condition."""
    net = tiny("adaln", randomize=False)
    x, t, d, cond = inputs()
    with torch.no_grad():
        assert torch.count_nonzero(net(x, t, d, cond)) == 0
