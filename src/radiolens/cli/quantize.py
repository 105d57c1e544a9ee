"""``radiolens quantize``: an int8 OpenVINO model, accepted only if it keeps the AUROC."""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

from radiolens.cli._common import add_scoring_options, run_destination

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "quantize", help="make an int8 model for fast CPU scoring (OpenVINO + NNCF)",
        description="Quantize a model to int8 (NNCF static post-training quantization for "
                    "OpenVINO), calibrated on its validation images, and keep it only when "
                    "no label's AUROC on those images falls by more than --max-auroc-drop "
                    "against fp32. The figures are recorded in model.json; `predict` and "
                    "the worker then use int8 by default (--precision auto).")
    add_scoring_options(p, checkpoint_help="run directory, or builtin:NAME (then -o is needed)",
                        split_help="validation rows to calibrate and check on (default: val)")
    p.add_argument("--calibration", type=int, default=300, metavar="N",
                   help="images NNCF calibrates on (default 300)")
    p.add_argument("--max-auroc-drop", type=float, default=0.005, metavar="X",
                   help="refuse the int8 model when a label's AUROC falls by more (0.005)")
    p.add_argument("--threads", type=int, default=2, metavar="N")
    p.add_argument("-o", "--output", metavar="NEW_RUN_DIR",
                   help="write a new run directory (weights copied) instead of adding the "
                        "int8 model to RUN_DIR")
    p.set_defaults(run=run, backend="openvino")


def _aurocs(y: Any, p: Any, labels: list[str]) -> dict[str, float | None]:
    from radiolens.evaluate import auroc

    out: dict[str, float | None] = {}
    for j, name in enumerate(labels):
        value = auroc(y[:, j], p[:, j])
        out[name] = None if math.isnan(value) else round(value, 6)
    return out


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from radiolens.cli._scoring import score_split
    from radiolens.errors import ConfigError
    from radiolens.inference import Predictor
    from radiolens.models import write_model_info
    from radiolens.models.info import WEIGHTS_FILE, Int8Record
    from radiolens.models.openvino_runtime import openvino_model
    from radiolens.models.quantize import INT8_FILE, quantize_int8, weights_sha256

    if args.calibration < 1:
        raise ConfigError(f"--calibration must be at least 1, got {args.calibration}")
    if not 0 <= args.max_auroc_drop < 1:
        raise ConfigError(f"--max-auroc-drop must be in [0, 1), got {args.max_auroc_drop}")
    source, dest = run_destination(args.checkpoint, args.output, "its int8 model")
    fp32 = Predictor(args.checkpoint, backend="openvino", precision="fp32",
                     batch_size=args.batch_size, threads=args.threads).load()
    scored = score_split(fp32, args.data, args.split, default_split="val",
                         images_root=args.images_root,
                         where=dict(args.where) if args.where else None,
                         batch_size=args.batch_size, skip_missing=args.skip_missing,
                         keep_inputs=True)
    assert scored.inputs is not None
    labels = fp32.labels
    with tempfile.TemporaryDirectory() as tmp:
        xml = quantize_int8(fp32.onnx_file(), scored.inputs, Path(tmp) / INT8_FILE,
                            subset_size=args.calibration, batch_size=args.batch_size)
        int8 = openvino_model(xml, threads=args.threads)
        p8 = np.concatenate([
            1.0 / (1.0 + np.exp(-np.asarray(int8(scored.inputs[i:i + args.batch_size])[0],
                                            dtype=np.float64)))
            for i in range(0, len(scored.inputs), args.batch_size)])
        a32, a8 = _aurocs(scored.y, scored.p, labels), _aurocs(scored.y, p8, labels)
        drops = [a32[n] - a8[n] for n in labels  # type: ignore[operator]
                 if a32[n] is not None and a8[n] is not None]
        th = np.array([fp32.thresholds[n] for n in labels])
        changed = int(((scored.p >= th) != (p8 >= th)).sum())
        record = Int8Record(
            weights_sha256=weights_sha256(source / WEIGHTS_FILE),
            calibration_images=min(args.calibration, len(scored.inputs)),
            images=len(scored.inputs), split=scored.split, auroc_fp32=a32, auroc_int8=a8,
            max_auroc_drop=round(max(drops, default=0.0), 6), calls_changed=changed,
            limit=args.max_auroc_drop, accepted=max(drops, default=0.0) <= args.max_auroc_drop,
            tool=_nncf_version())
        for name in labels:
            print(f"  {name}: AUROC fp32 {_num(a32[name])}, int8 {_num(a8[name])}")
        print(f"{record.images} images of split {scored.split!r}; largest AUROC drop "
              f"{record.max_auroc_drop:+.4f} (limit {record.limit}); {changed} calls changed "
              "at the operating thresholds")
        if not record.accepted:
            log.error("int8 refused: AUROC fell by %.4f, over the %.4f limit; the model keeps "
                      "scoring at fp32/bf16", record.max_auroc_drop, record.limit)
            return 1
        dest.mkdir(parents=True, exist_ok=True)
        if args.output:
            shutil.copy2(source / WEIGHTS_FILE, dest / WEIGHTS_FILE)
        for suffix in (".xml", ".bin"):
            shutil.copy2(xml.with_suffix(suffix), dest / INT8_FILE.replace(".xml", suffix))
    write_model_info(dest, fp32.info_.model_copy(update={"int8": record}))
    print(f"wrote {dest / INT8_FILE} and its record in {dest / 'model.json'}; "
          "`radiolens predict --checkpoint ...` now scores at int8")
    return 0


def _nncf_version() -> str:
    try:
        import nncf

        return f"nncf {nncf.__version__}"
    except ImportError:  # pragma: no cover - quantize_int8 needs it
        return ""


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"
