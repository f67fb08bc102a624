#!/usr/bin/env python3
"""Extract match-state emission log-odds from ANARCI's profile HMMs for veneer's numbering.

ANARCI (Dunbar & Deane 2016, BSD-3-Clause) numbers chains with hmmscan against HMMs built from
IMGT germlines; which residues it leaves out at a chain's N-terminus depends on where the HMM's
local alignment begins. veneer's aligner is immunum's; to place that start as ANARCI does it
scores the first aligned residues with these emissions (see src/engine/numbering.rs).

Input: anarci/dat/HMMs/ALL.hmm from the installed `anarci` package (pip install anarci).
Output: data/numbering/anarci_match_logodds.tsv — one line per (model, state):
    model  state  20 log-odds in ACDEFGHIKLMNPQRSTVWY order (natural log, vs HMMER's
    default amino-acid background), then the state's 7 transition log-probabilities
    (m->m m->i m->d i->m i->i d->m d->d, natural log; -99 for an impossible move),
    rounded to 4 decimals.
Only the human and mouse H/K/L models are kept: those are ANARCI's default species.
"""
import hashlib
import math
import os
import sys

import anarci

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
# HMMER 3 default background (p7_bg / BLOSUM62 frequencies), same order.
BACKGROUND = [0.0787945, 0.0151600, 0.0535222, 0.0668298, 0.0397062, 0.0695071, 0.0229198,
              0.0590092, 0.0594422, 0.0963728, 0.0237718, 0.0414386, 0.0482904, 0.0395639,
              0.0540978, 0.0683364, 0.0540687, 0.0673417, 0.0114135, 0.0304133]
KEEP = {f"{species}_{chain}" for species in ("human", "mouse") for chain in "HKL"}


def models(path):
    lines = open(path).read().split("\n")
    name, i = None, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("NAME"):
            name = line.split()[1]
        elif line.startswith("HMM ") and name:
            i += 2  # transition header line
            if lines[i].strip().startswith("COMPO"):
                i += 3
            while not lines[i].startswith("//"):
                fields = lines[i].split()
                state = int(fields[0])
                neg_log_p = [float(x) for x in fields[1:21]]
                emissions = [math.log(math.exp(-e) / bg) for e, bg in zip(neg_log_p, BACKGROUND)]
                transitions = [-99.0 if t == "*" else -float(t) for t in lines[i + 2].split()[:7]]
                yield name, state, emissions + transitions
                i += 3
            name = None
        i += 1


def main():
    source = os.path.join(os.path.dirname(anarci.__file__), "dat", "HMMs", "ALL.hmm")
    out = sys.argv[1] if len(sys.argv) > 1 else "data/numbering/anarci_match_logodds.tsv"
    digest = hashlib.sha256(open(source, "rb").read()).hexdigest()
    version = getattr(anarci, "__version__", "installed")
    rows = [(n, s, v) for n, s, v in models(source) if n in KEEP]
    with open(out, "w") as f:
        f.write(f"# ANARCI {version} anarci/dat/HMMs/ALL.hmm sha256={digest} (BSD-3-Clause, Dunbar & Deane 2016)\n")
        f.write("# model\tstate\t" + "\t".join(AMINO_ACIDS) + "\tmm\tmi\tmd\tim\tii\tdm\tdd\n")
        for name, state, values in rows:
            f.write(f"{name}\t{state}\t" + "\t".join(f"{v:.4f}" for v in values) + "\n")
    print(f"wrote {len(rows)} states of {len(KEEP)} models to {out}")


if __name__ == "__main__":
    main()
