"""build_model: every architecture builds, returns logits, and has a working Grad-CAM layer."""

from __future__ import annotations

import pytest
import torch

from radiolens.errors import ConfigError
from radiolens.models import MODEL_NAMES, build_model, gradcam_target_layer, head_layer


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_returns_logits_for_small_grey_input(name: str) -> None:
    model = build_model(name, n_outputs=3).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, 64, 64))
    assert out.shape == (2, 3)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_head_layer_is_the_final_linear(name: str) -> None:
    model = build_model(name, n_outputs=5, in_channels=3)
    head = model.get_submodule(head_layer(name))
    assert isinstance(head, torch.nn.Linear)
    assert head.out_features == 5


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_gradcam_target_layer_gives_a_nonzero_map(name: str) -> None:
    from monai.visualize import GradCAM

    model = build_model(name, n_outputs=3).eval()
    cam = GradCAM(nn_module=model, target_layers=gradcam_target_layer(name))
    x = torch.rand(1, 1, 64, 64)
    maps = [cam(x=x, class_idx=c) for c in range(3)]
    assert all(m.shape == (1, 1, 64, 64) for m in maps)
    assert all(torch.isfinite(m).all() for m in maps)
    # A random head makes the weighted sum negative everywhere for some classes (ReLU -> 0),
    # but a layer that receives no gradient gives zero for all of them.
    assert any(float(m.amax()) > 0 for m in maps)


def test_small_vgg_accepts_300px_and_rectangular_input() -> None:
    model = build_model("small-vgg", n_outputs=1).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 1, 300, 300)).shape == (1, 1)
        assert model(torch.rand(1, 1, 96, 64)).shape == (1, 1)


def test_small_vgg_has_the_article_filters() -> None:
    model = build_model("small-vgg", n_outputs=2)
    widths = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths == [32, 64, 128, 512]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_dropout_does_not_change_weight_names(name: str) -> None:
    plain = build_model(name, n_outputs=2).state_dict()
    dropped = build_model(name, n_outputs=2, dropout=0.5).state_dict()
    assert list(plain) == list(dropped)


def test_dropout_is_active_in_train_mode_only() -> None:
    model = build_model("small-vgg", n_outputs=2, dropout=0.9)
    x = torch.rand(1, 1, 64, 64)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'densenet121'"):
        build_model("densenet-121", n_outputs=2)
    with pytest.raises(ConfigError, match="choose from"):
        gradcam_target_layer("vit")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_outputs": 0}, "n_outputs"),
    ({"n_outputs": 2, "dropout": 1.0}, "dropout"),
    ({"n_outputs": 2, "in_channels": 0}, "in_channels"),
    ({"n_outputs": 2, "no_such_option": 1}, "no_such_option"),
])
def test_bad_arguments_are_config_errors(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_model("small-vgg", **kwargs)


def test_extra_kwargs_reach_the_network() -> None:
    model = build_model("small-vgg", n_outputs=2, channels=(8, 16))
    widths = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths == [8, 16]


def test_models_without_torch_name_the_pip_extra() -> None:
    import subprocess
    import sys

    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from radiolens.errors import MissingDependencyError\n"
        "import radiolens.models\n"
        "print(radiolens.models.read_model_info('builtin:pneumonia-kermany').labels)\n"
        "try:\n"
        "    from radiolens.models import build_model\n"
        "except MissingDependencyError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert "['pneumonia']" in proc.stdout, proc.stderr      # metadata needs no torch
    assert "pip install 'radiolens[train]'" in proc.stdout, proc.stderr
