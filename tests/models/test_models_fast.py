"""Inference rewrites (models/fast.py): exact on random BN statistics, originals untouched."""

import pytest
import torch
from torch import nn

from flowless.models import create_model
from flowless.models.fast import channels_last, conv_bn_pairs, fast_network, fold_batchnorm
from flowless.models.winograd import TemporalWinogradConv3d


def randomise_bn(net: nn.Module, seed: int = 0) -> nn.Module:
    """Random running statistics and affine parameters, so folding is not a no-op."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm3d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(n, generator=g) * 0.3)
    return net.eval()


def clips(channels: int = 3, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, channels, 8, 32, 32, generator=torch.Generator().manual_seed(1))


def count_bn(net: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm3d) for m in net.modules())


@pytest.mark.parametrize("arch,width", [("resnet10", 0.25), ("resnext50", 0.125)])
def test_folding_batchnorm_is_exact_on_random_statistics(arch, width):
    net = randomise_bn(create_model(arch, 5, width=width))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    folded = fold_batchnorm(net)
    assert count_bn(folded) == 0 and count_bn(net) > 0
    x = clips()
    with torch.no_grad():
        want, got = net(x), folded(x)
    assert want.abs().max() > 0.1  # the check means something
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # The original network is untouched (training code keeps using it).
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


class Custom(nn.Module):
    """BN without affine parameters after a conv with bias; a norm that is not a conv's."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv3d(2, 4, 3, padding=1, bias=True)
        self.bn1 = nn.BatchNorm3d(4, affine=False, eps=1e-3)
        self.norm = nn.BatchNorm3d(4)

    def forward(self, x):
        return self.norm(torch.relu(self.bn1(self.conv1(x))))


def test_fold_handles_bias_and_plain_bn_and_leaves_other_norms():
    net = randomise_bn(Custom())
    assert conv_bn_pairs(net) == [("conv1", "bn1")]
    folded = fold_batchnorm(net)
    assert isinstance(folded.bn1, nn.Identity) and isinstance(folded.norm, nn.BatchNorm3d)
    x = clips(channels=2)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x), rtol=1e-5, atol=1e-5)


def test_channels_last_and_fast_network_keep_logits_and_the_original():
    net = randomise_bn(create_model("resnet10", 3, in_channels=2, width=0.25))
    x = clips(channels=2)
    with torch.no_grad():
        want = net(x)
        for fast in (channels_last(net), fast_network(net)):
            torch.testing.assert_close(fast(x), want, rtol=1e-5, atol=1e-5)
    fast = fast_network(net)
    assert not any(p.requires_grad for p in fast.parameters()) and not fast.training
    assert isinstance(fast.net.conv1, TemporalWinogradConv3d)
    assert fast.net.conv1.conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert net.conv1.weight.is_contiguous() and count_bn(net) > 0
