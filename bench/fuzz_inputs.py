"""Long hostile-input fuzz runs over radiolens readers; prints inputs/s, crashes and hangs.

    .venv/bin/python bench/fuzz_inputs.py --target reports-csv --n 100000
    .venv/bin/python bench/fuzz_inputs.py --target all --n 2000 --save /tmp/crashes
    .venv/bin/python bench/fuzz_inputs.py --target image --engine atheris --n 50000

Targets and the contract are in ``tests/fuzz/targets.py``: an input must give a result or
a RadiolensError; any other exception is a crash, running past the per-input limit a
hang. The default engine is a seeded mutator (edits drawn from ``random.Random(seed)``,
so a run is reproducible: ``--seed`` and the input number name an input); ``--engine
atheris`` is coverage-guided (``pip install 'radiolens[fuzz]'``) and not reproducible.
Crashes are grouped by signature (exception type and innermost radiolens line); with
``--save DIR`` the first input of each is written there (``<target>-<n>.bin``).
"""

from __future__ import annotations

import argparse
import collections
import logging
import random
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fuzz.targets import (  # noqa: E402
    TARGETS,
    Outcome,
    Target,
    random_ops,
    run_one,
    scratch_target,
)


def fuzz(target: Target, n: int, seed: int, save: Path | None, report_every: float
         ) -> dict[str, object]:
    rng = random.Random(seed)
    counts: collections.Counter[str] = collections.Counter()
    crashes: dict[str, tuple[int, Outcome]] = {}
    started = last = time.perf_counter()
    slowest = 0.0
    for i in range(n):
        seed_index = rng.randrange(len(target.seeds))
        data = target.input(seed_index, random_ops(rng, target.tokens))
        outcome = run_one(target, data, seed_index)
        if outcome.kind == "hang":  # once more: a busy (or paused) machine is not a hang
            again = run_one(target, data, seed_index)
            if again.kind != "hang":
                outcome = Outcome("slow-once", outcome.seconds)
        counts[outcome.kind] += 1
        slowest = max(slowest, outcome.seconds)
        if outcome.kind in ("crash", "hang") and outcome.signature not in crashes:
            crashes[outcome.signature] = (i, outcome)
            err = outcome.error
            print(f"  [{target.name}] input {i}: {outcome.signature}: "
                  f"{type(err).__name__ if err else ''}: {str(err)[:160]}", flush=True)
            if save is not None:
                save.mkdir(parents=True, exist_ok=True)
                (save / f"{target.name}-{i}.bin").write_bytes(data)
        now = time.perf_counter()
        if report_every and now - last > report_every:
            last = now
            print(f"  [{target.name}] {i + 1} inputs, {(i + 1) / (now - started):.0f}/s, "
                  f"{counts['crash']} crashes, {counts['hang']} hangs", flush=True)
    elapsed = time.perf_counter() - started
    return {"target": target.name, "inputs": n, "seconds": elapsed, "per_s": n / elapsed,
            "counts": dict(counts), "signatures": sorted(crashes), "slowest_s": slowest}


def fuzz_atheris(target: Target, n: int) -> None:  # pragma: no cover - needs atheris
    try:
        import atheris
    except ImportError:
        sys.exit("atheris is not installed: pip install 'radiolens[fuzz]'")
    counter = [0]

    def one(data: bytes) -> None:
        counter[0] += 1
        outcome = run_one(target, data, counter[0] % len(target.seeds))
        if outcome.kind in ("crash", "hang"):
            assert outcome.error is not None or outcome.kind == "hang"
            raise outcome.error or RuntimeError("hang")

    corpus = target.workdir / "corpus"
    corpus.mkdir(exist_ok=True)
    for i, s in enumerate(target.seeds):
        (corpus / f"seed{i}").write_bytes(s)
    atheris.instrument_all()  # coverage of every loaded module (radiolens, pydicom, ...)
    atheris.Setup([sys.argv[0], f"-runs={n}", "-max_len=65536", str(corpus)], one)
    atheris.Fuzz()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", default="all", choices=[*TARGETS, "all"])
    p.add_argument("--n", type=int, default=10000, help="inputs per target")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--engine", choices=["mutate", "atheris"], default="mutate")
    p.add_argument("--save", type=Path, help="write the first input of each crash here")
    p.add_argument("--progress", type=float, default=30.0, metavar="S",
                   help="print progress every S seconds (0: never)")
    args = p.parse_args()
    logging.disable(logging.CRITICAL)  # readers log every refused row
    warnings.simplefilter("ignore")  # pydicom warns on every odd element; a bench only
    names = TARGETS if args.target == "all" else (args.target,)
    results = []
    for name in names:
        with scratch_target(name) as target:
            if args.engine == "atheris":
                fuzz_atheris(target, args.n)
                continue
            results.append(fuzz(target, args.n, args.seed, args.save, args.progress))
    print(f"\n{'target':<14} {'inputs':>8} {'inputs/s':>9} {'ok':>7} {'rejected':>9} "
          f"{'crashes':>8} {'hangs':>6} {'slowest':>8} {'slow-once':>9}")
    for r in results:
        c: dict[str, int] = r["counts"]  # type: ignore[assignment]
        print(f"{r['target']:<14} {r['inputs']:>8} {r['per_s']:>9.0f} {c.get('ok', 0):>7} "
              f"{c.get('rejected', 0):>9} {c.get('crash', 0):>8} {c.get('hang', 0):>6} "
              f"{r['slowest_s']:>7.2f}s {c.get('slow-once', 0):>9}")
        for sig in r["signatures"]:  # type: ignore[attr-defined]
            print(f"    {sig}")
    return 1 if any(r["signatures"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
