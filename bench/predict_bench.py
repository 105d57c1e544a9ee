"""CPU inference side by side: ``radiolens predict`` end to end per backend, and the model
alone per backend, batch size and input size, against matrix-multiply ceilings.

    .venv/bin/python bench/predict_bench.py                  # 624 Kermany radiographs
    .venv/bin/python bench/predict_bench.py --n 200 --skip-model

End to end: a fresh ``radiolens predict --backend B`` process per backend (start-up,
reading, preprocessing and scoring, as a user runs it) on the same files, with the same
threads; calls and AUROC are compared with ``--backend torch``. Model alone: images/second
of each backend and precision (OpenVINO fp32 / bf16 / int8 calibrated with NNCF on 64 of
the images) at batch 16 and 1 at 128 and 224 px on random inputs (median of 3 rounds),
single-image latency p50 / p95, beside the fp32, bf16 (torch) and int8 (ONNX Runtime MatMulInteger)
matmul ceilings measured in the same run, and the CPU's vector extensions.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "labels.csv"
BACKENDS = ("torch", "onnx", "openvino", "auto")


def end_to_end(files: list[str], labels: list[int], checkpoint: str, threads: int
               ) -> dict[str, dict[str, float]]:
    from sklearn.metrics import roc_auc_score

    out: dict[str, dict[str, float]] = {}
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "files"
        listing.mkdir()
        for i, f in enumerate(files):  # one folder of links: the command line stays short
            os.symlink(f, listing / f"{i:05d}{Path(f).suffix}")
        # warm the ONNX export cache once, so no backend pays for the export
        subprocess.run([sys.executable, "-m", "radiolens.cli.main", "-q", "predict",
                        "--checkpoint", checkpoint, "--backend", "onnx",
                        str(listing / f"00000{Path(files[0]).suffix}")], env=env, check=True,
                       capture_output=True)
        calls: dict[str, np.ndarray] = {}
        for backend in BACKENDS:
            dest = Path(tmp) / f"{backend}.csv"
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "radiolens.cli.main", "-q", "predict",
                            "--checkpoint", checkpoint, "--backend", backend, "--threads",
                            str(threads), str(listing), "-o", str(dest)], env=env, check=True)
            seconds = time.perf_counter() - t0
            rows = sorted(csv.DictReader(dest.open()), key=lambda r: r["path"])
            probs = np.array([float(r["pneumonia_prob"]) for r in rows])
            calls[backend] = np.array([r["pneumonia_call"] for r in rows])
            out[backend] = {"seconds": round(seconds, 2),
                            "images_per_s": round(len(files) / seconds, 1),
                            "auroc": float(roc_auc_score(labels, probs))}
        for backend in BACKENDS:
            out[backend]["speed_vs_torch"] = round(out["torch"]["seconds"]
                                                   / out[backend]["seconds"], 2)
            out[backend]["same_calls"] = float(np.mean(calls[backend] == calls["torch"]))
            out[backend]["auroc_change"] = out[backend]["auroc"] - out["torch"]["auroc"]
    return out


def _cpu() -> dict[str, object]:
    """The CPU's name and the vector extensions int8 and bf16 speed depend on."""
    flags: set[str] = set()
    name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            if line.startswith("model name") and not name:
                name = line.split(":", 1)[1].strip()
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16",
              "amx_int8")
    return {"model": name, "flags": [f for f in wanted if f in flags]}


def _ceilings(threads: int) -> dict[str, float]:
    """Matrix-multiply ceilings with ``threads`` threads: fp32, bf16 (torch), int8 (ORT)."""
    import torch

    torch.set_num_threads(threads)
    out = {}
    # 2048^2 (bf16 1024^2: without AVX-512 BF16 or AMX, torch emulates it slowly)
    for name, dtype, n in (("fp32", torch.float32, 2048), ("bf16", torch.bfloat16, 1024)):
        x = torch.randn(n, n).to(dtype)
        torch.mm(x, x)
        t0 = time.perf_counter()
        for _ in range(3):
            torch.mm(x, x)
        out[f"matmul_{name}_gflops"] = round(3 * 2 * n**3 / (time.perf_counter() - t0)
                                             / 1e9, 1)
    # int8: ONNX Runtime's MatMulInteger (u8 x s8 -> s32), 2048^2; torch._int_mm has no
    # fast CPU kernel here (about 2 GOPS), so it is no ceiling
    import onnxruntime as ort
    from onnx import TensorProto, helper

    n = 2048
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "mm",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [n, n]),
         helper.make_tensor_value_info("B", TensorProto.INT8, [n, n])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [n, n])])
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(helper.make_model(graph, opset_imports=[
        helper.make_opsetid("", 17)]).SerializeToString(), options,
        providers=["CPUExecutionProvider"])
    feed = {"A": np.random.default_rng(0).integers(0, 255, (n, n), dtype=np.uint8),
            "B": np.random.default_rng(1).integers(-100, 100, (n, n), dtype=np.int8)}
    sess.run(None, feed)
    t0 = time.perf_counter()
    for _ in range(3):
        sess.run(None, feed)
    out["matmul_int8_gops"] = round(3 * 2 * n**3 / (time.perf_counter() - t0) / 1e9, 1)
    return out


def _gflop_per_image(model: object, size: int) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 1, size, size))  # type: ignore[operator]
    return counter.get_total_flops() / 1e9


def _throughput(run: object, batch: int, size: int) -> float:
    x = np.random.default_rng(0).standard_normal((batch, 1, size, size)).astype(np.float32)
    run(x)  # type: ignore[operator]
    rounds = []
    for _ in range(3):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 1.5:
            run(x)  # type: ignore[operator]
            n += batch
        rounds.append(n / (time.perf_counter() - t0))
    return round(float(np.median(rounds)), 1)


def _latency(run: object, size: int, n: int = 40) -> dict[str, float]:
    x = np.random.default_rng(1).standard_normal((1, 1, size, size)).astype(np.float32)
    run(x)  # type: ignore[operator]
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        run(x)  # type: ignore[operator]
        times.append(1000 * (time.perf_counter() - t0))
    return {"p50_ms": round(float(np.percentile(times, 50)), 2),
            "p95_ms": round(float(np.percentile(times, 95)), 2)}


def model_alone(checkpoint: str, threads: int, calibration: list[str]) -> dict[str, object]:
    """Each backend and precision at batch 16 and 1, 128 and 224 px, with single-image
    latency, beside the matmul ceilings of the same run."""
    import torch

    from radiolens.imaging import read_image
    from radiolens.inference import Predictor
    from radiolens.models import Preprocessing, load_run, save_run
    from radiolens.models.openvino_runtime import openvino_model
    from radiolens.models.quantize import quantize_int8

    ceilings = _ceilings(threads)
    # without AVX-512 BF16 or AMX, OpenVINO's bf16 hint runs fp32 (and torch emulates
    # bf16 matmuls slowly): the fp32 ceiling is then the one that bounds it
    native_bf16 = bool({"avx512_bf16", "amx_bf16"} & set(_cpu()["flags"]))  # type: ignore[call-overload]
    table: dict[str, dict[str, float]] = {}
    for size in (128, 224):
        with tempfile.TemporaryDirectory() as tmp:
            # the shipped weights at another input size: same network, resized input
            model, info = load_run(checkpoint)
            gflop = _gflop_per_image(model.eval(), size)
            info = info.model_copy(update={"int8": None, "preprocessing": Preprocessing(
                image_size=size, mean=info.preprocessing.mean, std=info.preprocessing.std)})
            save_run(tmp, model, info)
            os.environ["RADIOLENS_CACHE"] = tmp
            runs: dict[str, object] = {}
            for backend, precision in (("torch", "fp32"), ("onnx", "fp32"),
                                       ("openvino", "fp32"), ("openvino", "bf16")):
                p = Predictor(tmp, backend=backend, precision=precision,  # type: ignore[arg-type]
                              threads=threads).load()
                runs[f"{backend} {precision}"] = p.predict_batch
            calib = np.stack([p.preprocess(read_image(f)) for f in calibration])
            xml = quantize_int8(p.onnx_file(), calib, Path(tmp) / "int8.xml",
                                subset_size=len(calib))
            runs["openvino int8"] = openvino_model(xml, threads=threads)
            torch.set_num_threads(threads)
            for name, run in runs.items():
                row: dict[str, float] = {"gflop_per_image": round(gflop, 2)}
                for batch in (16, 1):
                    row[f"b{batch}_images_per_s"] = _throughput(run, batch, size)
                row.update(_latency(run, size))
                ceiling = (ceilings["matmul_int8_gops"] if "int8" in name else
                           ceilings["matmul_bf16_gflops"] if "bf16" in name and native_bf16
                           else ceilings["matmul_fp32_gflops"])
                row["b16_fraction_of_ceiling"] = round(row["b16_images_per_s"] * gflop
                                                       / ceiling, 3)
                table[f"{name} {size}px"] = row
                print(f"{name:14s} {size}px: b16 {row['b16_images_per_s']:6.1f} img/s, "
                      f"b1 {row['b1_images_per_s']:6.1f} img/s, latency p50 "
                      f"{row['p50_ms']:.1f} ms p95 {row['p95_ms']:.1f} ms, "
                      f"{100 * row['b16_fraction_of_ceiling']:.0f}% of its matmul ceiling",
                      flush=True)
    return {"ceilings": ceilings, "model_alone": table}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="builtin:pneumonia-kermany")
    ap.add_argument("--n", type=int, default=624)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-model", action="store_true")
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument("--json", default=str(HERE / "results" / "predict_bench.json"))
    args = ap.parse_args()
    rows = [r for r in csv.DictReader(DATA.open()) if r["source"] == "kermany_pneumonia"]
    step = max(1, len(rows) // args.n)        # spread over the table: both classes
    rows = rows[::step][: args.n]
    files = [str(DATA.parent / r["image"]) for r in rows]
    labels = [int(r["pneumonia"]) for r in rows]
    result: dict[str, object] = {"n": len(files), "threads": args.threads,
                                 "checkpoint": args.checkpoint}
    result["load_average"] = os.getloadavg()[0]
    result["cpu"] = _cpu()
    print(f"CPU: {result['cpu']}", flush=True)
    e2e = {} if args.skip_e2e else end_to_end(files, labels, args.checkpoint, args.threads)
    result["end_to_end"] = e2e
    for backend, rec in e2e.items():
        print(f"predict --backend {backend:8s} {rec['seconds']:6.1f} s  "
              f"{rec['images_per_s']:6.1f} img/s  {rec['speed_vs_torch']:.2f}x torch  "
              f"same calls {rec['same_calls']:.1%}  AUROC {rec['auroc']:.4f} "
              f"({rec['auroc_change']:+.4f})", flush=True)
    Path(args.json).parent.mkdir(exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")  # end to end first
    if not args.skip_model:
        alone = model_alone(args.checkpoint, args.threads, files[:64])
        result.update(alone)
        print(json.dumps(alone["ceilings"]))
    Path(args.json).parent.mkdir(exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
