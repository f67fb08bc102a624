#!/usr/bin/env python3
"""Generate veneer's oracle test fixtures with ANARCI and AbNumber.

Writes (relative to the repository root):

  tests/fixtures/chains.fasta            real antibody V domains (humab25 + germline-derived)
  tests/fixtures/with_flanks.fasta       antibody chains with signal peptides / constant-region starts
  tests/fixtures/not_antibodies.fasta    proteins that are not antibody V domains
  tests/fixtures/anarci_numbering.jsonl  ANARCI (human+mouse HMMs) IMGT/Kabat/Chothia numbering of all three
  tests/fixtures/abnumber_grafts.jsonl   AbNumber CDR grafts onto the nearest human germline (chains.fasta)

Deterministic: fixed seed, fixed input order, sorted keys; running it twice gives
byte-identical files.  See tools/oracle/README.md.

Usage:  python tools/oracle/make_fixtures.py [--repo PATH] [--humab25 DIR] [--procs 2]
                                             [--compare-species]
"""
import argparse
import contextlib
import copy
import io
import json
import os
import random
import re
import sys
import time
import warnings
from multiprocessing import Pool

HMMERPATH = '/usr/bin'
ALLOWED_SPECIES = ['human', 'mouse']   # = ANARCI CLI default (no --use_species)
ALLOW_CHAINS = {'H', 'K', 'L'}
SCHEMES = ['imgt', 'kabat', 'chothia']
SEED = 20240601
HUMAB25_FILES = ['parental', 'experimental', 'sapiens1', 'biophi_straight_grafts', 'biophi_vernier_grafts']

# ---------------------------------------------------------------------------------------------
# Input sequences
# ---------------------------------------------------------------------------------------------

SIGNAL_H = 'MGWSCIILFLVATATGVHS'          # common mouse/human VH leader used in expression vectors
SIGNAL_L = 'METDTLLLWVLLLWVPGSTG'         # Ig kappa leader (pSecTag-style)
CH1_20 = 'ASTKGPSVFPLAPSSKSTSG'           # human IgG1 CH1 start
CK_20 = 'RTVAAPSVFIFPPSDEQLKS'            # human C-kappa start
CL_20 = 'GQPKAAPSVTLFPPSSEELQ'            # human C-lambda start

# ANARCI's own example sequences (anarci/anarci.py __main__, BSD-3, OPIG)
ANARCI_12E8_H = 'EVQLQQSGAEVVRSGASVKLSCTASGFNIKDYYIHWVKQRPEKGLEWIGWIDPEIGDTEYVPKFQGKATMTADTSSNTAYLQLSSLTSEDTAVYYCNAGHDYDRGRFPYWGQGTLVTVSAAKTTPPSVYPLAP'
ANARCI_12E8_L = 'DIVMTQSQKFMSTSVGDRVSITCKASQNVGTAVAWYQQKPGQSPKLMIYSASNRYTGVPDRFTGSGSGTDFTLTISNMQSEDLADYFCQQYSSYPLTFGAGTKLELKRADAAPTVSIFPPSSEQLTSGGASV'
ANARCI_SCFV = 'DIQMTQSPSSLSASVGDRVTITCRTSGNIHNYLTWYQQKPGKAPQLLIYNAKTLADGVPSRFSGSGSGTQFTLTISSLQPEDFANYYCQHFWSLPFTFGQGTKVEIKRTGGGGSGGGGSGGGGSGGGGSEVQLVESGGGLVQPGGSLRLSCAASGFDFSRYDMSWVRQAPGKRLEWVAYISSGGGSTYFPDTVKGRFTISRDNAKNTLYLQMNSLRAEDTAVYYCARQNKKLTWFDYWGQGTLVTVSSHHHHHH'
ANARCI_HEN_LYSOZYME = 'KVFGRCELAAAMKRHGLDNYRGYSLGNWVCAAKFESNFNTQATNRNTDGSTDYGILQINSRWWCNDGRTPGSRNLCNIPCSALLSSDITASVNCAKKIVSDGNGMNAWVAWRNRCKGTDVQAWIRGCRL'

# Negatives: well-known proteins (sequences of the UniProt/PDB entries named; used only as
# "not an antibody V domain" inputs, so exactness of every residue is not essential).
NOT_ANTIBODIES = [
    ('neg_lysozyme_human_P61626', 'KVFERCELARTLKRLGMDGYRGISLANWMCLAKWESGYNTRATNYNAGDRSTDYGIFQINSRYWCNDGKTPGAVNACHLSCSALLQDNIADAVACAKRVVRDPQGIRAWVAWRNRCQNRDVRQYVQGCGV'),
    ('neg_lysozyme_hen_anarci_example', ANARCI_HEN_LYSOZYME),
    ('neg_GFP_Aequorea_P42212', 'MSKGEELFTGVVPILVELDGDVNGHKFSVSGEGEGDATYGKLTLKFICTTGKLPVPWPTLVTTFSYGVQCFSRYPDHMKQHDFFKSAMPEGYVQERTIFFKDDGNYKTRAEVKFEGDTLVNRIELKGIDFKEDGNILGHKLEYNYNSHNVYIMADKQKNGIKVNFKIRHNIEDGSVQLADHYQQNTPIGDGPVLLPDNHYLSTQSALSKDPNEKRDHMVLLEFVTAAGITHGMDELYK'),
    ('neg_ubiquitin_human_P0CG48', 'MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPPDQQRLIFAGKQLEDGRTLSDYNIQKESTLHLVLRLRGG'),
    ('neg_preproinsulin_human_P01308', 'MALWMRLLPLLALLALWGPDPAAAFVNQHLCGSHLVEALYLVCGERGFFYTPKTRREAEDLQVGQVELGGGPGAGSLQPLALEGSLQKRGIVEQCCTSICSLYQLENYCN'),
    ('neg_TCR_beta_A6_1AO7', 'NAGVTQTPKFQVLKTGQSMTLQCAQDMNHEYMSWYRQDPGMGLRLIHYSVGAGITDQGEVPNGYNVSRSTTEDFPLRLLSAAPSQTSVYFCASRPGLAGGRPEQYFGPGTRLTVTEDLKNVFPPEVAVFEPSEAEISHTQKATLVCLATGFYPDHVELSWWVNGKEVHSGVSTDPQPLKEQPALNDSRYCLSSRLRVSATFWQNPRNHFRCQVQFYGLSENDEWTQDRAKPVTQIVSAEAWGRAD'),
    ('neg_beta2_microglobulin_human_P61769', 'IQRTPKIQVYSRHPAENGKSNFLNCYVSGFHPSDIEVDLLKNGERIEKVEHSDLSFSKDWSFYLLYYTEFTPTEKDEYACRVNHVTLSQPKIVKWDRDM'),
    ('neg_Ckappa_constant_human', 'RTVAAPSVFIFPPSDEQLKSGTASVVCLLNNFYPREAKVQWKVDNALQSGNSQESVTEQDSKDSTYSLSSTLTLSKADYEKHKVYACEVTHQGLSSPVTKSFNRGEC'),
    ('neg_fibronectin_FN3_10_human', 'VSDVPRDLEVVAATPTSLLISWDAPAVTVRYYRITYGETGGNSPVQEFTVPGSKSTATISGLKPGVDYTITVYAVTGRGDSPASSKPISINYRT'),
    ('neg_serum_albumin_human_1-120', 'DAHKSEVAHRFKDLGEENFKALVLIAFAQYLQQCPFEDHVKLVNEVTEFAKTCVADESAENCDKSLHTLFGDKLCTVATLRETYGEMADCCAKQEPERNECFLQHKDDNPNLPRLVRPEVDV'),
    ('neg_synthetic_ACDEFGHIKLMNPQRSTVWY_x6', 'ACDEFGHIKLMNPQRSTVWY' * 6),
]


def read_fasta(path):
    records, name, seq = [], None, []
    with open(path) as f:
        for line in f:
            line = line.rstrip('\n')
            if line.startswith('>'):
                if name is not None:
                    records.append((name, ''.join(seq)))
                name, seq = line[1:].strip(), []
            elif line.strip():
                seq.append(line.strip())
    if name is not None:
        records.append((name, ''.join(seq)))
    return records


def write_fasta(path, records):
    with open(path, 'w') as f:
        for name, seq in records:
            assert ' ' not in name, name
            f.write(f'>{name}\n{seq}\n')


def load_humab25(humab_dir):
    out = []
    for stem in HUMAB25_FILES:
        for desc, seq in read_fasta(os.path.join(humab_dir, stem + '.fa')):
            desc = desc.replace(' (Humanized by BioPhi Sapiens)', '')
            name = f'humab25_{stem}_' + '_'.join(desc.split())
            out.append((name, seq.upper()))
    names = [n for n, _ in out]
    assert len(names) == len(set(names)), 'duplicate humab25 names'
    return out


def _ungap(s):
    return s.replace('-', '')


def _v_framework(gapped):
    """Ungapped germline V up to and including the second conserved Cys (IMGT 104), and the
    germline residues after it (start of CDR3).  Motif-based, because some of ANARCI's germline
    tables (rat IGHV, rhesus IGHV and IGKV) are not in the standard IMGT 128-column register."""
    v = _ungap(gapped)
    tail_start = max(len(v) - 8, 0)
    k = v.rfind('C', tail_start)
    if k < 80 or 'C' not in v[18:26]:
        return None, None
    return v[:k + 1], v[k + 1:]


def _j_parts(gapped):
    """Ungapped germline J split at the W/F-G-x-G motif (IMGT 118): (CDR3 part, FR4)."""
    j = _ungap(gapped)
    m = re.search('[WF]G.G', j)
    if not m or len(j) - m.start() < 9:
        return None, None
    return j[:m.start()], j[m.start():]


def build_germline_chains(cdr3_pool):
    """~270 V domains = ANARCI germline V (up to Cys104) + CDR3 + germline J (from W/F118).

    H and K take their CDR3 (IMGT 105-117) from humab25 chains of the same type; lambda (no
    lambda chain in humab25) takes a germline junction: up to 6 V residues after Cys104 + the
    J residues before W/F118 (no N additions).  Rat has no heavy J in ANARCI's table: mouse
    IGHJ is used (the name then says mouseIGHJ...).
    """
    from anarci.germlines import all_germlines
    rng = random.Random(SEED)
    plan = {
        'H': [('human', 30), ('mouse', 30), ('rat', 9), ('rabbit', 15), ('rhesus', 20), ('pig', 10), ('alpaca', 5)],
        'K': [('human', 20), ('mouse', 20), ('rat', 12), ('rabbit', 6), ('rhesus', 15)],
        'L': [('human', 20), ('mouse', 5), ('rat', 8), ('rabbit', 10), ('rhesus', 12)],
    }

    def cdr3_for(ct, vg, jg):
        if ct == 'L':
            return _v_framework(vg)[1][:6] + _j_parts(jg)[0]
        return rng.choice(cdr3_pool[ct])

    chains = []
    base = {'H': [], 'K': [], 'L': []}
    for ct in ['H', 'K', 'L']:
        for species, n in plan[ct]:
            vs = all_germlines['V'][ct][species]
            j_species = species if species in all_germlines['J'][ct] else 'mouse'
            js = all_germlines['J'][ct][j_species]
            j_names = sorted(g for g in js if _j_parts(js[g])[1])
            # usable V genes with a unique framework sequence (alleles can share it)
            seen, v_unique = set(), []
            for g in sorted(vs):
                fr = _v_framework(vs[g])[0]
                if fr and fr not in seen:
                    seen.add(fr)
                    v_unique.append(g)
            for vg in sorted(rng.sample(v_unique, min(n, len(v_unique)))):
                jg = rng.choice(j_names)
                v, j = vs[vg], js[jg]
                seq = _v_framework(v)[0] + cdr3_for(ct, v, j) + _j_parts(j)[1]
                jtag = jg if j_species == species else f'{j_species}{jg}'
                chains.append((f'germline_{species}_{vg}_{jtag}', seq))
                base[ct].append((species, vg, jg, j_species))

    # Unusual lengths: N/C-terminal truncations, very short and very long CDR3s.
    variants = ['ntrim1', 'ntrim3', 'ntrim6', 'ctrim2', 'ctrim5', 'shortcdr3', 'longcdr3']
    for ct in ['H', 'K', 'L']:
        picks = rng.sample(base[ct], len(variants))
        for variant, (species, vg, jg, j_species) in zip(variants, picks):
            v = all_germlines['V'][ct][species][vg]
            j = all_germlines['J'][ct][j_species][jg]
            fr, fr4 = _v_framework(v)[0], _j_parts(j)[1]
            cdr3 = cdr3_for(ct, v, j)
            if variant == 'shortcdr3':
                cdr3 = {'H': 'ARDY', 'K': 'QQYT', 'L': 'QSWV'}[ct]
            elif variant == 'longcdr3':
                if ct == 'H':
                    a, b = rng.sample(sorted(cdr3_pool['H'], key=lambda s: (-len(s), s))[:8], 2)
                    cdr3 = a + b[2:]          # 25-30 residues, exercises ANARCI's check_for_j
                else:
                    cdr3 = cdr3[:4] + 'SGSGYS' + cdr3[4:]
            seq = fr + cdr3 + fr4
            if variant.startswith('ntrim'):
                seq = seq[int(variant[5:]):]
            elif variant.startswith('ctrim'):
                seq = seq[:-int(variant[5:])]
            jtag = jg if j_species == species else f'{j_species}{jg}'
            chains.append((f'germline_{species}_{vg}_{jtag}_{variant}', seq))
    names = [n for n, _ in chains]
    assert len(names) == len(set(names)), 'duplicate germline names'
    return chains


def build_with_flanks(humab):
    d = dict(humab)
    g = lambda ab, c: d[f'humab25_parental_{ab}_{c}']
    from anarci.germlines import all_germlines
    v = all_germlines['V']['L']['human']['IGLV1-40*01']
    j = all_germlines['J']['L']['human']['IGLJ2*01']
    lam = ''.join(_v_framework(v)) + ''.join(_j_parts(j))   # germline lambda V domain, no N additions
    recs = [
        ('flank_Herceptin_VH_signal', SIGNAL_H + g('Herceptin', 'VH')),
        ('flank_Herceptin_VL_signal', SIGNAL_L + g('Herceptin', 'VL')),
        ('flank_Bevacizumab_VH_CH1', g('Bevacizumab', 'VH') + CH1_20),
        ('flank_Bevacizumab_VL_CK', g('Bevacizumab', 'VL') + CK_20),
        ('flank_Campath_VH_signal_CH1', SIGNAL_H + g('Campath', 'VH') + CH1_20),
        ('flank_Campath_VL_signal_CK', SIGNAL_L + g('Campath', 'VL') + CK_20),
        ('flank_Pembrolizumab_VH_CH1_10', g('Pembrolizumab', 'VH') + CH1_20[:10]),
        ('flank_Pembrolizumab_VL_CK_10', g('Pembrolizumab', 'VL') + CK_20[:10]),
        ('flank_Clazakizumab_VH_signal_CH1', SIGNAL_H + g('Clazakizumab', 'VH') + CH1_20),
        ('flank_Refanezumab_VH_CH1_15', g('Refanezumab', 'VH') + CH1_20[:15]),
        ('flank_Ixekizumab_VL_signal', SIGNAL_L + g('Ixekizumab', 'VL')),
        ('flank_germline_human_IGLV1-40_IGLJ2_signal_CL', SIGNAL_L + lam + CL_20),
        ('flank_germline_human_IGLV1-40_IGLJ2_CL', lam + CL_20),
        ('flank_anarci_example_12e8_H', ANARCI_12E8_H),
        ('flank_anarci_example_12e8_L', ANARCI_12E8_L),
        ('flank_anarci_example_scFv_VL_VH_His6', ANARCI_SCFV),
    ]
    return recs


# ---------------------------------------------------------------------------------------------
# ANARCI numbering
# ---------------------------------------------------------------------------------------------

def _label(num_ins):
    (num, ins) = num_ins
    return f'{num}{ins.strip()}'


def _error_from_hits(hit_table):
    rows = hit_table[1:] if hit_table else []
    if not rows:
        return 'no HMM hit above bit score threshold 80'
    best = rows[0]    # hits are appended in e-value order
    hid, score = best[0], best[3]
    ct = hid.split('_')[1]
    if ct not in ALLOW_CHAINS:
        return f'not an antibody chain: best hit {hid} (TCR), bit score {score:.1f}'
    return f'no antibody domain numbered: best hit {hid}, bit score {score:.1f}'


def anarci_number_batch(records):
    """Number [(name, seq)] with ANARCI internals (one hmmscan for all schemes)."""
    from anarci.anarci import run_hmmer, check_for_j, number_sequences_from_alignment, run_germline_assignment
    seqs = [(f'id{i}', s) for i, (_, s) in enumerate(records)]
    with contextlib.redirect_stdout(io.StringIO()) as captured:
        alignments = run_hmmer(seqs, hmm_database='ALL', hmmerpath=HMMERPATH, bit_score_threshold=80,
                               hmmer_species=ALLOWED_SPECIES)
    check_for_j(seqs, alignments, 'imgt')
    out = []
    for i, (name, seq) in enumerate(records):
        rec = {'name': name, 'sequence': seq}
        hit_table, state_vectors, details = alignments[i]
        per_scheme = {}
        err = None
        for scheme in SCHEMES:
            try:
                numbered, ali, _ = number_sequences_from_alignment(
                    [seqs[i]], [copy.deepcopy(alignments[i])], scheme=scheme, allow=ALLOW_CHAINS)
            except Exception as e:   # ANARCI raises AssertionError on internal failures
                err = f'ANARCI failed in {scheme}: {type(e).__name__}: {e}'
                break
            if numbered[0] is None:
                err = _error_from_hits(hit_table)
                break
            per_scheme[scheme] = (numbered[0], ali[0])
        if err:
            rec['error'] = err
            out.append(rec)
            continue
        numbered_imgt, ali_imgt = per_scheme['imgt']
        d0 = ali_imgt[0]
        positions, start, end = numbered_imgt[0]
        rec['chain_type'] = d0['chain_type']
        rec['species'] = d0['species']
        rec['seq_start'] = start
        rec['seq_end'] = end
        # state vector of the first numbered domain (domains not allowed are skipped by ANARCI)
        sv_idx = [k for k, d in enumerate(details) if d['chain_type'] in ALLOW_CHAINS][0]
        sv = state_vectors[sv_idx]
        hum = run_germline_assignment(sv, seq, d0['chain_type'], allowed_species=['human'])
        rec['v_gene'] = hum['v_gene'][0][1] if hum.get('v_gene') and hum['v_gene'][0] else None
        rec['j_gene'] = hum['j_gene'][0][1] if hum.get('j_gene') and hum['j_gene'][0] else None
        rec['v_identity'] = round(hum['v_gene'][1], 6) if rec['v_gene'] else None
        rec['j_identity'] = round(hum['j_gene'][1], 6) if rec['j_gene'] else None
        allsp = run_germline_assignment(sv, seq, d0['chain_type'], allowed_species=None)
        if allsp.get('v_gene') and allsp['v_gene'][0]:
            rec['closest_germline'] = {
                'species': allsp['v_gene'][0][0], 'v_gene': allsp['v_gene'][0][1],
                'v_identity': round(allsp['v_gene'][1], 6),
                'j_gene': allsp['j_gene'][0][1] if allsp['j_gene'][0] else None,
                'j_identity': round(allsp['j_gene'][1], 6) if allsp['j_gene'][0] else None}
        if len(numbered_imgt) > 1:
            rec['domains'] = len(numbered_imgt)
        for scheme in SCHEMES:
            numbered, _ = per_scheme[scheme]
            pos, s0, e0 = numbered[0]
            rec[scheme] = [[_label(p), a] for p, a in pos if a != '-']
            residues = ''.join(a for _, a in rec[scheme])
            if (s0, e0) != (start, end):
                rec.setdefault('notes', []).append(f'{scheme} start/end {s0}/{e0}')
            if residues != seq[start:end + 1]:
                rec.setdefault('notes', []).append(f'{scheme} residues != sequence[seq_start..=seq_end]')
            labels = [l for l, _ in rec[scheme]]
            if len(labels) != len(set(labels)):
                rec.setdefault('notes', []).append(f'{scheme} duplicate labels')
        out.append(rec)
    return out


def anarci_reference_check(records):
    """Compare our internal pipeline with the public anarci.anarci() API (per scheme)."""
    from anarci.anarci import anarci
    seqs = [(f'id{i}', s) for i, (_, s) in enumerate(records)]
    res = {}
    for scheme in SCHEMES:
        with contextlib.redirect_stdout(io.StringIO()):
            numbered, details, _ = anarci(seqs, scheme=scheme, allowed_species=ALLOWED_SPECIES, allow=ALLOW_CHAINS,
                                          hmmerpath=HMMERPATH)
        res[scheme] = [None if n is None else ([[_label(p), a] for p, a in n[0][0] if a != '-'], n[0][1], n[0][2],
                                               details[k][0]['chain_type'], details[k][0]['species'])
                       for k, n in enumerate(numbered)]
    return res


# ---------------------------------------------------------------------------------------------
# AbNumber grafting
# ---------------------------------------------------------------------------------------------

def _rank(chain_imgt, germlines):
    """Exactly AbNumber's find_human_germlines scoring; returns (scores, stable order)."""
    import numpy as np
    aligns = [chain_imgt.align(g) for g in germlines]
    ident = [a.num_identical(ignore_cdrs=False) for a in aligns]
    sim = [a.num_similar() for a in aligns]
    scores = np.array([-i - (s * 0.01) for i, s in zip(ident, sim)])
    order = scores.argsort(kind='stable')
    return scores, order, ident, sim


def _choice(chain_imgt, ct):
    from abnumber.germlines import get_imgt_v_chains, get_imgt_j_chains
    from abnumber.common import _get_unique_chains
    res = {}
    for key, getter in (('v', get_imgt_v_chains), ('j', get_imgt_j_chains)):
        germ = _get_unique_chains(list(getter(ct).values()))
        scores, order, ident, sim = _rank(chain_imgt, germ)
        best = order[0]
        res[key] = germ[best].name
        res[key + '_score'] = [ident[best], sim[best]]
        res[key + '_ties'] = [germ[k].name for k in order[1:] if scores[k] == scores[best]]
    return res


def abnumber_graft_one(item):
    name, seq = item
    warnings.simplefilter('ignore')
    from abnumber import Chain
    rec = {'name': name, 'sequence': seq}
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            chain = Chain(seq, scheme='kabat', allowed_species=ALLOWED_SPECIES)
            straight = chain.graft_cdrs_onto_human_germline(backmutate_vernier=False)
            vernier = chain.graft_cdrs_onto_human_germline(backmutate_vernier=True)
            merged = chain.find_merged_human_germline()
            # Reproduce the ranking to expose scores and ties (AbNumber renumbers the parental
            # chain in IMGT via chain.renumber('imgt'), i.e. allowed_species=None = all species).
            imgt_all = chain.renumber('imgt')
            choice = _choice(imgt_all, chain.chain_type)
            # What would change if the IMGT renumbering used human+mouse instead?
            imgt_hm = chain.renumber('imgt', allowed_species=ALLOWED_SPECIES)
            choice_hm = _choice(imgt_hm, chain.chain_type)
            # Germline renumbering into Kabat is also done with all species; compare with human+mouse.
            germ_kabat_all = merged.renumber('kabat')
            germ_kabat_hm = merged.renumber('kabat', allowed_species=ALLOWED_SPECIES)
            # The same graft with human+mouse numbering at every step (what a reimplementation
            # that numbers everything with the human+mouse models would produce).
            from abnumber.germlines import get_imgt_v_chains, get_imgt_j_chains
            germ_hm = get_imgt_v_chains(chain.chain_type)[choice_hm['v']].merge(
                get_imgt_j_chains(chain.chain_type)[choice_hm['j']])
            germ_hm_kabat = germ_hm.renumber('kabat', allowed_species=ALLOWED_SPECIES)
            straight_hm = chain.graft_cdrs_onto(germ_hm_kabat, backmutate_vernier=False)
            vernier_hm = chain.graft_cdrs_onto(germ_hm_kabat, backmutate_vernier=True)
    except Exception as e:
        rec['error'] = f'{type(e).__name__}: {e}'
        return rec
    v_name, j_name = merged.name.split(' ')
    assert (v_name, j_name) == (choice['v'], choice['j']), (name, merged.name, choice)
    rec['chain_type'] = chain.chain_type
    rec['v_gene'] = v_name
    rec['j_gene'] = j_name
    rec['straight'] = straight.seq
    rec['vernier'] = vernier.seq
    rec['v_score'] = choice['v_score']
    rec['j_score'] = choice['j_score']
    rec['v_ties'] = choice['v_ties']
    rec['j_ties'] = choice['j_ties']
    if straight.tail or vernier.tail:
        rec['graft_tail'] = straight.tail
    if chain.tail:
        rec['parental_tail'] = chain.tail
    if [(str(p), a) for p, a in imgt_all] != [(str(p), a) for p, a in imgt_hm]:
        rec['imgt_all_species_differs'] = True
        rec['imgt_all_species'] = [[p.format(chain_type=False), a] for p, a in imgt_all]
    if [(str(p), a) for p, a in germ_kabat_all] != [(str(p), a) for p, a in germ_kabat_hm]:
        rec['germline_kabat_all_species_differs'] = True
        rec['germline_kabat_all_species'] = [[p.format(chain_type=False), a] for p, a in germ_kabat_all]
    rec['hm'] = {'v_gene': choice_hm['v'], 'j_gene': choice_hm['j'], 'v_score': choice_hm['v_score'],
                 'j_score': choice_hm['j_score'], 'v_ties': choice_hm['v_ties'], 'j_ties': choice_hm['j_ties'],
                 'straight': straight_hm.seq, 'vernier': vernier_hm.seq}
    return rec


def abnumber_graft_batch(items):
    return [abnumber_graft_one(it) for it in items]


# ---------------------------------------------------------------------------------------------

def chunks(lst, n):
    return [lst[i:i + n] for i in range(0, len(lst), n)]


def dump_jsonl(path, recs):
    with open(path, 'w') as f:
        for r in recs:
            f.write(json.dumps(r, separators=(',', ':'), ensure_ascii=True) + '\n')


def compare_species(records):
    """Report how numbering with all species differs from human+mouse (stdout only)."""
    from anarci.anarci import anarci
    seqs = [(f'id{i}', s) for i, (_, s) in enumerate(records)]
    res = {}
    for sp_name, sp in (('human+mouse', ALLOWED_SPECIES), ('all', None)):
        with contextlib.redirect_stdout(io.StringIO()):
            res[sp_name] = {s: anarci(seqs, scheme=s, allowed_species=sp, allow=ALLOW_CHAINS, hmmerpath=HMMERPATH)
                            for s in ('imgt', 'kabat')}
    diffs = []
    for i, (name, seq) in enumerate(records):
        row = []
        for s in ('imgt', 'kabat'):
            a = res['human+mouse'][s][0][i]
            b = res['all'][s][0][i]
            fa = None if a is None else [(p, x) for p, x in a[0][0] if x != '-']
            fb = None if b is None else [(p, x) for p, x in b[0][0] if x != '-']
            if fa != fb:
                sa = res['human+mouse'][s][1][i][0]['species'] if a else None
                sb = res['all'][s][1][i][0]['species'] if b else None
                row.append(f'{s}({sa}->{sb})')
        if row:
            diffs.append((name, row))
    print(f'all-species vs human+mouse numbering differs for {len(diffs)}/{len(records)} chains')
    for name, row in diffs:
        print('  ', name, ' '.join(row))
    return diffs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument('--repo', default=os.path.abspath(os.path.join(here, '..', '..')))
    ap.add_argument('--humab25', default=None, help='default: <repo>/../shared/data/humab25')
    ap.add_argument('--procs', type=int, default=2)
    ap.add_argument('--compare-species', action='store_true',
                    help='also print where all-species numbering differs from human+mouse (no files)')
    ap.add_argument('--skip-grafts', action='store_true')
    args = ap.parse_args()
    humab_dir = args.humab25 or os.path.abspath(os.path.join(args.repo, '..', 'shared', 'data', 'humab25'))
    fx = os.path.join(args.repo, 'tests', 'fixtures')
    os.makedirs(fx, exist_ok=True)
    t0 = time.time()

    humab = load_humab25(humab_dir)
    # CDR3 pool (IMGT 105-117) from the numbered humab25 parental + experimental chains
    pool_src = [r for r in humab if r[0].startswith(('humab25_parental_', 'humab25_experimental_'))]
    numbered_pool = anarci_number_batch(pool_src)
    cdr3_pool = {'H': set(), 'K': set(), 'L': set()}
    for r in numbered_pool:
        if 'error' in r:
            continue
        cdr3 = ''.join(a for l, a in r['imgt'] if 105 <= int(l.rstrip('ABCDEFGHIJKLMNOPQRSTUVWXYZ')) <= 117)
        cdr3_pool[r['chain_type']].add(cdr3)
    cdr3_pool = {k: sorted(v) for k, v in cdr3_pool.items()}
    print('CDR3 pool sizes:', {k: len(v) for k, v in cdr3_pool.items()}, file=sys.stderr)

    germ = build_germline_chains(cdr3_pool)
    chains = humab + germ
    flanks = build_with_flanks(humab)
    write_fasta(os.path.join(fx, 'chains.fasta'), chains)
    write_fasta(os.path.join(fx, 'with_flanks.fasta'), flanks)
    write_fasta(os.path.join(fx, 'not_antibodies.fasta'), NOT_ANTIBODIES)
    print(f'chains={len(chains)} (humab25 {len(humab)}, germline {len(germ)}), with_flanks={len(flanks)}, '
          f'not_antibodies={len(NOT_ANTIBODIES)}', file=sys.stderr)

    all_recs = chains + flanks + NOT_ANTIBODIES
    t1 = time.time()
    with Pool(args.procs) as pool:
        numbered = [r for batch in pool.map(anarci_number_batch, chunks(all_recs, 40)) for r in batch]
        ref = pool.map(anarci_reference_check, chunks(all_recs, 40))
    ref = {s: [x for part in ref for x in part[s]] for s in SCHEMES}
    for k, r in enumerate(numbered):
        for s in SCHEMES:
            ours = None if 'error' in r else (r[s], r['seq_start'], r['seq_end'], r['chain_type'], r['species'])
            assert ours == ref[s][k], f'internal pipeline != anarci() for {r["name"]} {s}'
    dump_jsonl(os.path.join(fx, 'anarci_numbering.jsonl'), numbered)
    print(f'ANARCI: {len(numbered)} records, {sum("error" in r for r in numbered)} errors, '
          f'{time.time() - t1:.1f}s (x2: own pipeline + anarci() cross-check)', file=sys.stderr)

    if not args.skip_grafts:
        t2 = time.time()
        ok = {r['name'] for r in numbered if 'error' not in r}
        items = [(n, s) for n, s in chains if n in ok]
        with Pool(args.procs) as pool:
            grafts = [r for batch in pool.map(abnumber_graft_batch, chunks(items, 10)) for r in batch]
        dump_jsonl(os.path.join(fx, 'abnumber_grafts.jsonl'), grafts)
        print(f'AbNumber: {len(grafts)} records, {sum("error" in r for r in grafts)} errors, '
              f'{time.time() - t2:.1f}s', file=sys.stderr)

    if args.compare_species:
        compare_species(chains + flanks)
    print(f'total {time.time() - t0:.1f}s', file=sys.stderr)


if __name__ == '__main__':
    main()
