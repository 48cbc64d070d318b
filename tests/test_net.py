import pytest
import torch

from fststyle.net import TransformerNet


@pytest.mark.parametrize("size", [(1, 1), (5, 3), (17, 31), (33, 64), (64, 47)])
def test_output_is_the_padded_inputs_output_cropped(size):
    """Any size comes back: the input is padded to a multiple of 16 by replicating its border, and the
    output cropped to the input's size. The reference is built here from the network's stages, on an
    input padded here (the stages see exactly that input)."""
    net = TransformerNet(width=8, num_residual=1).eval()
    x = torch.rand(2, 3, *size)
    h, w = size
    padded = torch.nn.functional.pad(x, (0, -w % 16, 0, -h % 16), mode="replicate")
    seen = []
    hook = net.encoder.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    with torch.no_grad():
        y = net(x)
        hook.remove()
        by_hand = torch.sigmoid(net.decoder(net.residuals(net.encoder(padded, None), None), None)[..., :h, :w])
    assert y.shape == x.shape and padded.shape[-1] % 16 == 0 and padded.shape[-2] % 16 == 0 and max(padded.shape[-2:]) < max(h, w) + 16
    assert torch.equal(seen[0], padded)
    torch.testing.assert_close(y, by_hand)


@pytest.mark.parametrize("norm,upsample", [("instance", "nearest"), ("batch", "transpose"), ("instance", "transpose")])
def test_variants_keep_odd_sizes(norm, upsample):
    net = TransformerNet(width=8, num_residual=2, norm=norm, upsample=upsample).eval()
    assert net(torch.rand(1, 3, 37, 29)).shape == (1, 3, 37, 29)


def test_default_is_johnson_architecture():
    net = TransformerNet()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    # 3 encoder convs + 2 per residual block + 2 upsampling convs + the output conv
    assert len(convs) == 3 + 2 * 5 + 2 + 1
    assert (convs[0].kernel_size, convs[0].out_channels) == ((9, 9), 32)
    assert [c.stride for c in convs[1:3]] == [(2, 2), (2, 2)]
    assert (convs[-1].kernel_size, convs[-1].out_channels) == ((9, 9), 3)
    assert sum(isinstance(m, torch.nn.InstanceNorm2d) for m in net.modules()) == 3 + 2 * 5 + 2
    assert 1.6e6 < sum(p.numel() for p in net.parameters()) < 1.8e6
    # only the output convolution has a bias: every other one feeds a norm layer, which removes it
    assert [c.bias is not None for c in convs] == [False] * (len(convs) - 1) + [True]


def test_gradients_reach_the_first_layer():
    net = TransformerNet(width=8, num_residual=1)
    net(torch.rand(1, 3, 19, 23)).mean().backward()
    assert net.encoder[0][0][1].weight.grad.abs().sum() > 0


def test_bad_choices_are_refused():
    with pytest.raises(ValueError, match="model.norm"):
        TransformerNet(norm="layer")
    with pytest.raises(ValueError, match="model.upsample"):
        TransformerNet(upsample="bilinear")


@pytest.mark.parametrize("num_residual,upsample", [(1, "nearest"), (5, "nearest"), (5, "transpose")])
def test_receptive_radius_is_how_far_a_pixel_reaches(num_residual, upsample):
    """With instance norm's statistics held fixed (as tiling does), changing one input pixel changes
    output pixels up to receptive_radius away, and exactly that far from one of the four places a pixel
    can have on the network's 4-px grid (the reach differs by up to 3 px between them)."""
    from fststyle.inference.tiling import fixed_instance_stats, measure_instance_stats

    net = TransformerNet(width=4, num_residual=num_residual, upsample=upsample).eval()
    x = torch.rand(1, 3, 192, 192)
    reaches = []
    with torch.no_grad(), fixed_instance_stats(net, measure_instance_stats(net, x)):
        plain = net(x)
        for at in range(96, 100):
            poked = x.clone()
            poked[..., at, at] += 1
            ys, xs = torch.nonzero((plain - net(poked)).abs().amax(1)[0] > 0, as_tuple=True)
            reaches.append(max((ys - at).abs().max().item(), (xs - at).abs().max().item()))
    assert max(reaches) == net.receptive_radius and min(reaches) < net.receptive_radius


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_nearest_upsampling_has_the_built_in_values_and_gradient(layout):
    """NearestUpsample2x's own gradient (each 2x2 block summed) equals nn.Upsample's, in both layouts;
    in eval mode it is nn.Upsample itself (what the exporters see)."""
    from fststyle.net import NearestUpsample2x

    x = torch.randn(2, 5, 7, 9).to(memory_format=layout).requires_grad_()
    reference = torch.nn.Upsample(scale_factor=2, mode="nearest")
    y, y_ref = NearestUpsample2x()(x), reference(x)
    grad = torch.randn_like(y)
    (g,), (g_ref,) = torch.autograd.grad(y, x, grad), torch.autograd.grad(y_ref, x, grad)
    assert torch.equal(y, y_ref) and y.grad_fn.name() != y_ref.grad_fn.name()
    torch.testing.assert_close(g, g_ref, rtol=1e-6, atol=1e-6)
    evaluated = NearestUpsample2x().eval()(x)
    assert torch.equal(evaluated, y_ref) and evaluated.grad_fn.name() == y_ref.grad_fn.name()


@pytest.mark.parametrize("num_styles", [1, 3])
def test_a_channels_last_network_computes_the_same_and_stays_channels_last(num_styles):
    """Channels last (what the CPU runs fastest): the same pictures and gradients as channels first, in a
    batch whose images have their own statistics and styles, and every layer's output stays channels last
    (the built-in instance norm returned channels first, and each convolution converted the map back)."""
    import copy

    torch.manual_seed(0)
    net = TransformerNet(width=8, num_residual=1, num_styles=num_styles).double()  # float64: agreement beyond rounding
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))  # scales and shifts other than 1 and 0
    x = torch.rand(2, 3, 37, 45, dtype=torch.float64) * torch.tensor([1.0, 0.3], dtype=torch.float64).view(2, 1, 1, 1)
    style = None if num_styles == 1 else torch.tensor([[1.0, 0, 0], [0.2, 0.3, 0.5]], dtype=torch.float64)
    fast = copy.deepcopy(net).to(memory_format=torch.channels_last)
    layouts = []
    # Not the inner norm of a conditional one: a hook there makes the conditional norm call it on its own.
    kinds = {"ReflectionPad2d", "Conv2d", "ReLU", "ResidualBlock", "NearestUpsample2x", "InstanceNorm2d" if num_styles == 1 else "ConditionalInstanceNorm2d"}
    hooks = [m.register_forward_hook(lambda m, i, o: layouts.append((type(m).__name__, o.is_contiguous(memory_format=torch.channels_last))))
             for m in fast.modules() if type(m).__name__ in kinds]
    x_last = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    x_first = x.clone().requires_grad_()
    y_last, y_first = fast(x_last, style), net(x_first, style)
    for h in hooks:
        h.remove()
    torch.testing.assert_close(y_last, y_first, atol=1e-10, rtol=0)
    assert {name for name, _ in layouts} == kinds
    assert [name for name, last in layouts if not last] == []
    grad = torch.rand_like(y_first)
    torch.testing.assert_close(torch.autograd.grad(y_last, x_last, grad)[0], torch.autograd.grad(y_first, x_first, grad)[0], atol=1e-10, rtol=0)
