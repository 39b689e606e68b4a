"""Run one benchmark against two versions of mmstream in the same run: a change beside its
baseline, alternating, so load from other work on a shared box falls on both alike.

    python benchmarks/compare_trees.py --base main --rounds 2 -- \\
        benchmarks/bench_runtime.py --models-only --e2e-s 30

The base commit is exported (`git archive`, no worktree) to a temporary folder; each round
runs the benchmark script of this checkout twice, with `mmstream` imported from the base and
then from this checkout (PYTHONPATH), each writing its JSON through `--out`. The benchmark must
take `--out PATH`. Prints, and writes to --json, every round's result per tree.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def export(commit: str, into: Path) -> Path:
    archive = into / "base.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), commit], check=True)
    tree = into / "base"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


def run(script: list[str], tree: Path, out: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run([sys.executable, *script, "--out", str(out)], cwd=REPO, env=env,
                   check=True)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="main", help="commit of the baseline")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="where to write both results")
    parser.add_argument("script", nargs=argparse.REMAINDER, help="-- benchmark and arguments")
    args = parser.parse_args()
    script = [a for a in args.script if a != "--"]
    with tempfile.TemporaryDirectory(prefix="compare-trees-") as folder:
        where = Path(folder)
        trees = {"base": export(args.base, where), "head": REPO}
        results: dict[str, list[dict[str, Any]]] = {"base": [], "head": []}
        for index in range(args.rounds):
            for name, tree in trees.items():
                results[name].append(run(script, tree, where / f"{name}{index}.json"))
                print(name, index, json.dumps(results[name][-1])[:2000], flush=True)
    report = {"base": args.base, "script": script, "rounds": results}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
