#!/usr/bin/env python3
"""Puts the key-figures tables of two benches/run.sh reports side by side.

Usage: compare.py BEFORE.md AFTER.md  (prints Markdown on stdout)

Rows are matched by their target text (the first cell), so both reports must come from a
report.py that writes the same rows (sizes may differ: a row present in only one report is
listed with "–" on the other side). Each side shows pimap, Dovecot, the ratio and the verdict.
"""

import sys


def key_rows(path):
    rows = {}
    order = []
    in_table = False
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("## Key figures"):
                in_table = True
                continue
            if in_table and line.startswith("## "):
                break
            if not in_table or not line.startswith("| ") or line.startswith("| target |"):
                continue
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) < 5:
                continue
            rows[cells[0]] = cells[1:5]
            order.append(cells[0])
    return rows, order


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    (a, order_a), (b, order_b) = key_rows(sys.argv[1]), key_rows(sys.argv[2])
    order = order_a + [k for k in order_b if k not in a]
    print(f"Before: `{sys.argv[1]}`; after: `{sys.argv[2]}`.")
    print()
    print("| target | before: pimap | before: Dovecot | before: ratio | after: pimap | after: Dovecot "
          "| after: ratio | after: verdict |")
    print("|---|---|---|---|---|---|---|---|")
    for k in order:
        x = a.get(k, ["–"] * 4)
        y = b.get(k, ["–"] * 4)
        print(f"| {k} | {x[0]} | {x[1]} | {x[2]} | {y[0]} | {y[1]} | {y[2]} | {y[3]} |")


if __name__ == "__main__":
    main()
