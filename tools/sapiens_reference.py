#!/usr/bin/env python3
"""Independent reference for veneer's Sapiens forward pass (src/engine/sapiens.rs).

Builds Sapiens v1 (fairseq `roberta_small`, as shipped in the MIT `sapiens` 1.0.0
package) from the safetensors weights with plain torch.nn.functional ops, runs it on
four chains of the HuMAb-25 parental set (2 VH, 2 VL) and writes the per-residue
probabilities of the 20 amino acids to tests/fixtures/sapiens_reference_probs.json.

The network, as fairseq 0.10.2 defines it (RobertaEncoder, TransformerSentenceEncoder,
TransformerSentenceEncoderLayer, RobertaLMHead):
  tokens   <s> residues </s>; <s>=0 <pad>=1 </s>=2 <unk>=3 A..Y=4..23 <mask>=24
  x        = embed_tokens[tok] + embed_positions[pos]   (no embedding scale;
             positions start at padding_idx + 1 = 2)
  x        = emb_layer_norm(x)                          (encoder_normalize_before=True)
  4 x      x = LN(x + out_proj(attn(q_proj x * 16^-0.5, k_proj x, v_proj x)))
           x = LN(x + fc2(gelu_erf(fc1 x)))            (post-LayerNorm, eps 1e-5)
  logits   = lm_head.weight @ LN(gelu_erf(dense x)) + lm_head.bias
  probs    = softmax over all 25 tokens; drop the <s> and </s> rows; keep the
             A..Y columns without renormalising (sapiens.predict_scores).

With --package, it also runs the real `sapiens.predict_scores` (needs `sapiens` and
fairseq 0.10.2 importable) and prints the largest difference from this implementation.

Usage: python3 tools/sapiens_reference.py [--package]
Needs: torch, safetensors (pip install torch safetensors).
"""

import argparse
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "data" / "sapiens"
PARENTAL = ROOT / "tests" / "fixtures" / "humab25" / "parental.fa"
FIXTURE = ROOT / "tests" / "fixtures" / "sapiens_reference_probs.json"

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
BOS, PAD, EOS = 0, 1, 2
FIRST_AA = 4
LAYERS, HEADS, EPS = 4, 8, 1e-5

# Two heavy and two light chains; the light ones are kappa, the VL model serves both.
CHAINS = [
    ("AntiCD28 VH", "H"),
    ("Bevacizumab VH", "H"),
    ("Campath VL", "L"),
    ("Omalizumab VL", "L"),
]


def read_fasta(path):
    records, name = {}, None
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line.startswith(">"):
            name = line[1:].strip()
            records[name] = ""
        elif name is not None:
            records[name] += line
    return records


def tokens(seq):
    return torch.tensor([BOS] + [FIRST_AA + AMINO_ACIDS.index(a) for a in seq] + [EOS])


def forward(w, seq):
    p = "decoder.sentence_encoder."
    tok = tokens(seq)
    n, d = len(tok), w[p + "embed_tokens.weight"].shape[1]
    head_dim = d // HEADS
    # fairseq make_positions: cumsum over non-pad tokens, offset by padding_idx.
    positions = torch.arange(n) + PAD + 1
    x = w[p + "embed_tokens.weight"][tok] + w[p + "embed_positions.weight"][positions]
    x = F.layer_norm(x, (d,), w[p + "emb_layer_norm.weight"], w[p + "emb_layer_norm.bias"], EPS)
    for i in range(LAYERS):
        q = f"{p}layers.{i}."

        def lin(name, v):
            return F.linear(v, w[q + name + ".weight"], w[q + name + ".bias"])

        qh = (lin("self_attn.q_proj", x) * head_dim**-0.5).view(n, HEADS, head_dim).transpose(0, 1)
        kh = lin("self_attn.k_proj", x).view(n, HEADS, head_dim).transpose(0, 1)
        vh = lin("self_attn.v_proj", x).view(n, HEADS, head_dim).transpose(0, 1)
        attn = torch.softmax(qh @ kh.transpose(1, 2), dim=-1) @ vh
        attn = attn.transpose(0, 1).reshape(n, d)
        x = F.layer_norm(
            x + lin("self_attn.out_proj", attn),
            (d,),
            w[q + "self_attn_layer_norm.weight"],
            w[q + "self_attn_layer_norm.bias"],
            EPS,
        )
        h = lin("fc2", F.gelu(lin("fc1", x)))
        x = F.layer_norm(x + h, (d,), w[q + "final_layer_norm.weight"], w[q + "final_layer_norm.bias"], EPS)
    h = "decoder.lm_head."
    y = F.gelu(F.linear(x, w[h + "dense.weight"], w[h + "dense.bias"]))
    y = F.layer_norm(y, (d,), w[h + "layer_norm.weight"], w[h + "layer_norm.bias"], EPS)
    logits = F.linear(y, w[h + "weight"]) + w[h + "bias"]
    probs = torch.softmax(logits, dim=-1)
    return probs[1:-1, FIRST_AA : FIRST_AA + 20]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", action="store_true", help="compare with the real sapiens package")
    parser.add_argument("--parental", default=str(PARENTAL), help="HuMAb-25 parental FASTA")
    args = parser.parse_args()

    torch.set_grad_enabled(False)
    weights = {
        "H": load_file(str(WEIGHTS / "sapiens_v1_vh.safetensors")),
        "L": load_file(str(WEIGHTS / "sapiens_v1_vl.safetensors")),
    }
    parental = read_fasta(args.parental)
    out = []
    worst = 0.0
    for name, chain in CHAINS:
        seq = parental[name]
        probs = forward(weights[chain], seq)
        if args.package:
            import sapiens  # noqa: PLC0415 - optional, heavy dependency

            pkg = sapiens.predict_scores(seq, chain)
            assert list(pkg.columns) == list(AMINO_ACIDS), pkg.columns
            diff = (torch.tensor(pkg.values) - probs).abs().max().item()
            worst = max(worst, diff)
            print(f"{name}: max |reference - sapiens package| = {diff:.3g}")
        out.append(
            {
                "name": name,
                "chain": chain,
                "sequence": seq,
                "probs": [[round(v, 6) for v in row] for row in probs.tolist()],
            }
        )
    if args.package:
        print(f"all chains: max difference {worst:.3g}")
    fixture = {
        "source": "tools/sapiens_reference.py (torch reimplementation of sapiens 1.0.0 predict_scores)",
        "columns": AMINO_ACIDS,
        "chains": out,
    }
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(fixture, separators=(",", ":")) + "\n")
    print(f"wrote {FIXTURE.relative_to(ROOT)} ({len(out)} chains)")
    assert all(math.isfinite(v) for c in out for row in c["probs"] for v in row)


if __name__ == "__main__":
    main()
