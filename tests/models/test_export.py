"""ONNX export: onnxruntime gives the same logits as torch; metadata travels with the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from radiolens.errors import CheckpointError, ConfigError
from radiolens.models import (
    ModelInfo,
    build_model,
    export_onnx,
    onnx_session,
    read_onnx_info,
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    from radiolens.models import Preprocessing

    info = ModelInfo(architecture="small-vgg", task="multilabel", labels=["Effusion", "Mass"],
                     preprocessing=Preprocessing(image_size=64, mean=0.5, std=0.25))
    torch.manual_seed(0)
    model = build_model("small-vgg", n_outputs=2, dropout=0.3)
    model.train()  # export must switch to eval and restore the mode afterwards
    path = export_onnx(model, info, tmp_path_factory.mktemp("onnx") / "model.onnx")
    assert model.training
    return path, model.eval()


def test_onnxruntime_matches_torch(exported: tuple[Path, torch.nn.Module]) -> None:
    path, model = exported
    session = onnx_session(path, threads=1)
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    x = torch.rand(3, 1, 64, 64)  # batch 3: the batch axis is dynamic (exported with 1)
    (logits,) = session.run(["logits"], {"image": x.numpy()})
    with torch.no_grad():
        expected = model(x).numpy()
    assert logits.shape == (3, 2)
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4)


def test_model_info_is_embedded(exported: tuple[Path, torch.nn.Module]) -> None:
    info = read_onnx_info(exported[0])
    assert info.labels == ["Effusion", "Mass"]
    assert info.preprocessing.image_size == 64


def test_session_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        onnx_session(tmp_path / "missing.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="cannot load"):
        onnx_session(tmp_path / "bad.onnx")
    with pytest.raises(ConfigError, match="threads"):
        onnx_session(tmp_path / "bad.onnx", threads=0)


def test_onnx_without_radiolens_metadata(tmp_path: Path,
                                         make_info: Callable[..., ModelInfo]) -> None:
    import onnx

    path = export_onnx(build_model("small-vgg", 2), make_info(), tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    onnx.save(proto, str(path))
    with pytest.raises(CheckpointError, match="no radiolens model info"):
        read_onnx_info(path)
