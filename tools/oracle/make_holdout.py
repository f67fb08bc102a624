#!/usr/bin/env python3
"""A held-out numbering set: germline-derived chains the parity set does not contain.

veneer's numbering adds ANARCI's rules on top of immunum, with one constant (the per-residue
cost of HMMER's local start) chosen on `tests/fixtures/chains.fasta`. This set checks that
those rules hold on chains they were not tuned on. It reuses `make_fixtures.py`'s builders
with another seed, drops every chain already in the parity set, and numbers the rest with
ANARCI (human+mouse models) exactly as `make_fixtures.py` does.

Writes tests/fixtures/holdout_chains.fasta and tests/fixtures/anarci_holdout.jsonl.
Run: python3 tools/oracle/make_holdout.py   (needs the oracle; see README.md here)
"""
import os
import sys
from multiprocessing import Pool

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402

HOLDOUT_SEED = 20261123


def main():
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
    fx = os.path.join(repo, 'tests', 'fixtures')
    humab = mf.load_humab25(os.path.join(repo, '..', 'shared', 'data', 'humab25'))
    pool_src = [r for r in humab if r[0].startswith(('humab25_parental_', 'humab25_experimental_'))]
    cdr3_pool = {'H': set(), 'K': set(), 'L': set()}
    for r in mf.anarci_number_batch(pool_src):
        if 'error' not in r:
            cdr3 = ''.join(a for l, a in r['imgt'] if 105 <= int(l.rstrip('ABCDEFGHIJKLMNOPQRSTUVWXYZ')) <= 117)
            cdr3_pool[r['chain_type']].add(cdr3)
    cdr3_pool = {k: sorted(v) for k, v in cdr3_pool.items()}

    mf.SEED = HOLDOUT_SEED
    known = {name for name, _ in mf.read_fasta(os.path.join(fx, 'chains.fasta'))}
    known_seqs = {seq for _, seq in mf.read_fasta(os.path.join(fx, 'chains.fasta'))}
    chains = [(f'holdout_{n}', s) for n, s in mf.build_germline_chains(cdr3_pool)
              if n not in known and s not in known_seqs]
    mf.write_fasta(os.path.join(fx, 'holdout_chains.fasta'), chains)
    with Pool(2) as pool:
        numbered = [r for batch in pool.map(mf.anarci_number_batch, mf.chunks(chains, 40)) for r in batch]
    mf.dump_jsonl(os.path.join(fx, 'anarci_holdout.jsonl'), numbered)
    print(f'holdout: {len(chains)} chains, {sum("error" in r for r in numbered)} ANARCI errors', file=sys.stderr)


if __name__ == '__main__':
    main()
