//! Sapiens v1: per-residue amino-acid probabilities from a small antibody language model.
//!
//! Sapiens (Prihoda et al., mAbs 2022; the MIT `sapiens` 1.0.0 package) is a fairseq
//! `roberta_small` masked language model, one per chain kind (VH; VL for kappa and
//! lambda). This module runs its forward pass on the CPU with the package's weights,
//! converted to safetensors and embedded in the binary, and returns what
//! `sapiens.predict_scores` returns. The network, as fairseq 0.10.2 builds it
//! (`RobertaEncoder` → `TransformerSentenceEncoder`, `encoder_normalize_before=True`):
//!
//! - tokens `<s>` residues `</s>` with the vocabulary `<s>=0 <pad>=1 </s>=2 <unk>=3`,
//!   the 20 amino acids A…Y = 4…23, `<mask>=24`;
//! - token embedding + learned positional embedding, no embedding scale; positions
//!   start at `padding_idx + 1 = 2` (fairseq's `make_positions`), so the position table
//!   has `max_positions + 2` rows: 146 for VH (144 tokens, 142 residues) and 130 for VL
//!   (128 tokens, 126 residues) — longer chains make the package raise "too long";
//! - `emb_layer_norm` on the sum (RoBERTa's embedding LayerNorm), then four post-LN
//!   layers: `x = LN(x + attn(x))`, `x = LN(x + fc2(gelu(fc1 x)))`, 8 heads of 16, the
//!   query scaled by 16^-0.5 after its bias, erf GELU, LayerNorm eps 1e-5;
//! - LM head `dense → gelu → LayerNorm → embed_tokensᵀ + bias` (weights tied);
//! - softmax over all 25 tokens; the `<s>` and `</s>` rows and the special-token
//!   columns are dropped, the 20 amino-acid columns are *not* renormalised.
//!
//! Plain f32 Rust, one thread: about 4 ms for a 120-residue chain (candle-core took
//! about 8 ms; see ARCHITECTURE.md). Every matrix product goes through one blocked
//! kernel (`matmul`), compiled twice — for AVX, chosen at run time, and for baseline
//! x86-64 — that accumulates each output over the inner dimension in order with a
//! multiply then an add (no FMA, no reassociation). Both builds therefore give
//! bit-identical probabilities, and so does any machine: the result never depends on
//! where it was computed. The elementwise parts (exp, erf, sums) are branch-free
//! polynomials and fixed-order lane sums for the same reason.

use std::sync::OnceLock;

use safetensors::{Dtype, SafeTensors};

use super::chain::AMINO_ACIDS;

const EMBED: usize = 128;
const FFN: usize = 256;
const HEADS: usize = 8;
const HEAD_DIM: usize = EMBED / HEADS;
const LAYERS: usize = 4;
const VOCAB: usize = 25;
/// The LM head's 25 outputs, padded to a whole number of kernel column blocks.
const VOCAB_PADDED: usize = 32;
const BOS: usize = 0;
const PAD: usize = 1;
const EOS: usize = 2;
const FIRST_AMINO_ACID: usize = 4;
const LAYER_NORM_EPS: f32 = 1e-5;

/// Rows and columns of one register block of the matrix kernel.
const BLOCK_ROWS: usize = 4; // `matmul` names its four row accumulators
const BLOCK_COLS: usize = 16;

static VH_WEIGHTS: &[u8] = include_bytes!("../../data/sapiens/sapiens_v1_vh.safetensors");
static VL_WEIGHTS: &[u8] = include_bytes!("../../data/sapiens/sapiens_v1_vl.safetensors");

/// Why a sequence cannot be scored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SapiensError {
    #[error(
        "sequence has {length} residues, the Sapiens {model} model takes at most {max}; \
         pass only the variable domain"
    )]
    TooLong {
        model: &'static str,
        length: usize,
        max: usize,
    },
    #[error(
        "residue {position} is '{residue}', Sapiens accepts only the 20 standard amino acids \
         (upper case)"
    )]
    InvalidResidue { position: usize, residue: char },
}

/// One Sapiens v1 model (VH, or VL for kappa and lambda chains).
pub struct SapiensModel {
    name: &'static str,
    embed_tokens: Vec<f32>,
    embed_positions: Vec<f32>,
    embed_norm: LayerNorm,
    layers: Vec<EncoderLayer>,
    head_dense: Linear,
    head_norm: LayerNorm,
    head_output: Linear,
}

impl SapiensModel {
    /// The heavy-chain model.
    pub fn vh() -> &'static SapiensModel {
        static MODEL: OnceLock<SapiensModel> = OnceLock::new();
        MODEL.get_or_init(|| embedded("VH", VH_WEIGHTS))
    }

    /// The light-chain model (kappa and lambda).
    pub fn vl() -> &'static SapiensModel {
        static MODEL: OnceLock<SapiensModel> = OnceLock::new();
        MODEL.get_or_init(|| embedded("VL", VL_WEIGHTS))
    }

    /// The longest chain this model scores: its position table less the two
    /// offset rows and the `<s>`/`</s>` tokens.
    pub fn max_residues(&self) -> usize {
        self.embed_positions.len() / EMBED - (PAD + 1) - 2
    }

    /// Per-residue probabilities of the 20 amino acids, in `AMINO_ACIDS` (A…Y) order,
    /// exactly as `sapiens.predict_scores` returns them: a softmax over the whole
    /// vocabulary, so a row sums to slightly less than one.
    pub fn predict(&self, residues: &[u8]) -> Result<Vec<[f32; 20]>, SapiensError> {
        if residues.len() > self.max_residues() {
            return Err(SapiensError::TooLong {
                model: self.name,
                length: residues.len(),
                max: self.max_residues(),
            });
        }
        let mut tokens = Vec::with_capacity(residues.len() + 2);
        tokens.push(BOS);
        for (position, &residue) in residues.iter().enumerate() {
            match AMINO_ACIDS.iter().position(|&aa| aa == residue) {
                Some(index) => tokens.push(FIRST_AMINO_ACID + index),
                None => {
                    return Err(SapiensError::InvalidResidue {
                        position,
                        residue: char::from(residue),
                    });
                }
            }
        }
        tokens.push(EOS);
        Ok(self.forward(&tokens))
    }

    /// The forward pass, with its elementwise work (softmax, GELU, LayerNorm, residual adds)
    /// compiled for 256-bit vectors where the CPU has them. Every one of those operations is
    /// per element or sums in a fixed order (`sum`), so the result is bit-identical to the
    /// portable build's (tested).
    fn forward(&self, tokens: &[usize]) -> Vec<[f32; 20]> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU supports AVX, checked just above.
            return unsafe { self.forward_avx(tokens) };
        }
        self.forward_body(tokens)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    fn forward_avx(&self, tokens: &[usize]) -> Vec<[f32; 20]> {
        self.forward_body(tokens)
    }

    #[inline(always)]
    fn forward_body(&self, tokens: &[usize]) -> Vec<[f32; 20]> {
        let n = tokens.len();
        // The kernel works on blocks of rows: the padding rows are computed and dropped,
        // and the attention never looks at them (see `EncoderLayer::forward`).
        let mut work = Workspace::new(n);

        for (i, &token) in tokens.iter().enumerate() {
            let x = &mut work.x[i * EMBED..(i + 1) * EMBED];
            let embedding = &self.embed_tokens[token * EMBED..(token + 1) * EMBED];
            let position = i + PAD + 1;
            let position = &self.embed_positions[position * EMBED..(position + 1) * EMBED];
            for ((x, &e), &p) in x.iter_mut().zip(embedding).zip(position) {
                *x = e + p;
            }
        }
        self.embed_norm.apply(&mut work.x[..n * EMBED]);

        for layer in &self.layers {
            layer.forward(n, &mut work);
        }

        // LM head on the residue rows only: `<s>` and `</s>` are dropped anyway.
        let residues = n - 2;
        let mut hidden = vec![0.0; residues.div_ceil(BLOCK_ROWS) * BLOCK_ROWS * EMBED];
        hidden[..residues * EMBED].copy_from_slice(&work.x[EMBED..(residues + 1) * EMBED]);
        let mut dense = vec![0.0; hidden.len()];
        self.head_dense.apply(&hidden, &mut dense);
        dense.iter_mut().for_each(|v| *v = gelu(*v));
        self.head_norm.apply(&mut dense[..residues * EMBED]);
        let mut logits = vec![0.0; hidden.len() / EMBED * VOCAB_PADDED];
        self.head_output.apply(&dense, &mut logits);

        logits
            .chunks_exact(VOCAB_PADDED)
            .take(residues)
            .map(|row| {
                let row = &row[..VOCAB];
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut exps = [0.0f32; VOCAB];
                for (e, &v) in exps.iter_mut().zip(row) {
                    *e = exp(v - max);
                }
                let sum: f32 = exps.iter().sum();
                let mut probabilities = [0.0f32; 20];
                for (p, &e) in probabilities
                    .iter_mut()
                    .zip(&exps[FIRST_AMINO_ACID..FIRST_AMINO_ACID + 20])
                {
                    *p = e / sum;
                }
                probabilities
            })
            .collect()
    }
}

/// Activations of one forward pass, `rows × width` row-major.
struct Workspace {
    x: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attention: Vec<f32>,
    projected: Vec<f32>,
    ffn: Vec<f32>,
    /// One head's queries (`rows × HEAD_DIM`), keys transposed (`HEAD_DIM × keys`),
    /// values (`keys × HEAD_DIM`), scores (`rows × keys`) and output.
    head_q: Vec<f32>,
    head_k_t: Vec<f32>,
    head_v: Vec<f32>,
    scores: Vec<f32>,
    head_out: Vec<f32>,
}

impl Workspace {
    fn new(tokens: usize) -> Workspace {
        let rows = tokens.div_ceil(BLOCK_ROWS) * BLOCK_ROWS;
        let keys = tokens.div_ceil(BLOCK_COLS) * BLOCK_COLS;
        let activations = vec![0.0; rows * EMBED];
        Workspace {
            x: activations.clone(),
            q: activations.clone(),
            k: activations.clone(),
            v: activations.clone(),
            attention: activations.clone(),
            projected: activations,
            ffn: vec![0.0; rows * FFN],
            head_q: vec![0.0; rows * HEAD_DIM],
            head_k_t: vec![0.0; HEAD_DIM * keys],
            head_v: vec![0.0; keys * HEAD_DIM],
            scores: vec![0.0; rows * keys],
            head_out: vec![0.0; rows * HEAD_DIM],
        }
    }
}

struct EncoderLayer {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    attention_norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    final_norm: LayerNorm,
}

impl EncoderLayer {
    /// One post-LayerNorm encoder layer over the first `n` rows of `work.x`.
    #[inline(always)]
    fn forward(&self, n: usize, work: &mut Workspace) {
        self.q_proj.apply(&work.x, &mut work.q);
        self.k_proj.apply(&work.x, &mut work.k);
        self.v_proj.apply(&work.x, &mut work.v);

        // Per head: scores = Q Kᵀ, softmax over the real keys, then P V — both with the
        // same blocked kernel as the linear layers. Keys and values are padded with
        // zeros to `keys` (a multiple of BLOCK_COLS); padded keys get probability 0.
        let rows = work.x.len() / EMBED;
        let keys = n.div_ceil(BLOCK_COLS) * BLOCK_COLS;
        for head in 0..HEADS {
            for (row, q) in work.q.chunks_exact(EMBED).enumerate() {
                work.head_q[row * HEAD_DIM..(row + 1) * HEAD_DIM]
                    .copy_from_slice(&q.as_chunks::<HEAD_DIM>().0[head]);
            }
            for (j, (k, v)) in work
                .k
                .chunks_exact(EMBED)
                .zip(work.v.chunks_exact(EMBED))
                .take(n)
                .enumerate()
            {
                for (d, &value) in k.as_chunks::<HEAD_DIM>().0[head].iter().enumerate() {
                    work.head_k_t[d * keys + j] = value;
                }
                work.head_v[j * HEAD_DIM..(j + 1) * HEAD_DIM]
                    .copy_from_slice(&v.as_chunks::<HEAD_DIM>().0[head]);
            }
            let scores = &mut work.scores[..rows * keys];
            // The query was scaled by HEAD_DIM^-0.5 in q_proj (see `load`).
            matmul(
                &work.head_q,
                HEAD_DIM,
                &work.head_k_t[..HEAD_DIM * keys],
                keys,
                None,
                scores,
            );
            for (i, row) in scores.chunks_exact_mut(keys).enumerate() {
                if i < n {
                    softmax(&mut row[..n]);
                    row[n..].fill(0.0);
                } else {
                    row.fill(0.0);
                }
            }
            matmul(
                scores,
                keys,
                &work.head_v[..keys * HEAD_DIM],
                HEAD_DIM,
                None,
                &mut work.head_out,
            );
            for (out, attention) in work
                .head_out
                .chunks_exact(HEAD_DIM)
                .zip(work.attention.chunks_exact_mut(EMBED))
            {
                attention.as_chunks_mut::<HEAD_DIM>().0[head].copy_from_slice(out);
            }
        }

        self.out_proj.apply(&work.attention, &mut work.projected);
        add_assign(&mut work.x[..n * EMBED], &work.projected[..n * EMBED]);
        self.attention_norm.apply(&mut work.x[..n * EMBED]);

        self.fc1.apply(&work.x, &mut work.ffn);
        work.ffn[..n * FFN].iter_mut().for_each(|v| *v = gelu(*v));
        self.fc2.apply(&work.ffn, &mut work.projected);
        add_assign(&mut work.x[..n * EMBED], &work.projected[..n * EMBED]);
        self.final_norm.apply(&mut work.x[..n * EMBED]);
    }
}

/// A fully connected layer, its weight stored transposed (`inputs × outputs`) so the
/// kernel reads it row by row.
struct Linear {
    weight_t: Vec<f32>,
    bias: Vec<f32>,
    outputs: usize,
}

impl Linear {
    /// From a PyTorch `[outputs, inputs]` weight, with the outputs padded with zeros to
    /// `padded_outputs`.
    fn new(weight: &[f32], bias: &[f32], inputs: usize, padded_outputs: usize) -> Linear {
        let outputs = bias.len();
        let mut weight_t = vec![0.0; inputs * padded_outputs];
        for (o, row) in weight.chunks_exact(inputs).enumerate() {
            for (i, &w) in row.iter().enumerate() {
                weight_t[i * padded_outputs + o] = w;
            }
        }
        let mut padded_bias = vec![0.0; padded_outputs];
        padded_bias[..outputs].copy_from_slice(bias);
        Linear {
            weight_t,
            bias: padded_bias,
            outputs: padded_outputs,
        }
    }

    /// `out = x Wᵀ + b` for all rows of `x` (a multiple of `BLOCK_ROWS` rows).
    fn apply(&self, x: &[f32], out: &mut [f32]) {
        let inputs = self.weight_t.len() / self.outputs;
        matmul(
            x,
            inputs,
            &self.weight_t,
            self.outputs,
            Some(&self.bias),
            out,
        );
    }
}

/// `acc += a b`, element by element (a multiply then an add: no FMA, so every CPU
/// rounds the same way).
#[inline(always)]
fn multiply_add(acc: &mut [f32; BLOCK_COLS], a: f32, b: &[f32; BLOCK_COLS]) {
    for (acc, &b) in acc.iter_mut().zip(b) {
        *acc += a * b;
    }
}

/// `out = a b (+ bias)`: `a` is `rows × inner` with `rows` a multiple of `BLOCK_ROWS`,
/// `b` is `inner × columns` with `columns` a multiple of `BLOCK_COLS`. Each output is
/// a sum over `inner` in order, kept in registers for a `BLOCK_ROWS × BLOCK_COLS`
/// block while `b` streams through once per block of rows.
fn matmul(
    a: &[f32],
    inner: usize,
    b: &[f32],
    columns: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU supports AVX, checked just above.
        return unsafe { matmul_avx(a, inner, b, columns, bias, out) };
    }
    matmul_kernel(a, inner, b, columns, bias, out);
}

/// The kernel compiled for 256-bit vectors. Kept out of line and small, so that the
/// compiler reliably vectorises it; it computes the same sums in the same order, so
/// the results are bit-identical to the portable build's.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn matmul_avx(
    a: &[f32],
    inner: usize,
    b: &[f32],
    columns: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    matmul_kernel(a, inner, b, columns, bias, out);
}

#[inline(always)]
fn matmul_kernel(
    a: &[f32],
    inner: usize,
    b: &[f32],
    columns: usize,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    for (a_block, out_block) in a
        .chunks_exact(BLOCK_ROWS * inner)
        .zip(out.chunks_exact_mut(BLOCK_ROWS * columns))
    {
        let a_rows: [&[f32]; BLOCK_ROWS] =
            std::array::from_fn(|r| &a_block[r * inner..(r + 1) * inner]);
        for block in 0..columns / BLOCK_COLS {
            // One accumulator per row, each a fixed-size array, so that the compiler
            // keeps them in vector registers.
            let [mut acc0, mut acc1, mut acc2, mut acc3] = [[0.0f32; BLOCK_COLS]; BLOCK_ROWS];
            for (k, b_row) in b.chunks_exact(columns).enumerate() {
                let b_block: &[f32; BLOCK_COLS] = &b_row.as_chunks().0[block];
                multiply_add(&mut acc0, a_rows[0][k], b_block);
                multiply_add(&mut acc1, a_rows[1][k], b_block);
                multiply_add(&mut acc2, a_rows[2][k], b_block);
                multiply_add(&mut acc3, a_rows[3][k], b_block);
            }
            let acc = [acc0, acc1, acc2, acc3];
            for (r, acc_row) in acc.iter().enumerate() {
                let out_row: &mut [f32; BLOCK_COLS] =
                    &mut out_block[r * columns..(r + 1) * columns].as_chunks_mut().0[block];
                match bias {
                    Some(bias) => {
                        let bias: &[f32; BLOCK_COLS] = &bias.as_chunks().0[block];
                        for c in 0..BLOCK_COLS {
                            out_row[c] = acc_row[c] + bias[c];
                        }
                    }
                    None => *out_row = *acc_row,
                }
            }
        }
    }
}

struct LayerNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl LayerNorm {
    /// Normalises every `EMBED`-wide row of `x` in place.
    #[inline(always)]
    fn apply(&self, x: &mut [f32]) {
        for row in x.chunks_exact_mut(EMBED) {
            let mean = sum(row) / EMBED as f32;
            let mut squares = [0.0f32; EMBED];
            for (s, &v) in squares.iter_mut().zip(row.iter()) {
                *s = (v - mean) * (v - mean);
            }
            let variance = sum(&squares) / EMBED as f32;
            let scale = 1.0 / (variance + LAYER_NORM_EPS).sqrt();
            for ((v, &w), &b) in row.iter_mut().zip(&self.weight).zip(&self.bias) {
                *v = (*v - mean) * scale * w + b;
            }
        }
    }
}

#[inline(always)]
fn add_assign(x: &mut [f32], y: &[f32]) {
    for (x, &y) in x.iter_mut().zip(y) {
        *x += y;
    }
}

/// Softmax of a row of attention scores, in place.
#[inline(always)]
fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    x.iter_mut().for_each(|v| *v = exp(*v - max));
    let inverse = 1.0 / sum(x);
    x.iter_mut().for_each(|v| *v *= inverse);
}

/// A sum in eight interleaved lanes: vectorisable, yet in one fixed order whatever the
/// vector width.
#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (chunks, rest) = x.as_chunks::<8>();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    for (lane, &v) in lanes.iter_mut().zip(rest) {
        *lane += v;
    }
    ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6]))
        + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]))
}

/// `e^x` for `x <= 0` (softmax inputs less their maximum), within 1 ulp of libm's
/// `expf` (checked in the tests): Cephes' `expf` polynomial after a round-to-nearest range reduction
/// that needs no `floor`, so the loops that call it vectorise on any x86-64 (a scalar
/// libm `expf` took a third of the run time).
#[inline(always)]
fn exp(x: f32) -> f32 {
    // Below ln(2^-126) the result would be subnormal; it is negligible in a softmax sum.
    let x = x.max(-87.336_55);
    // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let exponent = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    // ln 2 split in two so that `n * LN2_HI` is exact.
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let e = p * (r * r) + r + 1.0;
    e * f32::from_bits(((exponent + 127) << 23) as u32)
}

/// fairseq's `gelu`: the exact, erf-based form.
#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf as a rational function of x², clamped to ±4 where f32 erf is ±1: the
/// approximation Eigen and XLA use, within 5e-7 of libm's `erff` (checked in the
/// tests) — below the f32 rounding of the activations it feeds. Branch-free, so the
/// GELU loops vectorise.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 + -2.101_024e-6;
    p = p * x2 + -5.692_506_4e-5;
    p = p * x2 + -7.349_906_3e-4;
    p = p * x2 + -2.954_600_1e-3;
    p = p * x2 + -1.609_603_3e-2;
    let mut q = -1.456_607_2e-5;
    q = q * x2 + -2.133_740_6e-4;
    q = q * x2 + -1.682_827e-3;
    q = q * x2 + -7.373_329e-3;
    q = q * x2 + -1.426_474e-2;
    x * p / q
}

fn embedded(name: &'static str, bytes: &[u8]) -> SapiensModel {
    // The weights are compiled in; the unit tests load both, so this cannot fail in a
    // tested build.
    load(name, bytes)
        .unwrap_or_else(|e| panic!("embedded Sapiens {name} weights are unreadable: {e}"))
}

fn load(name: &'static str, bytes: &[u8]) -> Result<SapiensModel, String> {
    let tensors = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let tensor = |key: &str, shape: &[usize]| -> Result<Vec<f32>, String> {
        let view = tensors.tensor(key).map_err(|e| format!("{key}: {e}"))?;
        if view.dtype() != Dtype::F32 || view.shape() != shape {
            return Err(format!(
                "{key}: expected F32 {shape:?}, found {:?} {:?}",
                view.dtype(),
                view.shape()
            ));
        }
        Ok(view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    };
    let encoder = "decoder.sentence_encoder";
    let linear = |key: &str, outputs: usize, inputs: usize| -> Result<Linear, String> {
        let weight = tensor(&format!("{key}.weight"), &[outputs, inputs])?;
        let bias = tensor(&format!("{key}.bias"), &[outputs])?;
        Ok(Linear::new(&weight, &bias, inputs, outputs))
    };
    let layer_norm = |key: &str| -> Result<LayerNorm, String> {
        Ok(LayerNorm {
            weight: tensor(&format!("{key}.weight"), &[EMBED])?,
            bias: tensor(&format!("{key}.bias"), &[EMBED])?,
        })
    };

    let position_rows = tensors
        .tensor(&format!("{encoder}.embed_positions.weight"))
        .map_err(|e| e.to_string())?
        .shape()
        .first()
        .copied()
        .unwrap_or(0);
    if position_rows < PAD + 1 + 2 {
        return Err(format!("position table has only {position_rows} rows"));
    }
    let embed_tokens = tensor(&format!("{encoder}.embed_tokens.weight"), &[VOCAB, EMBED])?;

    let mut layers = Vec::with_capacity(LAYERS);
    for i in 0..LAYERS {
        let key = format!("{encoder}.layers.{i}");
        let mut q_proj = linear(&format!("{key}.self_attn.q_proj"), EMBED, EMBED)?;
        // fairseq scales the projected query (bias included) by head_dim^-0.5 = 1/4, a
        // power of two: folding it into the weights gives bit-identical products.
        let scaling = 1.0 / (HEAD_DIM as f32).sqrt();
        q_proj.weight_t.iter_mut().for_each(|w| *w *= scaling);
        q_proj.bias.iter_mut().for_each(|b| *b *= scaling);
        layers.push(EncoderLayer {
            q_proj,
            k_proj: linear(&format!("{key}.self_attn.k_proj"), EMBED, EMBED)?,
            v_proj: linear(&format!("{key}.self_attn.v_proj"), EMBED, EMBED)?,
            out_proj: linear(&format!("{key}.self_attn.out_proj"), EMBED, EMBED)?,
            attention_norm: layer_norm(&format!("{key}.self_attn_layer_norm"))?,
            fc1: linear(&format!("{key}.fc1"), FFN, EMBED)?,
            fc2: linear(&format!("{key}.fc2"), EMBED, FFN)?,
            final_norm: layer_norm(&format!("{key}.final_layer_norm"))?,
        });
    }

    // RobertaLMHead ties its output projection to embed_tokens; the checkpoint stores
    // the tied copy as `lm_head.weight`.
    let output_weight = tensor("decoder.lm_head.weight", &[VOCAB, EMBED])?;
    let output_bias = tensor("decoder.lm_head.bias", &[VOCAB])?;
    Ok(SapiensModel {
        name,
        embed_tokens,
        embed_positions: tensor(
            &format!("{encoder}.embed_positions.weight"),
            &[position_rows, EMBED],
        )?,
        embed_norm: layer_norm(&format!("{encoder}.emb_layer_norm"))?,
        layers,
        head_dense: linear("decoder.lm_head.dense", EMBED, EMBED)?,
        head_norm: layer_norm("decoder.lm_head.layer_norm")?,
        head_output: Linear::new(&output_weight, &output_bias, EMBED, VOCAB_PADDED),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Reference {
        columns: String,
        chains: Vec<ReferenceChain>,
    }

    #[derive(serde::Deserialize)]
    struct ReferenceChain {
        name: String,
        chain: String,
        sequence: String,
        probs: Vec<Vec<f32>>,
    }

    fn first_max(row: &[f32]) -> Option<usize> {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        row.iter().position(|&p| p == max)
    }

    fn reference() -> Reference {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/sapiens_reference_probs.json"
        );
        let text = std::fs::read_to_string(path).expect("reference fixture is present");
        serde_json::from_str(&text).expect("reference fixture is valid JSON")
    }

    #[test]
    fn probabilities_match_the_torch_reference() {
        let reference = reference();
        assert_eq!(reference.columns.as_bytes(), AMINO_ACIDS);
        assert_eq!(reference.chains.len(), 4);
        for chain in &reference.chains {
            let model = match chain.chain.as_str() {
                "H" => SapiensModel::vh(),
                _ => SapiensModel::vl(),
            };
            let probabilities = model.predict(chain.sequence.as_bytes()).unwrap();
            assert_eq!(probabilities.len(), chain.probs.len(), "{}", chain.name);
            let mut worst = 0.0f32;
            for (ours, theirs) in probabilities.iter().zip(&chain.probs) {
                assert_eq!(theirs.len(), 20);
                for (a, b) in ours.iter().zip(theirs) {
                    worst = worst.max((a - b).abs());
                }
                // The humanizer takes the first maximal column: it must agree too.
                assert_eq!(first_max(ours), first_max(theirs), "{}", chain.name);
            }
            assert!(worst < 1e-4, "{}: max difference {worst}", chain.name);
        }
    }

    #[test]
    fn one_row_per_residue_summing_to_less_than_one() {
        let sequence = b"EVQLVESGGGLVQPGGSLRLSCAASGFTFSSYAMSWVRQAPGKGLEWVS";
        let probabilities = SapiensModel::vh().predict(sequence).unwrap();
        assert_eq!(probabilities.len(), sequence.len());
        for row in &probabilities {
            let sum: f32 = row.iter().sum();
            assert!(row.iter().all(|p| p.is_finite() && *p >= 0.0));
            // The special tokens keep a little mass: no renormalisation over the 20.
            assert!(sum > 0.5 && sum < 1.0, "row sums to {sum}");
        }
        assert!(SapiensModel::vl().predict(b"").unwrap().is_empty());
    }

    #[test]
    fn the_models_take_their_trained_lengths() {
        assert_eq!(SapiensModel::vh().max_residues(), 142);
        assert_eq!(SapiensModel::vl().max_residues(), 126);
        assert_eq!(SapiensModel::vh().predict(&[b'A'; 142]).unwrap().len(), 142);
        assert_eq!(SapiensModel::vl().predict(&[b'A'; 126]).unwrap().len(), 126);
        assert_eq!(
            SapiensModel::vh().predict(&[b'A'; 143]),
            Err(SapiensError::TooLong {
                model: "VH",
                length: 143,
                max: 142
            })
        );
        assert_eq!(
            SapiensModel::vl().predict(&[b'A'; 127]),
            Err(SapiensError::TooLong {
                model: "VL",
                length: 127,
                max: 126
            })
        );
    }

    #[test]
    fn non_standard_letters_are_rejected() {
        for (sequence, position, residue) in [
            (&b"EVQLXESGG"[..], 4, 'X'),
            (b"EVQLVESGGB", 9, 'B'),
            (b"evqlvesgg", 0, 'e'),
            (b"EVQL*", 4, '*'),
        ] {
            assert_eq!(
                SapiensModel::vh().predict(sequence),
                Err(SapiensError::InvalidResidue { position, residue })
            );
        }
    }

    #[test]
    fn exp_and_erf_match_libm() {
        let mut worst_exp = 0.0f32;
        let mut worst_erf = 0.0f32;
        for i in 0..=200_000 {
            let x = -87.0 + 87.0 * i as f32 / 200_000.0;
            let (ours, libm) = (exp(x), libm::expf(x));
            worst_exp = worst_exp.max((ours - libm).abs() / libm);
            let x = -6.0 + 12.0 * i as f32 / 200_000.0;
            worst_erf = worst_erf.max((erf(x) - libm::erff(x)).abs());
        }
        assert!(
            worst_exp < 3.0 * f32::EPSILON,
            "exp relative error {worst_exp}"
        );
        assert!(
            worst_erf < 4.0 * f32::EPSILON,
            "erf absolute error {worst_erf}"
        );
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-200.0) >= 0.0 && exp(-200.0) < 1e-37);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx_kernel_equals_the_portable_one_bit_for_bit() {
        if !std::arch::is_x86_feature_detected!("avx") {
            return;
        }
        let (rows, inner, columns) = (8, 40, 32);
        // A fixed pseudo-random fill (a linear congruential generator).
        let mut state = 12345u32;
        let mut next = || {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1 << 24) as f32 - 0.5
        };
        let a: Vec<f32> = (0..rows * inner).map(|_| next()).collect();
        let b: Vec<f32> = (0..inner * columns).map(|_| next()).collect();
        let bias: Vec<f32> = (0..columns).map(|_| next()).collect();
        let mut portable = vec![0.0; rows * columns];
        let mut avx = vec![0.0; rows * columns];
        matmul_kernel(&a, inner, &b, columns, Some(&bias), &mut portable);
        // SAFETY: AVX support checked above.
        unsafe { matmul_avx(&a, inner, &b, columns, Some(&bias), &mut avx) };
        assert!(
            portable
                .iter()
                .zip(&avx)
                .all(|(p, a)| p.to_bits() == a.to_bits())
        );
        // And both equal the plain triple loop.
        for r in 0..rows {
            for c in 0..columns {
                let mut expected = 0.0f32;
                for k in 0..inner {
                    expected += a[r * inner + k] * b[k * columns + c];
                }
                expected += bias[c];
                assert_eq!(portable[r * columns + c].to_bits(), expected.to_bits());
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx_forward_pass_equals_the_portable_one_bit_for_bit() {
        if !std::arch::is_x86_feature_detected!("avx") {
            return;
        }
        let model = SapiensModel::vh();
        let vh = b"EVKLLESGGGLVQPGGSMRLSCAGSGFTFTDFYMNWIRQPAGKAPEWLGFIRDKAKGYTTEYNPSVKGRFTISRDNTQNMLYLQMNTLRAEDTATYYCAREGHTAAPFDYWGQGVMVTVSS";
        let tokens: Vec<usize> = std::iter::once(BOS)
            .chain(vh.iter().map(|&r| {
                FIRST_AMINO_ACID
                    + AMINO_ACIDS
                        .iter()
                        .position(|&aa| aa == r)
                        .expect("a residue")
            }))
            .chain(std::iter::once(EOS))
            .collect();
        let portable = model.forward_body(&tokens);
        // SAFETY: AVX support checked above.
        let avx = unsafe { model.forward_avx(&tokens) };
        assert_eq!(portable.len(), avx.len());
        for (p, a) in portable.iter().zip(&avx) {
            assert!(p.iter().zip(a).all(|(p, a)| p.to_bits() == a.to_bits()));
        }
    }

    #[test]
    fn corrupt_weights_are_reported() {
        assert!(load("VH", b"not a safetensors file").is_err());
        assert!(load("VH", &VH_WEIGHTS[..VH_WEIGHTS.len() / 2]).is_err());
    }
}
