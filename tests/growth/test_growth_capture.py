"""capture_sites: one pass gives every site's capture_site tensors."""

import pytest
import torch

from growray.growth.capture import capture_site, capture_sites
from growray.testing.initializers import PROBE_FAMILIES, probe_batch

torch.set_num_threads(1)


@pytest.mark.parametrize("family", sorted(PROBE_FAMILIES))
@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("with_grad", [False, True])
def test_capture_sites_matches_one_capture_per_site(family, train, with_grad):
    model = PROBE_FAMILIES[family](0).train(train)
    x, y = probe_batch(model)
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    many = capture_sites(model, model.sites(), x, y, with_grad=with_grad)
    for site in model.sites():
        one = capture_site(model, site, x, y, with_grad=with_grad)
        for field in ("inputs", "pre", "post", "consumer_inputs", "out_grad", "post_grad", "pre_grad"):
            a, b = getattr(one, field), getattr(many[site], field)
            assert (a is None) == (b is None), field
            if a is not None:
                torch.testing.assert_close(b, a, rtol=0, atol=0, msg=f"{site} {field}")
    for k, v in model.named_buffers():  # BatchNorm statistics left as they were
        torch.testing.assert_close(v, buffers[k], rtol=0, atol=0)
    assert all(p.grad is None for p in model.parameters())
