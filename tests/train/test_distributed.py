"""Distributed data parallel under torchrun (gloo, two CPU processes) follows the loss
curve of one process with the same global batch."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from radiolens.data.synthetic import make_synthetic_dataset


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun(n: int, data: Path, out: Path) -> list[float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(n),
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
           "-m", "radiolens.cli.main", "-q", "train", "--data", str(data), "--labels",
           "pneumonia", "--model", "small-vgg", "--image-size", "32", "--epochs", "2",
           "--batch-size", "16", "--lr", "3e-4", "--no-augment", "--device", "cpu",
           "-o", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    return [float(r["train_loss"]) for r in rows]


def test_two_processes_follow_one_process(tmp_path: Path) -> None:
    data = make_synthetic_dataset(tmp_path / "syn", n=96, image_size=32, seed=0)
    one = _torchrun(1, data, tmp_path / "one")
    two = _torchrun(2, data, tmp_path / "two")
    # Same global batches in the same order and averaged gradients: the curves agree up
    # to BatchNorm statistics, which on a CPU each process keeps over its half of the batch
    # (they drift apart slowly, so the first epoch is held tighter).
    assert abs(one[0] - two[0]) <= 0.03 * one[0], (one, two)
    for a, b in zip(one, two, strict=True):
        assert abs(a - b) <= 0.25 * a, (one, two)
    assert (tmp_path / "two" / "model.json").is_file()
    assert not (tmp_path / "two" / "history.csv.1").exists()
    assert one[-1] < one[0] and two[-1] < two[0]  # both learn


def test_a_global_batch_must_split_evenly(tmp_path: Path) -> None:
    from radiolens.errors import ConfigError
    from radiolens.train.distributed import Distributed

    with pytest.raises(ConfigError, match="multiple of 2"):
        Distributed(rank=0, world=2, active=True).local_batch(15)
    assert Distributed(rank=1, world=2, active=True).local_batch(16) == 8
