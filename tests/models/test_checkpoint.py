"""Run directories: save/load round trips, model.json schema, and every CheckpointError."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from radiolens.errors import CheckpointError
from radiolens.models import (
    ModelInfo,
    Preprocessing,
    build_model,
    builtin_names,
    load_run,
    read_model_info,
    save_run,
)

MakeInfo = Callable[..., ModelInfo]


def _saved(tmp_path: Path, make_info: MakeInfo, half: bool = False,
           name: str = "small-vgg") -> tuple[Path, torch.nn.Module, ModelInfo]:
    info = make_info(name)
    model = build_model(name, n_outputs=len(info.labels), **info.architecture_args).eval()
    run = save_run(tmp_path / "run", model, info, half=half)
    return run, model, info


def test_round_trip_gives_identical_outputs(tmp_path: Path, make_info: MakeInfo) -> None:
    run, model, info = _saved(tmp_path, make_info)
    assert sorted(p.name for p in run.iterdir()) == ["model.json", "model.safetensors"]
    loaded, loaded_info = load_run(run)
    assert not loaded.training
    assert loaded_info == info
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_round_trip_densenet(tmp_path: Path, make_info: MakeInfo) -> None:
    run, model, _ = _saved(tmp_path, make_info, name="densenet121")
    loaded, _ = load_run(str(run / "model.json"))  # a path to model.json means its folder
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_half_weights_load_back_as_float32(tmp_path: Path, make_info: MakeInfo) -> None:
    run, model, _ = _saved(tmp_path, make_info, half=True)
    stored = load_file(run / "model.safetensors")
    assert stored["head.weight"].dtype == torch.float16
    assert stored["features.block1.norm.num_batches_tracked"].dtype == torch.int64
    loaded, _ = load_run(run)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=1e-2, atol=1e-2)


def test_model_json_has_the_documented_fields(tmp_path: Path, make_info: MakeInfo) -> None:
    run, _, _ = _saved(tmp_path, make_info)
    data = json.loads((run / "model.json").read_text())
    assert list(data) == [
        "format", "version", "radiolens_version", "architecture", "architecture_args", "task",
        "labels", "preprocessing", "thresholds", "threshold_method", "urgency", "training",
        "validation", "created", "notes", "int8",
    ]
    assert data["format"] == "radiolens-model"
    assert data["version"] == 1
    assert data["preprocessing"] == {"image_size": 64, "channels": 1, "mean": 0.5, "std": 0.25,
                                     "resize": "squash", "crop": "none",
                                     "outside_lungs": "keep", "lung_model": "builtin:lungs",
                                     "crop_margin": 0.05, "dim_factor": 0.3}
    assert data["created"].startswith("20") and "T" in data["created"]
    assert read_model_info(run) == ModelInfo.model_validate(data)


def test_preprocessing_accepts_per_channel_statistics() -> None:
    pre = Preprocessing(image_size=224, channels=3, mean=[0.485, 0.456, 0.406],
                        std=[0.229, 0.224, 0.225])
    assert pre.std_per_channel() == [0.229, 0.224, 0.225]
    assert Preprocessing(image_size=64, channels=3, mean=0.5, std=0.2).mean_per_channel() == \
        [0.5, 0.5, 0.5]
    with pytest.raises(ValueError, match="one per channel"):
        Preprocessing(image_size=64, channels=3, mean=[0.5, 0.5], std=0.2)
    with pytest.raises(ValueError, match="positive"):
        Preprocessing(image_size=64, mean=0.5, std=0.0)


@pytest.mark.parametrize(("fields", "message"), [
    ({"unknown_field": 1}, "Extra inputs"),
    ({"task": "binary"}, "exactly one label"),
    ({"thresholds": {"Efusion": 0.5}}, "Efusion"),
    ({"thresholds": {"Effusion": 1.5}}, r"\[0, 1\]"),
    ({"urgency": {"Nodule": 2}}, "Nodule"),
    ({"labels": ["Mass", "Mass"]}, "duplicate"),
    ({"architecture_args": {"in_channels": 3}}, "channels"),
    ({"architecture_args": {"n_outputs": 3}}, "n_outputs"),
    ({"architecture": "vgg99"}, "unknown architecture"),
])
def test_model_info_rejects_inconsistent_metadata(make_info: MakeInfo, fields: dict[str, object],
                                                  message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_info(**fields)


def test_binary_task_has_one_output(tmp_path: Path, make_info: MakeInfo) -> None:
    info = make_info(labels=("Pneumothorax",), task="binary", urgency={"Pneumothorax": 3})
    save_run(tmp_path, build_model("small-vgg", 1), info)
    model, loaded = load_run(tmp_path)
    assert loaded.urgency == {"Pneumothorax": 3}
    with torch.no_grad():
        assert model(torch.rand(1, 1, 64, 64)).shape == (1, 1)


# -- every CheckpointError -----------------------------------------------------------------

def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_run(tmp_path / "nope")


def test_a_file_is_not_a_run_directory(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="not a run directory"):
        load_run(tmp_path / "weights.bin")


def test_missing_model_json(tmp_path: Path, make_info: MakeInfo) -> None:
    run, _, _ = _saved(tmp_path, make_info)
    (run / "model.json").unlink()
    with pytest.raises(CheckpointError, match=r"no model\.json"):
        load_run(run)


def test_missing_weights(tmp_path: Path, make_info: MakeInfo) -> None:
    run, _, _ = _saved(tmp_path, make_info)
    (run / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"no model\.safetensors"):
        load_run(run)


def test_damaged_weights(tmp_path: Path, make_info: MakeInfo) -> None:
    run, _, _ = _saved(tmp_path, make_info)
    (run / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="damaged"):
        load_run(run)


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('{"format": "monai-bundle", "version": 1}', "not a radiolens model file"),
    ('{"format": "radiolens-model", "version": 7}', "pip install -U radiolens"),
    ('{"format": "radiolens-model", "version": "one"}', "invalid format version"),
])
def test_bad_model_json(tmp_path: Path, make_info: MakeInfo, text: str, message: str) -> None:
    run, _, _ = _saved(tmp_path, make_info)
    (run / "model.json").write_text(text)
    with pytest.raises(CheckpointError, match=message):
        load_run(run)


def test_unknown_architecture_in_model_json(tmp_path: Path, make_info: MakeInfo) -> None:
    run, _, _ = _saved(tmp_path, make_info)
    data = json.loads((run / "model.json").read_text())
    data["architecture"] = "vit-huge"
    (run / "model.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="unknown architecture 'vit-huge'"):
        read_model_info(run)


def test_invalid_field_in_model_json_names_the_field(tmp_path: Path, make_info: MakeInfo) -> None:
    run, _, _ = _saved(tmp_path, make_info)
    data = json.loads((run / "model.json").read_text())
    data["preprocessing"]["resize"] = "crop"
    (run / "model.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=r"preprocessing\.resize"):
        load_run(run)


def test_weights_from_another_model_list_the_keys(tmp_path: Path, make_info: MakeInfo) -> None:
    run, _, _ = _saved(tmp_path, make_info)
    state = load_file(run / "model.safetensors")
    state["extra.weight"] = torch.zeros(1)
    del state["head.bias"]
    state["head.weight"] = torch.zeros(5, 512)
    save_file(state, run / "model.safetensors")
    with pytest.raises(CheckpointError) as err:
        load_run(run)
    message = str(err.value)
    assert "missing: head.bias" in message
    assert "unexpected: extra.weight" in message
    assert "head.weight (5, 512) != (2, 512)" in message


def test_labels_that_do_not_fit_the_weights(tmp_path: Path, make_info: MakeInfo) -> None:
    run, _, _ = _saved(tmp_path, make_info)
    data = json.loads((run / "model.json").read_text())
    data["labels"].append("Nodule")
    (run / "model.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="different runs"):
        load_run(run)


def test_saving_a_model_that_does_not_match_its_info(tmp_path: Path, make_info: MakeInfo) -> None:
    with pytest.raises(CheckpointError, match="does not match model info"):
        save_run(tmp_path, build_model("small-vgg", n_outputs=3), make_info())
    assert not (tmp_path / "model.json").exists()


def test_unjsonable_training_summary(tmp_path: Path, make_info: MakeInfo) -> None:
    info = make_info(training={"started": object()})
    with pytest.raises(CheckpointError, match="JSON"):
        save_run(tmp_path, build_model("small-vgg", n_outputs=2), info)


def test_unknown_builtin_lists_what_is_available() -> None:
    names = builtin_names()
    with pytest.raises(CheckpointError, match="available builtin models") as err:
        load_run("builtin:chexnet-does-not-exist")
    for name in names:
        assert name in str(err.value)
    with pytest.raises(CheckpointError, match="no builtin model"):
        read_model_info("builtin:../../etc")


def test_builtin_reference_resolves_to_the_package_folder(
        tmp_path: Path, make_info: MakeInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    from radiolens.models import info

    monkeypatch.setattr(info, "BUILTIN_DIR", tmp_path)
    _saved(tmp_path, make_info)  # writes tmp_path / "run"
    assert builtin_names() == ["run"]
    _, info = load_run("builtin:run")
    assert info.labels == ["Effusion", "Mass"]
