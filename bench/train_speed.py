"""Training speed on this CPU, side by side: fp32, channels-last, bf16 autocast.

    .venv/bin/python bench/train_speed.py                    # DenseNet-121, 128 and 224 px
    .venv/bin/python bench/train_speed.py --sizes 224 --steps 6

One training step is what ``radiolens train`` does per batch (forward under the chosen
autocast, masked BCE, backward, AdamW step) on random 1-channel images, batch 32, with
the process's torch threads. Each variant runs ``--steps`` timed steps after 2 warm-up
steps; images/second is the median step. The loss of the first step is printed beside
fp32's to show bf16 computes the same thing within its precision. Also prints whether
torch reports native bf16 on this CPU (AVX-512 BF16 or AMX), which is what
``radiolens train`` uses to turn bf16 autocast on by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def step_times(size: int, variant: str, steps: int, batch: int) -> tuple[float, float]:
    import torch

    from radiolens.data.dataset import masked_bce_loss
    from radiolens.models import build_model

    torch.manual_seed(0)
    model = build_model("densenet121", n_outputs=1, in_channels=1)
    channels_last = variant != "fp32"
    amp = variant == "bf16 + channels-last"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(batch, 1, size, size, generator=gen)
    y = (torch.rand(batch, 1, generator=gen) > 0.5).float()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    model.train()
    times, first_loss = [], float("nan")
    for i in range(steps + 2):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            logits = model(x)
        loss = masked_bce_loss(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i == 0:
            first_loss = float(loss.detach())
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return batch / statistics.median(times), first_loss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 224])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "train_speed.json")
    args = parser.parse_args()

    import torch

    from radiolens.devices import cpu_has_native_bf16

    native = cpu_has_native_bf16()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: "
          f"{native}, load average {os.getloadavg()[0]:.2f}")
    results: dict[str, dict[str, dict[str, float]]] = {}
    for size in args.sizes:
        results[str(size)] = {}
        for variant in ("fp32", "channels-last", "bf16 + channels-last"):
            ips, loss = step_times(size, variant, args.steps, args.batch)
            results[str(size)][variant] = {"images_per_s": ips, "first_loss": loss}
        base = results[str(size)]["fp32"]["images_per_s"]
        for variant, r in results[str(size)].items():
            print(f"{size} px  {variant:22s} {r['images_per_s']:6.1f} train images/s  "
                  f"{r['images_per_s'] / base:4.2f}x fp32   first loss {r['first_loss']:.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"native_bf16": native, "batch": args.batch,
                                    "threads": torch.get_num_threads(),
                                    "results": results}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
