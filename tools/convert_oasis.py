#!/usr/bin/env python3
"""Convert the OASis 10 % human 9-mer set into veneer's compact binary format.

Source: `OASis_9mers_v1_10perc_subjects.txt.gz` from the PyPI package `promb` 1.0.2
(MIT, Merck): the 9-mers that occur in at least 10 % of the human subjects of the
Observed Antibody Space (BioPhi's "relaxed" OASis threshold), one per line.

Format (all integers little-endian; read by src/engine/humanness.rs, which must be
changed in step with this file):

Each 9-mer is encoded in base 20 over the alphabet ACDEFGHIKLMNPQRSTVWY, first residue
most significant: a value below 20^9 < 2^39. The value is then scrambled by `mix`, a
bijection on 39-bit integers, because antibody peptides cluster (the largest bucket of
the plain encoding holds 18,174 peptides, which would make some lookups scan hundreds
of words); scrambled, buckets hold a handful. The sorted scrambled values are stored
as an Elias-Fano sequence with 16 low bits, which gives exact membership (the
structure is the set itself, not a filter) in ~2.4 bytes per peptide:

  offset  size  field
  0       8     magic b"VNROASIS"
  8       4     format version (1)
  12      4     peptide length (9)
  16      8     peptide count n
  24      4     low bits (16)
  28      4     buckets per sample (64)
  32      8     bucket count = 2^39 / 2^16 (a bucket = one value of `mixed >> 16`)
  40      8     number of u64 words in the bucket bit vector
  48      8     number of u32 samples
  56      32    SHA-256 of the source .txt.gz file
  88      20    the alphabet, b"ACDEFGHIKLMNPQRSTVWY"
  108     4     scramble function id (1 = `mix` below)
  112     16    zero
  128     ...   bucket bit vector: for every bucket in order, one 1-bit per peptide in
                it followed by a 0-bit (bit p is bit p % 64 of word p / 64)
  ...     ...   samples: for every 64th bucket b, the bit position where bucket b
                starts (u32)
  ...     ...   low 16 bits of every scrambled value, in sorted order (u16)

The element rank at the start of bucket b is (start position - b), because exactly b
0-bits precede it. Sections start at 8-byte aligned offsets.

Usage: python3 tools/convert_oasis.py [SOURCE.txt.gz] [OUTPUT.bin]
"""

import gzip
import hashlib
import importlib.util
import os
import struct
import sys

import numpy as np

ALPHABET = b"ACDEFGHIKLMNPQRSTVWY"
PEPTIDE_LEN = 9
LOW_BITS = 16
BUCKETS_PER_SAMPLE = 64
VERSION = 1
MAGIC = b"VNROASIS"
HEADER_LEN = 128
VALUE_BITS = 39
UNIVERSE = 1 << VALUE_BITS
MIX_ID = 1
MASK = UNIVERSE - 1

SOURCE_NAME = "OASis_9mers_v1_10perc_subjects.txt.gz"
DEFAULT_OUTPUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "data", "oasis",
    "oasis_9mers_v1_10perc.bin",
)


def default_source() -> str:
    spec = importlib.util.find_spec("promb")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("promb is not installed: pip install promb==1.0.2, or pass SOURCE")
    return os.path.join(spec.submodule_search_locations[0], "resources", SOURCE_NAME)


def encode_lines(raw: bytes) -> np.ndarray:
    """Base-20 values of every line of `raw` (9 residues + newline each)."""
    width = PEPTIDE_LEN + 1
    if len(raw) % width != 0:
        raise SystemExit(f"source is not a list of {PEPTIDE_LEN}-mers, one per line")
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(-1, width)
    if not np.all(rows[:, PEPTIDE_LEN] == ord("\n")):
        raise SystemExit("source has a line that is not exactly 9 characters")
    codes = np.full(256, 255, dtype=np.uint8)
    codes[np.frombuffer(ALPHABET, dtype=np.uint8)] = np.arange(20, dtype=np.uint8)
    digits = codes[rows[:, :PEPTIDE_LEN]]
    if np.any(digits == 255):
        bad = np.nonzero(np.any(digits == 255, axis=1))[0][0]
        raise SystemExit(f"non-standard residue in line {bad + 1}: {rows[bad, :PEPTIDE_LEN].tobytes()!r}")
    values = np.zeros(len(rows), dtype=np.uint64)
    for i in range(PEPTIDE_LEN):
        values = values * np.uint64(20) + digits[:, i].astype(np.uint64)
    return mix_array(values)


def encode_peptide(peptide: bytes) -> int:
    value = 0
    for residue in peptide:
        value = value * 20 + ALPHABET.index(residue)
    return mix(value)


def mix(x):
    """A bijection on [0, 2^39): xor-shifts and multiplications by odd constants
    modulo 2^39 are each invertible. Works on Python ints and on uint64 arrays
    (whose wrapping multiplication agrees modulo 2^39)."""
    x ^= x >> 20
    x = (x * 0x9E3779B97F4A7C15) & MASK
    x ^= x >> 19
    x = (x * 0xBF58476D1CE4E5B9) & MASK
    x ^= x >> 20
    return x


def mix_array(x: np.ndarray) -> np.ndarray:
    mask = np.uint64(MASK)
    x = x ^ (x >> np.uint64(20))
    x = (x * np.uint64(0x9E3779B97F4A7C15)) & mask
    x = x ^ (x >> np.uint64(19))
    x = (x * np.uint64(0xBF58476D1CE4E5B9)) & mask
    x = x ^ (x >> np.uint64(20))
    return x


def build(values: np.ndarray):
    n = len(values)
    num_buckets = UNIVERSE >> LOW_BITS
    assert num_buckets << LOW_BITS == UNIVERSE
    highs = (values >> np.uint64(LOW_BITS)).astype(np.int64)
    lows = (values & np.uint64((1 << LOW_BITS) - 1)).astype("<u2")

    total_bits = n + num_buckets
    num_words = (total_bits + 63) // 64
    ones = np.arange(n, dtype=np.int64) + highs  # i elements and highs[i] zeros precede
    bits = np.zeros(num_words * 64, dtype=np.uint8)
    bits[ones] = 1
    words = np.packbits(bits, bitorder="little").view("<u8")
    assert len(words) == num_words

    num_samples = (num_buckets + BUCKETS_PER_SAMPLE - 1) // BUCKETS_PER_SAMPLE
    sample_buckets = np.arange(num_samples, dtype=np.int64) * BUCKETS_PER_SAMPLE
    # Start of bucket b = (elements in buckets < b) + b zeros.
    samples = np.searchsorted(highs, sample_buckets, side="left") + sample_buckets
    assert samples[-1] < 2**32
    return num_buckets, words, samples.astype("<u4"), lows


def pad8(blob: bytes) -> bytes:
    return blob + b"\0" * (-len(blob) % 8)


class Reader:
    """The lookup exactly as the Rust code does it, to check the format end to end."""

    def __init__(self, data: bytes):
        (magic, version, k, n, low_bits, per_sample, num_buckets,
         num_words, num_samples) = struct.unpack_from("<8sIIQIIQQQ", data, 0)
        assert magic == MAGIC and version == VERSION and k == PEPTIDE_LEN
        (mix_id,) = struct.unpack_from("<I", data, 108)
        assert mix_id == MIX_ID
        self.n, self.low_bits, self.per_sample = n, low_bits, per_sample
        off = HEADER_LEN
        self.words = np.frombuffer(data, "<u8", num_words, off)
        off += len(pad8(self.words.tobytes()))
        self.samples = np.frombuffer(data, "<u4", num_samples, off)
        off += len(pad8(self.samples.tobytes()))
        self.lows = np.frombuffer(data, "<u2", n, off)
        off += 2 * n
        assert len(pad8(data[:off])) == len(data), "trailing bytes"
        self.bit_count = n + num_buckets

    def bit(self, p: int) -> int:
        return (int(self.words[p >> 6]) >> (p & 63)) & 1

    def contains(self, peptide: bytes) -> bool:
        value = encode_peptide(peptide)
        high, low = value >> self.low_bits, value & ((1 << self.low_bits) - 1)
        p = int(self.samples[high // self.per_sample])
        for _ in range(high % self.per_sample):  # skip to the start of bucket `high`
            while self.bit(p):
                p += 1
            p += 1
        rank = p - high
        while self.bit(p):
            if int(self.lows[rank]) == low:
                return True
            p += 1
            rank += 1
        return False


def main():
    source = sys.argv[1] if len(sys.argv) > 1 else default_source()
    output = sys.argv[2] if len(sys.argv) > 2 else os.path.normpath(DEFAULT_OUTPUT)
    with open(source, "rb") as f:
        compressed = f.read()
    sha256 = hashlib.sha256(compressed).digest()
    raw = gzip.decompress(compressed)
    values = encode_lines(raw)
    n_lines = len(values)
    # Sorts; `mix` is a bijection, so duplicates here are duplicates in the source.
    values = np.unique(values)
    if len(values) != n_lines:
        raise SystemExit(f"source has {n_lines - len(values)} duplicate peptides")
    n = len(values)

    num_buckets, words, samples, lows = build(values)
    header = struct.pack(
        "<8sIIQIIQQQ32s20sI16s", MAGIC, VERSION, PEPTIDE_LEN, n, LOW_BITS,
        BUCKETS_PER_SAMPLE, num_buckets, len(words), len(samples), sha256, ALPHABET,
        MIX_ID, b"\0" * 16,
    )
    assert len(header) == HEADER_LEN
    data = header + pad8(words.tobytes()) + pad8(samples.tobytes()) + pad8(lows.tobytes())

    # Round trip 1: decode the whole structure back to the sorted values.
    reader = Reader(data)
    bits = np.unpackbits(reader.words.view(np.uint8), bitorder="little")[: reader.bit_count]
    one_positions = np.flatnonzero(bits)
    decoded_highs = one_positions - np.arange(len(one_positions))
    decoded = (decoded_highs.astype(np.uint64) << np.uint64(LOW_BITS)) | reader.lows.astype(np.uint64)
    assert len(decoded) == n and np.array_equal(decoded, values), "decode differs from source"
    zero_positions = np.flatnonzero(bits == 0)
    assert len(zero_positions) == num_buckets
    starts = np.concatenate(([0], zero_positions[:-1] + 1))
    assert np.array_equal(starts[:: BUCKETS_PER_SAMPLE], reader.samples), "samples differ"
    largest_bucket = int(np.max(zero_positions - starts))

    # Round trip 2: the query path itself (slow in Python, so on a sample) on source
    # peptides, including the first and last, and on random non-members.
    rng = np.random.default_rng(9)
    peptides = np.frombuffer(raw, dtype=np.uint8).reshape(-1, PEPTIDE_LEN + 1)[:, :PEPTIDE_LEN]
    sample = np.concatenate(([0, n - 1], rng.integers(0, n, 100_000)))
    for row in peptides[sample]:
        if not reader.contains(row.tobytes()):
            raise SystemExit(f"peptide not found after conversion: {row.tobytes()!r}")
    members = set(values.tolist())
    absent = 0
    alphabet = np.frombuffer(ALPHABET, dtype=np.uint8)
    for _ in range(200_000):
        peptide = alphabet[rng.integers(0, 20, PEPTIDE_LEN)].tobytes()
        expected = encode_peptide(peptide) in members
        absent += not expected
        if reader.contains(peptide) != expected:
            raise SystemExit(f"lookup of {peptide!r} gave {not expected}, expected {expected}")

    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "wb") as f:
        f.write(data)
    print(f"source  {source}")
    print(f"sha256  {sha256.hex()}")
    print(f"peptides {n:,} ({len(raw):,} bytes as text, {len(compressed):,} gzipped)")
    print(f"wrote   {output}: {len(data):,} bytes ({len(data) / n:.2f} bytes/peptide)")
    print(f"  bucket bits {len(words) * 8:,} B, samples {len(samples) * 4:,} B, lows {2 * n:,} B")
    print(f"  largest bucket {largest_bucket} peptides")
    print(f"verified: decoding gives back all {n:,} peptides and nothing else; lookups of "
          f"{len(sample):,} source peptides found, {absent:,} random non-members not found")


if __name__ == "__main__":
    main()
