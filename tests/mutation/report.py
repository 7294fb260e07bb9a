"""``make mutate`` report: the share of mutants killed per module, from mutmut's result files.

A mutant counts as killed when the tests failed on it (or timed out); "no tests" (no test reaches
the mutated code) counts as survived. Mutants listed in ``tests/mutation/equivalent.txt`` (one
name per line, ``#`` starts a reason) are left out: equivalent mutants (no behaviour changes)
and mutants that only change a human-readable message. Exits 1 below the goal.
"""

import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOAL = 0.95
KILLED = {1, 3, 24, -24, 36, 152, 255}


def equivalents() -> set[str]:
    listed = ROOT / "tests" / "mutation" / "equivalent.txt"
    names = set()
    for line in listed.read_text().splitlines() if listed.exists() else []:
        name = line.split("#", 1)[0].strip()
        if name:
            names.add(name)
    return names


def main(prefixes: list[str]) -> int:
    excluded = equivalents()
    per_module: dict[str, Counter] = {}
    survivors: list[str] = []
    for meta in sorted((ROOT / "mutants").rglob("*.py.meta")):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if code is None or name in excluded:
                continue
            if prefixes and not any(name.startswith(p) for p in prefixes):
                continue
            module = name.split(".x_")[0].split(".xǁ")[0]
            counts = per_module.setdefault(module, Counter())
            counts["total"] += 1
            if code in KILLED:
                counts["killed"] += 1
            else:
                survivors.append(name)
    if not per_module:
        print("no checked mutants: run `make mutate` first")
        return 1
    print(f"{'module':<32} {'killed':>7} {'total':>6} {'share':>7}")
    for module, counts in sorted(per_module.items()):
        share = counts["killed"] / counts["total"]
        print(f"{module:<32} {counts['killed']:>7} {counts['total']:>6} {share:>7.1%}")
    killed = sum(c["killed"] for c in per_module.values())
    total = sum(c["total"] for c in per_module.values())
    print(f"{'all':<32} {killed:>7} {total:>6} {killed / total:>7.1%}  (goal {GOAL:.0%})")
    print(f"{len(excluded)} listed as equivalent or message-only; {len(survivors)} survivors:")
    for name in survivors:
        print(f"  {name}")
    return 0 if killed / total >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
