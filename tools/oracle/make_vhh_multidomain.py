#!/usr/bin/env python3
"""Oracle fixtures for single-domain (VHH) grafting and multi-domain (scFv) numbering.

Writes (relative to the repository root):

  tests/fixtures/vhh.fasta                  nanobody chains built from ANARCI's alpaca germlines
  tests/fixtures/abnumber_vhh_grafts.jsonl  AbNumber 0.4.4 grafts of each onto the nearest human
                                            germline: straight / Vernier, each with and without
                                            the VHH hallmark back-mutation (Kabat 37, 44, 45, 47)
  tests/fixtures/multidomain.fasta          scFvs (both orientations, common linkers, tags),
                                            tandem bispecific scFvs and bivalent VHH-VHH chains
                                            built from the humab25 parentals and vhh.fasta
  tests/fixtures/anarci_domains.jsonl       ANARCI's domains of each multi-domain record

Same conventions as make_fixtures.py (human+mouse HMMs, fixed seed, byte-identical reruns).
Usage:  python tools/oracle/make_vhh_multidomain.py [--repo PATH] [--humab25 DIR]
"""
import argparse
import contextlib
import io
import json
import os
import random
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import (ALLOWED_SPECIES, ALLOW_CHAINS, HMMERPATH, _choice, _j_parts, _label,  # noqa: E402
                           _v_framework, dump_jsonl, read_fasta, write_fasta)

SEED = 20261202
AMINO = 'ACDEFGHIKLMNPQRSTVWY'
# CDR3s (IMGT 105-117) of the kind nanobodies carry: 8 to 21 residues.
VHH_CDR3S = [
    'AADRRGYSSSWYDY', 'NAKRGSYYGSLDY', 'AARSGYGSSLYRPEYDY', 'AAGPLTRLSSSWYTNRYEYDY',
    'NVGGRWYGSNRYEY', 'AADLRGGSWYTPEAYDY', 'AAEPRYGSTWSLSLYDY', 'KTYGSSWYTY',
    'AAGRYGGTWYGDREYNY', 'NADSRIGVYAY', 'AARDPVTTRRYYSEYDY', 'AASQWRGSYYRDFDS',
]
LINKERS = {
    'G4S3': 'GGGGS' * 3,
    'G4S4': 'GGGGS' * 4,
    'whitlow218': 'GSTSGSGKPGSGEGSTKG',
    'G4S1': 'GGGGS',
}
HIS6 = 'HHHHHH'
SIGNAL = 'MGWSCIILFLVATATGVHS'


def mutate(rng, seq, spans, n):
    """`n` random substitutions inside the given (start, end) spans of `seq`."""
    seq = list(seq)
    positions = [i for a, b in spans for i in range(a, b)]
    for i in rng.sample(positions, min(n, len(positions))):
        seq[i] = rng.choice([a for a in AMINO if a not in (seq[i], 'C')])
    return ''.join(seq)


def build_vhh():
    """Alpaca V (to Cys104) + a nanobody CDR3 + alpaca J (from W118), with CDR1/CDR2 matured by
    random substitutions (ungapped V positions 26-35 and 50-58 roughly cover them)."""
    from anarci.germlines import all_germlines
    rng = random.Random(SEED)
    vs, js = all_germlines['V']['H']['alpaca'], all_germlines['J']['H']['alpaca']
    j_names = sorted(g for g in js if _j_parts(js[g])[1])
    out = []
    for vg in sorted(vs):
        fr = _v_framework(vs[vg])[0]
        for k in range(8):
            jg = rng.choice(j_names)
            cdr3 = rng.choice(VHH_CDR3S)
            v = mutate(rng, fr, [(26, 35), (50, 58)], 4)
            out.append((f'vhh_alpaca_{vg}_{jg}_{k}', v + cdr3 + _j_parts(js[jg])[1]))
    return out


def graft_vhh(item):
    name, seq = item
    warnings.simplefilter('ignore')
    from abnumber import Chain
    from abnumber.germlines import get_imgt_v_chains, get_imgt_j_chains
    rec = {'name': name, 'sequence': seq}
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            chain = Chain(seq, scheme='kabat', allowed_species=ALLOWED_SPECIES)
            # Human+mouse numbering at every step, as the `hm` entries of abnumber_grafts.jsonl.
            choice = _choice(chain.renumber('imgt', allowed_species=ALLOWED_SPECIES), chain.chain_type)
            germline = get_imgt_v_chains(chain.chain_type)[choice['v']].merge(
                get_imgt_j_chains(chain.chain_type)[choice['j']])
            acceptor = germline.renumber('kabat', allowed_species=ALLOWED_SPECIES)
            grafts = {
                f'{"vernier" if vernier else "straight"}{"_hallmark" if hallmark else ""}':
                    chain.graft_cdrs_onto(acceptor, backmutate_vernier=vernier,
                                          backmutate_vhh_hallmark=hallmark).seq
                for vernier in (False, True) for hallmark in (False, True)
            }
    except Exception as e:
        rec['error'] = f'{type(e).__name__}: {e}'
        return rec
    rec['chain_type'] = chain.chain_type
    rec['v_gene'], rec['j_gene'] = choice['v'], choice['j']
    rec['hallmarks'] = {str(p.format(chain_type=True)): a for p, a in chain if p.number in (37, 44, 45, 47)}
    rec.update(grafts)
    return rec


def build_multidomain(humab, vhh):
    pairs = {}
    for name, seq in humab:
        if name.startswith('humab25_parental_'):
            ab, chain = name[len('humab25_parental_'):].rsplit('_', 1)
            pairs.setdefault(ab, {})[chain] = seq
    antibodies = sorted(ab for ab, c in pairs.items() if set(c) == {'VH', 'VL'})
    rng = random.Random(SEED)
    out = []
    for k, ab in enumerate(antibodies):
        vh, vl = pairs[ab]['VH'], pairs[ab]['VL']
        linker = ['G4S3', 'G4S4', 'whitlow218', 'G4S1'][k % 4]
        tag = HIS6 if k % 3 == 0 else ''
        if k % 2 == 0:
            out.append((f'scfv_{ab}_VH_{linker}_VL{"_His6" if tag else ""}', vh + LINKERS[linker] + vl + tag))
        else:
            out.append((f'scfv_{ab}_VL_{linker}_VH{"_His6" if tag else ""}', vl + LINKERS[linker] + vh + tag))
    out.append((f'scfv_{antibodies[0]}_signal_VH_G4S3_VL', SIGNAL + pairs[antibodies[0]]['VH'] + LINKERS['G4S3']
                + pairs[antibodies[0]]['VL']))
    for a, b in zip(antibodies[:6:2], antibodies[1:6:2]):
        out.append((f'tandem_{a}_{b}', pairs[a]['VH'] + LINKERS['G4S3'] + pairs[a]['VL'] + LINKERS['G4S1']
                    + pairs[b]['VH'] + LINKERS['G4S3'] + pairs[b]['VL']))
    for x, y in zip(vhh[0:24:8], vhh[8:32:8]):
        out.append((f'bivalent_{x[0]}_{y[0]}', x[1] + LINKERS['G4S3'] + y[1]))
    rng.shuffle(out)
    return sorted(out)


def number_domains(records):
    from anarci import anarci
    seqs = [(n, s) for n, s in records]
    out = [{'name': n, 'sequence': s, 'domains': []} for n, s in records]
    for scheme in ('kabat', 'imgt'):
        with contextlib.redirect_stdout(io.StringIO()):
            numbered, details, _ = anarci(seqs, scheme=scheme, allowed_species=ALLOWED_SPECIES,
                                          allow=ALLOW_CHAINS, hmmerpath=HMMERPATH)
        for rec, domains, info in zip(out, numbered, details):
            for k, ((positions, start, end), d) in enumerate(zip(domains or [], info or [])):
                if scheme == 'kabat':
                    rec['domains'].append({'chain_type': d['chain_type'], 'seq_start': start, 'seq_end': end})
                assert rec['domains'][k]['seq_start'] == start, rec['name']
                rec['domains'][k][scheme] = [[_label(p), a] for p, a in positions if a != '-']
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument('--repo', default=os.path.abspath(os.path.join(here, '..', '..')))
    ap.add_argument('--humab25', default=None)
    args = ap.parse_args()
    humab_dir = args.humab25 or os.path.abspath(os.path.join(args.repo, '..', 'shared', 'data', 'humab25'))
    fx = os.path.join(args.repo, 'tests', 'fixtures')
    humab = [(f'humab25_parental_{"_".join(d.split())}', s.upper())
             for d, s in read_fasta(os.path.join(humab_dir, 'parental.fa'))]
    vhh = build_vhh()
    write_fasta(os.path.join(fx, 'vhh.fasta'), vhh)
    grafts = [graft_vhh(item) for item in vhh]
    dump_jsonl(os.path.join(fx, 'abnumber_vhh_grafts.jsonl'), grafts)
    print(f'VHH: {len(grafts)} chains, {sum("error" in g for g in grafts)} errors', file=sys.stderr)
    multi = build_multidomain(humab, vhh)
    write_fasta(os.path.join(fx, 'multidomain.fasta'), multi)
    domains = number_domains(multi)
    dump_jsonl(os.path.join(fx, 'anarci_domains.jsonl'), domains)
    print(f'multi-domain: {len(domains)} records, domains per record '
          f'{sorted({len(d["domains"]) for d in domains})}', file=sys.stderr)


if __name__ == '__main__':
    main()
