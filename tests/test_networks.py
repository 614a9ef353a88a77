"""Backbones and heads: shapes at 256 px and small sizes, parameter counts of the reference, init, errors."""

import math

import pytest
import torch
from fasbench_plugins.networks import RFMetaCNN, TimmBackbone

from fasbench.errors import FasbenchError, UnknownNameError
from fasbench.interfaces import InputSpec
from fasbench.learners import ClassifierHead, DepthHead, build_backbone, build_heads
from fasbench.plugins import installed_plugins

pytestmark = pytest.mark.usefixtures("one_thread")


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _shapes(backbone, batch: int = 2) -> dict[str, tuple]:
    spec = backbone.input_spec
    depth_head, classifier = build_heads(backbone)
    with torch.no_grad():
        output = backbone(torch.rand(batch, spec.channels, spec.size, spec.size))
        return {
            "features": tuple(output.features.shape),
            "depth_features": tuple(output.depth_features.shape),
            "depth": tuple(depth_head(output.depth_features).shape),
            "logits": tuple(classifier(output.features).shape),
        }


# -- rfmeta_cnn -------------------------------------------------------------------------------------
def test_rfmeta_networks_have_the_reference_parameter_counts():
    # Hand-counted from models/DGFANet.py (3x3 convs with bias, BatchNorm weight + bias):
    # FeatExtractor 3,520 + 128 (stem) + 526,668 (block 1) + 2 x 600,396 (blocks 2, 3) = 1,731,108;
    # DepthEstmator 442,496 + 256 + 73,792 + 128 + 577 + 2 = 517,251;
    # FeatEmbedder 147,584 + 256 + 295,168 + 512 + 1,180,160 + 1,024 + 513 (fc) = 1,625,217.
    backbone = RFMetaCNN(width=1.0, input_size=32)
    depth_head, classifier = build_heads(backbone)
    assert (_count(backbone), _count(depth_head), _count(classifier)) == (1_731_108, 517_251, 1_625_217)
    assert (backbone.feature_channels, backbone.depth_channels) == (128, 384)


def test_rfmeta_shapes_at_256_px():
    backbone = RFMetaCNN(width=0.25, input_size=256)  # 1/16 of the FLOPs; the layout is width-independent
    assert backbone.input_spec == InputSpec(size=256, color="rgb_hsv", depth_size=32)
    assert _shapes(backbone, batch=1) == {
        "features": (1, 32, 32, 32),
        "depth_features": (1, 96, 32, 32),
        "depth": (1, 1, 32, 32),
        "logits": (1,),
    }


@pytest.mark.parametrize(
    ("width", "size", "color", "channels", "depth_size"),
    [(1.0, 32, "rgb_hsv", 128, 4), (0.125, 64, "rgb", 16, 8), (0.25, 8, "rgb_hsv", 32, 1)],
)
def test_rfmeta_shapes_at_small_sizes(width, size, color, channels, depth_size):
    backbone = RFMetaCNN(width=width, input_size=size, color=color)
    assert backbone.input_spec.channels == (6 if color == "rgb_hsv" else 3)
    assert _shapes(backbone) == {
        "features": (2, channels, depth_size, depth_size),
        "depth_features": (2, 3 * channels, depth_size, depth_size),
        "depth": (2, 1, depth_size, depth_size),
        "logits": (2,),
    }


def test_multi_scale_features_are_block_outputs_average_pooled_to_the_last_block():
    backbone = RFMetaCNN(width=0.125, input_size=32).eval()
    images = torch.rand(2, 6, 32, 32)
    with torch.no_grad():
        output = backbone(images)
        first = backbone.block1(backbone.stem(images))  # 16 x 16
    pooled = first.reshape(2, 16, 4, 4, 4, 4).mean((3, 5))  # 4x4 average pooling by hand
    torch.testing.assert_close(output.depth_features[:, :16], pooled)
    torch.testing.assert_close(output.depth_features[:, 32:], output.features)


def test_reference_initialisation():
    backbone = RFMetaCNN(width=1.0, input_size=32)
    classifier = ClassifierHead(128)
    batch_norms = [m for m in [*backbone.modules(), *classifier.modules()] if isinstance(m, torch.nn.BatchNorm2d)]
    weights = torch.cat([bn.weight.detach() for bn in batch_norms])
    assert weights.min() >= 0.02 and weights.max() <= 1.0 and 0.45 < weights.mean() < 0.57  # U(0.02, 1): 0.51
    assert all(bool((bn.bias == 0).all()) for bn in batch_norms)
    assert bool((classifier.fc.bias == 0).all())
    conv = backbone.block1[3]  # 128 -> 196, 225,792 weights: Xavier-normal std = sqrt(2 / (1152 + 1764))
    assert float(conv.weight.detach().std()) == pytest.approx(math.sqrt(2 / (128 * 9 + 196 * 9)), rel=0.01)


def test_heads_depth_is_non_negative_and_classifier_batch_norm_momentum_is_set():
    depth_head = DepthHead(12, width=0.5)
    with torch.no_grad():
        assert float(depth_head(torch.randn(3, 12, 4, 4)).min()) >= 0.0
    classifier = ClassifierHead(8, width=0.125, bn_momentum=1.0)
    assert {m.momentum for m in classifier.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {1.0}
    assert [m.out_channels for m in classifier.modules() if isinstance(m, torch.nn.Conv2d)] == [16, 32, 64]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"input_size": 30}, "input_size must be a multiple of 8"),
        ({"color": "bgr"}, "color must be one of rgb, rgb_hsv"),
        ({"width": 0}, r"width must be a number in \(0, 4\]"),
    ],
)
def test_rfmeta_cnn_refuses_bad_options(options, message):
    with pytest.raises(FasbenchError, match=message):
        RFMetaCNN(**options)


def test_build_backbone_through_the_registry_and_its_errors():
    backbone = build_backbone({"type": "rfmeta_cnn", "width": 0.125, "input_size": 16})
    assert isinstance(backbone, RFMetaCNN) and backbone.input_spec.size == 16
    assert "rfmeta_cnn" in installed_plugins().names("backbones")
    with pytest.raises(
        FasbenchError, match="backbone 'rfmeta_cnn' cannot take \\['widht'\\].*its options: color, input_size, width"
    ):
        build_backbone({"type": "rfmeta_cnn", "widht": 0.5})
    with pytest.raises(FasbenchError, match="needs a 'type' key|must be a mapping with a 'type' key"):
        build_backbone({"width": 0.5})


# -- timm -------------------------------------------------------------------------------------------
def test_timm_backbone_shapes_and_normalisation():
    backbone = build_backbone({"type": "timm:resnet18", "input_size": 64})
    assert isinstance(backbone, TimmBackbone) and backbone.input_spec == InputSpec(64, "rgb", 8)
    assert (backbone.feature_channels, backbone.depth_channels) == (512, 128 + 256 + 512)
    assert _shapes(backbone) == {
        "features": (2, 512, 2, 2),
        "depth_features": (2, 896, 8, 8),
        "depth": (2, 1, 8, 8),
        "logits": (2,),
    }
    torch.testing.assert_close(backbone.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    full = build_backbone({"type": "timm:resnet18", "input_size": 256})  # the paper's input size: 32 x 32 depth
    assert full.input_spec == InputSpec(256, "rgb", 32)
    assert _shapes(full, batch=1) == {
        "features": (1, 512, 8, 8),
        "depth_features": (1, 896, 32, 32),
        "depth": (1, 1, 32, 32),
        "logits": (1,),
    }
    six = TimmBackbone("resnet18", input_size=32, color="rgb_hsv")
    assert six.body.conv1.in_channels == 6 and six.mean.numel() == 6


def test_timm_pretrained_weights_come_from_the_named_file(tmp_path):
    import timm

    torch.manual_seed(5)
    reference = timm.create_model("resnet18")
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    backbone = TimmBackbone("resnet18", input_size=32, pretrained=str(path))
    torch.testing.assert_close(backbone.body.conv1.weight, reference.conv1.weight)
    torch.testing.assert_close(backbone.body.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)
    six = TimmBackbone("resnet18", input_size=32, color="rgb_hsv", pretrained=str(path))  # the stem adapted, as timm
    assert six.body.conv1.weight.shape[1] == 6
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, tmp_path / "wrapped.pth")
    wrapped = TimmBackbone("resnet18", input_size=32, pretrained=str(tmp_path / "wrapped.pth"))
    torch.testing.assert_close(wrapped.body.layer1[0].bn1.running_var, reference.layer1[0].bn1.running_var)


def test_a_torchvision_resnet_file_loads_into_timm_and_computes_the_same_features(tmp_path):
    """The authors' ImageNet weights are torchvision's files (resnet50-19c8e357.pth, resnet18-5c106cde.pth): their
    keys are timm's, so such a file is a valid ``backbone.pretrained``, and the body computes torchvision's
    layer4 (with the input normalisation off)."""
    import torchvision

    torch.manual_seed(6)
    reference = torchvision.models.resnet18().eval()
    path = tmp_path / "resnet18-torchvision.pth"
    torch.save(reference.state_dict(), path)
    backbone = TimmBackbone("resnet18", input_size=64, pretrained=str(path), normalize=False).eval()
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        x = reference.maxpool(reference.relu(reference.bn1(reference.conv1(images))))
        expected = reference.layer4(reference.layer3(reference.layer2(reference.layer1(x))))
        torch.testing.assert_close(backbone(images).features, expected)


def test_timm_width_narrows_a_resnet_keeping_its_structure():
    narrow = build_backbone({"type": "timm:resnet50", "width": 0.125, "input_size": 64})
    assert narrow.stage_channels[-3:] == [64, 128, 256] and narrow.feature_channels == 256
    assert len(narrow.body.layer3) == 6  # Bottleneck [3, 4, 6, 3]: the same depth
    out = narrow(torch.rand(2, 3, 64, 64))
    assert out.features.shape == (2, 256, 2, 2) and out.depth_features.shape == (2, 448, 8, 8)


def test_timm_errors_say_what_to_do(tmp_path):
    with pytest.raises(FasbenchError, match="never downloads weights"):
        TimmBackbone("resnet18", pretrained=str(tmp_path / "missing.pth"))
    torch.save(TimmBackbone("resnet34", input_size=32).body.state_dict(), tmp_path / "r34.pth")
    with pytest.raises(FasbenchError, match="do not fit timm:resnet18"):
        TimmBackbone("resnet18", input_size=32, pretrained=str(tmp_path / "r34.pth"))
    (tmp_path / "pickle.pth").write_bytes(b"not a torch file")
    with pytest.raises(FasbenchError, match="weights_only=True"):
        TimmBackbone("resnet18", input_size=32, pretrained=str(tmp_path / "pickle.pth"))
    with pytest.raises(FasbenchError, match="cannot download timm:resnet18's pretrained weights.*backbone.pretrained="):
        TimmBackbone("resnet18", input_size=32, pretrained="timm")  # HF_HUB_OFFLINE=1 in the tests: no hub
    with pytest.raises(UnknownNameError, match="unknown timm model 'resnet-18'; did you mean 'resnet18'"):
        TimmBackbone("resnet-18")
    with pytest.raises(FasbenchError, match="has no width multiplier"):
        build_backbone({"type": "timm:mobilenetv3_small_050", "width": 0.25})
    with pytest.raises(FasbenchError, match="at least 32"):
        TimmBackbone("resnet18", input_size=16)
