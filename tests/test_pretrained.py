import torch

from irkernels.data.images import PairSet
from irkernels.pretrained import PretrainConfig, pretrained_network


def _pairs(seed: int) -> PairSet:
    g = torch.Generator().manual_seed(seed)
    hq = torch.randint(0, 256, (6, 3, 16, 16), generator=g, dtype=torch.uint8)
    lq = torch.randint(0, 256, (6, 3, 8, 8), generator=g, dtype=torch.uint8)
    return PairSet(lq, hq)


def test_trains_once_then_reuses_and_keys_on_data(tmp_path):
    cfg = PretrainConfig(model="edsr-tiny", scale=2, steps=2, batch_size=2, device="cpu", progress=False)
    net, info = pretrained_network(cfg, _pairs(0), cache_dir=str(tmp_path))
    assert not info["reused"] and info["steps"] == 2 and info["pairs"] == 6
    again, info2 = pretrained_network(cfg, _pairs(0), cache_dir=str(tmp_path))
    assert info2["reused"] and info2["checkpoint"] == info["checkpoint"]
    for a, b in zip(net.state_dict().values(), again.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    other, info3 = pretrained_network(cfg, _pairs(1), cache_dir=str(tmp_path))  # other data: a new network
    assert not info3["reused"] and info3["cache_key"] != info["cache_key"]
    longer = PretrainConfig(**{**cfg.__dict__, "steps": 3})
    assert pretrained_network(longer, _pairs(0), cache_dir=str(tmp_path))[1]["cache_key"] != info["cache_key"]
