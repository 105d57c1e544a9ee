"""Published DenseNet-121 weights: torchvision and CheXNet key layouts, grey folding, CheXNet
conversion, freeze_backbone.

The published files are never downloaded: the fixtures build random DenseNet-121 weights and
save them in exactly the torchvision and CheXNet layouts with torch.save.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from monai.networks.nets import DenseNet121

from radiolens.errors import CheckpointError, ConfigError
from radiolens.findings import CHEXNET_ORDER
from radiolens.models import (
    MODEL_NAMES,
    build_model,
    convert_chexnet,
    freeze_backbone,
    head_layer,
    load_pretrained,
    load_run,
    read_state_dict,
    to_monai_densenet_keys,
)

Tensors = dict[str, torch.Tensor]


def _random_monai_state(out_channels: int) -> Tensors:
    """A MONAI DenseNet121 (3 channels) state dict with random weights and BN statistics."""
    gen = torch.Generator().manual_seed(1)
    state = DenseNet121(spatial_dims=2, in_channels=3, out_channels=out_channels).state_dict()
    out: Tensors = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            out[key] = value.clone()
        elif key.endswith(("running_var", "norm0.weight")) or re.search(r"norm\d?\.weight$", key):
            out[key] = 0.5 + torch.rand(value.shape, generator=gen)
        elif key.endswith(("running_mean", ".bias")):
            out[key] = 0.1 * torch.randn(value.shape, generator=gen)
        else:
            out[key] = torch.randn(value.shape, generator=gen) * value.std().clamp_min(1e-3)
    return out


def _to_torchvision(state: Tensors) -> Tensors:
    return {k.replace(".layers.", ".").replace("class_layers.out.", "classifier."): v
            for k, v in state.items()}


def _to_chexnet(state: Tensors) -> Tensors:
    """CheXNet's model.pth.tar layout: DataParallel + old 'norm.1' names, no BN counters."""
    out: Tensors = OrderedDict()
    for key, value in _to_torchvision(state).items():
        if key.endswith("num_batches_tracked"):
            continue
        key = re.sub(r"(denselayer\d+)\.(norm|conv)(\d)", r"\1.\2.\3", key)
        key = key.replace("classifier.", "classifier.0.")
        out["module.densenet121." + key] = value
    return out


def _reference(state: Tensors, in_channels: int = 3) -> torch.nn.Module:
    model = DenseNet121(spatial_dims=2, in_channels=in_channels,
                        out_channels=state["class_layers.out.bias"].shape[0])
    model.load_state_dict(state)
    return model.eval()


@pytest.fixture(scope="module")
def chexnet_state() -> Tensors:
    return _random_monai_state(14)


@pytest.fixture(scope="module")
def chexnet_file(tmp_path_factory: pytest.TempPathFactory, chexnet_state: Tensors) -> Path:
    path = tmp_path_factory.mktemp("chexnet") / "model.pth.tar"
    torch.save({"epoch": 7, "arch": "densenet121", "best_loss": 0.15,
                "state_dict": _to_chexnet(chexnet_state)}, path)
    return path


@pytest.fixture(scope="module")
def torchvision_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Tensors]:
    state = _random_monai_state(1000)
    path = tmp_path_factory.mktemp("tv") / "densenet121.pth"
    torch.save(_to_torchvision(state), path)
    return path, state


def test_chexnet_keys_map_onto_monai_names(chexnet_state: Tensors) -> None:
    chexnet = _to_chexnet(chexnet_state)
    assert "module.densenet121.features.denseblock1.denselayer1.norm.1.weight" in chexnet
    assert "module.densenet121.classifier.0.weight" in chexnet
    mapped = to_monai_densenet_keys(chexnet)
    expected = {k for k in chexnet_state if not k.endswith("num_batches_tracked")}
    assert set(mapped) == expected
    assert all(torch.equal(mapped[k], chexnet_state[k]) for k in mapped)


def test_torchvision_keys_map_onto_monai_names(chexnet_state: Tensors) -> None:
    torchvision = _to_torchvision(chexnet_state)
    assert "features.denseblock1.denselayer1.norm1.weight" in torchvision
    assert "classifier.weight" in torchvision
    assert list(to_monai_densenet_keys(torchvision)) == list(chexnet_state)


def test_mapping_is_idempotent_on_monai_names(chexnet_state: Tensors) -> None:
    assert list(to_monai_densenet_keys(chexnet_state)) == list(chexnet_state)


def test_convert_chexnet_reproduces_the_source_logits(
        tmp_path: Path, chexnet_file: Path, chexnet_state: Tensors) -> None:
    info = convert_chexnet(chexnet_file, tmp_path / "chexnet")
    assert info.labels == list(CHEXNET_ORDER)
    assert info.preprocessing.channels == 3
    assert info.preprocessing.image_size == 224
    assert info.preprocessing.mean_per_channel() == [0.485, 0.456, 0.406]
    assert set(info.thresholds.values()) == {0.5}
    assert info.threshold_method == "default 0.5 (no validation data)"
    assert len(info.training["source_sha256"]) == 64

    model, loaded_info = load_run(tmp_path / "chexnet")
    assert loaded_info == info
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), _reference(chexnet_state)(x), rtol=0, atol=1e-5)


def test_grey_folding_equals_the_rgb_model_on_a_repeated_grey_image(
        torchvision_file: tuple[Path, Tensors]) -> None:
    path, state = torchvision_file
    model = build_model("densenet121", n_outputs=3, in_channels=1)
    report = load_pretrained(model, path)
    assert report.source_format == "torchvision"
    assert report.folded_to_grey
    assert not report.head_loaded  # 1000 ImageNet classes vs 3 outputs: new head kept
    assert report.complete and not report.unexpected
    assert model.state_dict()["features.conv0.weight"].shape == (64, 1, 7, 7)

    # Same head on both sides, so the logits must match: the grey model sees x, the RGB
    # reference sees x in all three channels.
    rgb = _reference({**state, "class_layers.out.weight": model.class_layers.out.weight,
                      "class_layers.out.bias": model.class_layers.out.bias})
    model.eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), rgb(x.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-4)


def test_head_is_loaded_only_when_wanted(chexnet_file: Path, chexnet_state: Tensors) -> None:
    model = build_model("densenet121", n_outputs=14, in_channels=1)
    assert load_pretrained(model, chexnet_file).head_loaded
    assert torch.equal(model.class_layers.out.weight, chexnet_state["class_layers.out.weight"])

    fresh = build_model("densenet121", n_outputs=14, in_channels=1)
    before = fresh.class_layers.out.weight.clone()
    report = load_pretrained(fresh, chexnet_file, keep_head=False)
    assert report.source_format == "chexnet"
    assert not report.head_loaded
    assert report.complete  # the missing BN counters of old checkpoints are not reported
    assert torch.equal(fresh.class_layers.out.weight, before)


def test_no_folding_when_not_allowed(chexnet_file: Path) -> None:
    model = build_model("densenet121", n_outputs=2, in_channels=1)
    with pytest.raises(CheckpointError, match="fold_to_grey=True"):
        load_pretrained(model, chexnet_file, fold_to_grey=False)


def test_partial_checkpoint_reports_missing_and_unexpected(
        tmp_path: Path, chexnet_state: Tensors) -> None:
    state = dict(_to_torchvision(chexnet_state))
    del state["features.norm5.weight"]
    state["features.extra.weight"] = torch.zeros(3)
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    report = load_pretrained(build_model("densenet121", 14, in_channels=3), path)
    assert report.missing == ("features.norm5.weight",)
    assert report.unexpected == ("features.extra.weight",)
    assert not report.complete
    with pytest.raises(CheckpointError, match="incomplete"):
        convert_chexnet(path, tmp_path / "out")


def test_weights_of_another_network_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "resnet.pth"
    torch.save(build_model("resnet18", 2).state_dict(), path)
    with pytest.raises(CheckpointError, match="none of the"):
        load_pretrained(build_model("densenet121", 2), path)


def test_imagenet_weights_are_not_a_chexnet_checkpoint(
        tmp_path: Path, torchvision_file: tuple[Path, Tensors]) -> None:
    with pytest.raises(CheckpointError, match="no 14-output classifier"):
        convert_chexnet(torchvision_file[0], tmp_path / "out")


class _Opaque:
    """A class torch.load(weights_only=True) refuses to rebuild."""


def test_files_that_need_unpickling_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": _Opaque()}, path)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        read_state_dict(path)


def test_missing_or_empty_weight_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        read_state_dict(tmp_path / "nope.pth")
    torch.save({"epoch": 3}, tmp_path / "empty.pth")
    with pytest.raises(CheckpointError, match="no tensors"):
        read_state_dict(tmp_path / "empty.pth")


def test_safetensors_weights_are_read(tmp_path: Path, chexnet_state: Tensors) -> None:
    from safetensors.torch import save_file

    state = {k: v for k, v in _to_torchvision(chexnet_state).items() if "denseblock" not in k}
    save_file(state, tmp_path / "w.safetensors")
    assert read_state_dict(tmp_path / "w.safetensors").keys() == state.keys()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_freeze_backbone_leaves_only_the_head_trainable(name: str) -> None:
    model = build_model(name, n_outputs=4)
    trainable = freeze_backbone(model, name)
    head = model.get_submodule(head_layer(name))
    assert trainable == sum(p.numel() for p in head.parameters())
    assert trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_freeze_backbone_checks_the_architecture() -> None:
    with pytest.raises(ConfigError, match="no 'fc' layer"):
        freeze_backbone(build_model("small-vgg", 2), "resnet18")


@pytest.mark.parametrize("content", [b"\xde\xad\xbe\xef" * 64, b"PK\x03\x04garbage", b""])
def test_garbage_is_not_a_pytorch_checkpoint(tmp_path: Path, content: bytes,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from radiolens.cli.main import main

    path = tmp_path / "garbage.bin"
    path.write_bytes(content)
    assert main(["import-weights", "chexnet", str(path), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{path}: not a PyTorch checkpoint" in err
    assert "weights_only=False" not in err and len(err.strip().splitlines()) == 1
