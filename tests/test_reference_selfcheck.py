#!/usr/bin/python3
"""Self-check of the independent Qwen3-ASR reference (scripts/qasr_reference.py).

Usage:
    /usr/bin/python3 tests/test_reference_selfcheck.py [-v] [--keep DIR]

Checks the reference against facts stated in the specification (MODEL.md)
and against independent re-computations: audio-token formula vs the spec table (5.5),
encoder windows (5.6), the mel frontend (zero signal -> -1.5, filterbank properties, a naive
DFT re-computation), prompt ids of the real tokenizer (7.2-7.4), RoPE/GELU/bf16 facts, the
fixture's files (and the aligner's, with its Korean word list) against the published sha256s,
the aligner's word splitter and repair on the aligner spec's worked examples, the non-weight files of synthetic 0.6B, 1.7B
and tiny checkpoints against the published bytes (copies where nothing depends on the size or
the ids; otherwise only those lines differ), the demo model's files against what its export
writes, and a round trip through a tiny synthetic checkpoint made by
scripts/make_synthetic_model.py (file layout, dump shapes, conv stem vs a naive convolution,
logits vs the final norm of the last layer, tied-head fallback, sharded loading, KV cache vs a
cache-free forward pass).
Exit code 0 if every check passes, 1 otherwise; the last line is a summary.
Needs only numpy, regex and the standard library; runs in well under a minute.
"""

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import wave

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "scripts")
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "qwen3-asr-0.6b")
sys.path.insert(0, SCRIPTS)
sys.dont_write_bytecode = True          # keep scripts/ free of __pycache__

import qasr_reference as ref            # noqa: E402
import make_synthetic_model as msm      # noqa: E402

PY = "/usr/bin/python3"
CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def ceil_div(a, b):
    return (a + b - 1) // b


def write_wav(path, x, sr=16000, channels=1, width=2):
    data = np.clip(np.asarray(x, dtype=np.float64), -1, 1)
    pcm = (data * 32767).astype("<i2")
    if channels > 1:
        pcm = np.repeat(pcm[:, None], channels, axis=1).ravel()
    with wave.open(path, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes() if width == 2 else ((pcm >> 8) + 128).astype(np.uint8).tobytes())


def make_signal(n, seed=1):
    t = np.arange(n) / 16000.0
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 1.3 * t)
            + 0.1 * np.sin(2 * np.pi * 1800 * t + 3 * np.sin(2 * np.pi * 4 * t))
            + 0.02 * rng.standard_normal(n))


# ========================================================================================
# pure spec facts

@check
def audio_token_count_table():
    table = {100: 13, 500: 65, 800: 104, 1000: 130, 1100: 143, 1101: 144, 3000: 390,
             6000: 780, 120000: 15600, 99: 13, 101: 14, 109: 15}
    for T in range(1, 9):
        table[T] = 1
    for T in range(9, 17):
        table[T] = 2
    for T, A in table.items():
        assert ref.audio_token_count(T) == A, (T, ref.audio_token_count(T), A)
    # closed form and the conv-geometry count for every T up to 20000
    L = ref.conv_out_len
    for T in range(1, 20001):
        closed = 13 * (T // 100) + ceil_div(T % 100, 8)
        geo = sum(L(L(L(c))) for c in ref.encoder_chunks(T, 50))
        assert ref.audio_token_count(T) == closed == geo, (T, closed, geo)
    # 11 s jfk example: 176017 samples -> T = 1100
    assert 176017 // 160 == 1100


@check
def encoder_windows():
    cases = {1100: [104, 39], 1000: [104, 26], 100: [13], 800: [104], 500: [65],
             3000: [104, 104, 104, 78], 6000: [104] * 7 + [52], 120000: [104] * 150,
             50: [7], 99: [13], 1: [1]}
    for T, w in cases.items():
        A = ref.audio_token_count(T)
        got = ref.encoder_windows(T, A, 50, 800)
        assert got == w, (T, got, w)
        assert sum(got) == A


@check
def mel_zero_signal():
    for n in (201, 16000, 16159, 16160, 23456):
        m = ref.log_mel(np.zeros(n, dtype=np.float32))
        assert m.shape == (128, n // 160), (n, m.shape)
        assert m.dtype == np.float32
        assert np.all(m == np.float32(-1.5)), (n, m.min(), m.max())
    try:
        ref.log_mel(np.zeros(200, dtype=np.float32))
    except SystemExit:
        pass
    else:
        raise AssertionError("N = 200 samples must be refused (reflect padding needs 201)")


@check
def mel_filterbank_properties():
    W = ref.mel_filterbank()
    assert W.shape == (201, 128) and W.dtype == np.float32
    assert abs(float(ref.hz_to_mel(8000.0)) - 45.245640471924965) < 1e-12
    assert abs(float(ref.hz_to_mel(1000.0)) - 15.0) < 1e-12
    assert abs(float(ref.hz_to_mel(500.0)) - 7.5) < 1e-12
    f = np.array([0.0, 100.0, 999.0, 1000.0, 1234.5, 7999.0, 8000.0])
    assert np.allclose(ref.mel_to_hz(ref.hz_to_mel(f)), f, rtol=1e-12, atol=1e-9)
    edges = ref.mel_to_hz(np.linspace(0.0, 45.245640471924965, 130))
    c = np.arange(201) * 40.0
    assert np.all(W >= 0)
    for j in range(128):
        col = W[:, j].astype(np.float64)
        nz = np.nonzero(col)[0]
        assert nz.size > 0, "empty filter %d" % j
        # support strictly inside (f_j, f_{j+2})
        # (the float64 edge f_129 lands a hair above 8000 Hz, so the last filter keeps a
        # ~1e-17 weight at bin 200; allow that rounding at the support ends)
        big = nz[col[nz] > 1e-12]
        assert np.all(c[big] > edges[j]) and np.all(c[big] < edges[j + 2]), j
        assert np.all(c[nz] > edges[j] - 1e-6) and np.all(c[nz] < edges[j + 2] + 1e-6), j
        # height bounded by the Slaney normalisation 2 / (f_{j+2} - f_j)
        assert col.max() <= 2.0 / (edges[j + 2] - edges[j]) * (1 + 1e-6), j
        # spec formula evaluated with scalar Python arithmetic at a few bins
        for k in nz[:3]:
            v = max(0.0, min((c[k] - edges[j]) / (edges[j + 1] - edges[j]),
                             (edges[j + 2] - c[k]) / (edges[j + 2] - edges[j + 1])))
            v *= 2.0 / (edges[j + 2] - edges[j])
            assert abs(col[k] - np.float32(v)) <= 1e-7 * max(1.0, abs(v)), (j, k)
    # area normalisation: sum_k W * 40 Hz ~ 1 for the wide (high) filters; the low ones
    # are narrower than ~2 bins, so their sampled sum is not a good area estimate
    area = W[:, 100:].astype(np.float64).sum(axis=0) * 40.0
    assert np.all(np.abs(area - 1.0) < 0.03), area
    # peak order is monotonic
    peaks = W.argmax(axis=0)
    assert np.all(np.diff(peaks) >= 0)


@check
def mel_vs_naive_dft():
    n = 160 * 7 + 77
    x = (0.5 * make_signal(n, seed=3)).astype(np.float32)
    got = ref.log_mel(x)
    # independent: explicit reflect padding, explicit DFT sums, loop filterbank
    xp = np.concatenate([x[1:201][::-1], x, x[-201:-1][::-1]]).astype(np.float64)
    assert xp.shape[0] == n + 400
    T = n // 160
    nn = np.arange(400)
    win = 0.5 - 0.5 * np.cos(2 * np.pi * nn / 400)
    k = np.arange(201)[:, None]
    Cm, Sm = np.cos(2 * np.pi * k * nn / 400), np.sin(2 * np.pi * k * nn / 400)
    W = ref.mel_filterbank().astype(np.float64)
    M = np.empty((T, 128))
    for t in range(T):
        fr = xp[160 * t:160 * t + 400] * win
        P = (Cm @ fr) ** 2 + (Sm @ fr) ** 2
        M[t] = P @ W
    L = np.log10(np.maximum(M, 1e-10))
    L = np.maximum(L, L.max() - 8.0)
    want = ((L + 4) / 4).T
    assert got.shape == want.shape == (128, T)
    err = np.abs(got - want).max()
    assert err < 1e-5, err
    # a 1 kHz tone peaks in the filter whose centre is nearest to 1 kHz
    tone = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000)).astype(np.float32)
    m = ref.log_mel(tone)
    centres = ref.mel_to_hz(np.linspace(0.0, 45.245640471924965, 130))[1:-1]
    assert abs(int(np.argmax(m[:, 50])) - int(np.argmin(np.abs(centres - 1000)))) <= 1


@check
def real_tokenizer_prompt_ids():
    tok = ref.Tokenizer(FIXTURE)
    A = 7
    ids = tok.encode(ref.build_prompt_text(A))
    want = ([151644, 8948, 198, 151645, 198, 151644, 872, 198, 151669] + [151676] * A
            + [151670, 151645, 198, 151644, 77091, 198])
    assert ids == want, ids
    assert len(ids) == A + 15
    ids = tok.encode(ref.build_prompt_text(A, language="English"))
    assert ids == want + [11528, 6364, 151704], ids[-6:]
    assert tok.encode("language English") == [11528, 6364]
    # context: "system\n" + C is one BPE segment; for C starting with a letter it splits
    ctx = "交易 停滞"
    ids = tok.encode(ref.build_prompt_text(A, context=ctx))
    assert ids[:3] == [151644, 8948, 198] and ids[3:-(A + 12)] == tok.encode(ctx), ids[:10]
    assert ids[-(A + 12):] == want[3:]
    # a context starting with a newline merges with the "\n" after "system"
    ids = tok.encode(ref.build_prompt_text(A, context="\nabc"))
    assert ids[:3] == [151644, 8948] + tok.encode("\n\n") and len(tok.encode("\n\n")) == 1
    # "\n\n" is a single token; digits are split individually
    assert len(tok.encode("\n\n")) == 1
    assert len(tok.encode("12345")) == 5
    # round trips and special-token handling in decoding
    for s in ("Hello, world! It's 2024.", "  spaces\tand\nnewlines\n\n", "交易 停滞", "naïve café",
              "emoji 😀 ok"):
        assert tok.decode(tok.encode(s)) == s, s
    assert tok.decode([151644, 11528, 6364, 151704, 9707, 151645]) == "language English<asr_text>Hello"
    # NFC: decomposed input encodes like the composed form
    assert tok.encode("cafe\u0301") == tok.encode("caf\u00e9")


@check
def rope_and_gelu_facts():
    for hd, theta in ((128, 1e6), (32, 1e6)):
        cos, sin = ref.rope_cos_sin([0], hd, theta)
        assert np.all(cos == 1) and np.all(sin == 0)
        x = np.random.default_rng(0).standard_normal((1, 3, hd)).astype(np.float32)
        assert np.array_equal(ref.apply_rope(x, cos, sin), x)
        # position p rotates the pair (i, i + hd/2) by p * theta^(-2i/hd)
        p = 37
        cos, sin = ref.rope_cos_sin([p], hd, theta)
        y = ref.apply_rope(x, cos, sin)[0, 0].astype(np.float64)
        h = hd // 2
        z = (x[0, 0, :h] + 1j * x[0, 0, h:]).astype(np.complex128)
        ang = p * theta ** (-2.0 * np.arange(h) / hd)
        zr = z * np.exp(1j * ang)
        assert np.allclose(y[:h], zr.real, atol=2e-5) and np.allclose(y[h:], zr.imag, atol=2e-5)
    g = ref.gelu(np.array([0.0, 1.0, -1.0, 3.0, -3.0], dtype=np.float32)).astype(np.float64)
    # x * Phi(x) with Phi(1) = 0.8413447460685429, Phi(3) = 0.9986501019683699
    want = [0.0, 0.8413447460685429, -0.15865525393145707, 2.9959503059051097,
            -0.0040496940948903]
    assert np.allclose(g, want, rtol=1e-6, atol=1e-9), g
    # sinusoid table: sin block then cos block, restart is the caller's job
    P = ref.sinusoid_table(13, 896)
    assert np.all(P[0, :448] == 0) and np.all(P[0, 448:] == 1)
    inc = math.log(10000.0) / 447
    assert abs(P[5, 3] - math.sin(5 * math.exp(-inc * 3))) < 1e-6
    assert abs(P[5, 448 + 3] - math.cos(5 * math.exp(-inc * 3))) < 1e-6


@check
def bf16_rounding():
    vals = np.array([1.0, 1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, 1.0 + 2 ** -8 + 2 ** -20, -2.5,
                     3.0e38, 1e-40, 0.0], dtype=np.float32)
    bits = msm.f32_to_bf16_bits(vals)
    want = [0x3F80, 0x3F80, 0x3F82, 0x3F81, 0xC020, None, None, 0x0000]
    for b, w in zip(bits, want):
        if w is not None:
            assert int(b) == w, (hex(int(b)), hex(w))
    back = msm.bf16_bits_to_f32(bits)
    assert np.allclose(back[:5], [1.0, 1.0, 1.0 + 2 ** -6, 1.0 + 2 ** -7, -2.5])
    x = np.random.default_rng(0).standard_normal(100000).astype(np.float32) * 10
    r = msm.bf16_bits_to_f32(msm.f32_to_bf16_bits(x))
    assert np.all(np.abs(r - x) <= np.abs(x) * 2 ** -8 * (1 + 1e-6))
    assert np.array_equal(ref.bf16_to_f32(msm.f32_to_bf16_bits(x)), r)


# ========================================================================================
# tiny synthetic round trip

class Tiny:
    tmp = None


def tiny_setup(keep=None):
    Tiny.tmp = keep or tempfile.mkdtemp(prefix="qasr_selfcheck_")
    os.makedirs(Tiny.tmp, exist_ok=True)
    j = lambda *p: os.path.join(Tiny.tmp, *p)
    for d, extra in (("model", []), ("model_nohead", ["--no-lm-head"]), ("model_3", ["--shards", "3"])):
        subprocess.run([PY, os.path.join(SCRIPTS, "make_synthetic_model.py"), j(d), "--size", "tiny",
                        "--seed", "7"] + extra, check=True, stdout=subprocess.DEVNULL)
    # 1.37 s + 37 samples: T = 137 (tail r = 37, r mod 8 = 5 -> padded tail matters)
    write_wav(j("a137.wav"), make_signal(int(1.37 * 16000) + 37))
    write_wav(j("a060.wav"), make_signal(9600, seed=5))         # T = 60 < 100
    write_wav(j("a10s.wav"), make_signal(160000 + 100, seed=6))  # T = 1000, windows [104, 26]
    write_wav(j("stereo.wav"), make_signal(4000), channels=2)
    write_wav(j("a8k.wav"), make_signal(4000), sr=8000)
    write_wav(j("a8bit.wav"), make_signal(4000), width=1)
    Tiny.model = j("model")


def run_ref(model, wav, out, *extra):
    r = subprocess.run([PY, os.path.join(SCRIPTS, "qasr_reference.py"), "--model", model,
                        "--audio", wav, "--dump-dir", out] + list(extra),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return r


def load_dumps(d):
    return {f[:-4]: np.load(os.path.join(d, f)) for f in os.listdir(d) if f.endswith(".npy")}


@check
def tiny_checkpoint_layout():
    d = Tiny.model
    cfg = json.load(open(os.path.join(d, "config.json")))
    th = cfg["thinker_config"]
    ac, tc = th["audio_config"], th["text_config"]
    for fn in ("config.json", "generation_config.json", "preprocessor_config.json",
               "chat_template.json", "tokenizer_config.json", "vocab.json", "merges.txt",
               "model.safetensors"):
        assert os.path.exists(os.path.join(d, fn)), fn
    # raw safetensors structure
    path = os.path.join(d, "model.safetensors")
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    assert n % 8 == 0
    hdr = json.loads(raw[8:8 + n])
    assert hdr.pop("__metadata__") == {"format": "pt"}
    spans = sorted(e["data_offsets"] for e in hdr.values())
    assert spans[0][0] == 0 and all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert 8 + n + spans[-1][1] == len(raw)
    assert all(e["dtype"] == "BF16" for e in hdr.values())
    L, LD = ac["encoder_layers"], tc["num_hidden_layers"]
    assert len(hdr) == 13 + 16 * L + 11 * LD + 3, len(hdr)
    D, H, V = ac["d_model"], tc["hidden_size"], tc["vocab_size"]
    shapes = {k: v["shape"] for k, v in hdr.items()}
    C = ac["downsample_hidden_size"]
    assert shapes["thinker.audio_tower.conv2d1.weight"] == [C, 1, 3, 3]
    assert shapes["thinker.audio_tower.conv_out.weight"] == [D, C * 16]
    assert shapes["thinker.audio_tower.layers.1.fc1.weight"] == [ac["encoder_ffn_dim"], D]
    assert shapes["thinker.audio_tower.proj2.weight"] == [H, D]
    assert shapes["thinker.model.embed_tokens.weight"] == [V, H]
    assert shapes["thinker.lm_head.weight"] == [V, H]
    nh, nkv, hd = tc["num_attention_heads"], tc["num_key_value_heads"], tc["head_dim"]
    assert shapes["thinker.model.layers.1.self_attn.q_proj.weight"] == [nh * hd, H]
    assert shapes["thinker.model.layers.1.self_attn.k_proj.weight"] == [nkv * hd, H]
    assert shapes["thinker.model.layers.1.self_attn.o_proj.weight"] == [H, nh * hd]
    assert shapes["thinker.model.layers.1.self_attn.q_norm.weight"] == [hd]
    assert not any(k.startswith("thinker.model.") and k.endswith(".bias") for k in hdr)
    ck = ref.Checkpoint(d)
    assert np.array_equal(ck.raw("thinker.lm_head.weight"), ck.raw("thinker.model.embed_tokens.weight"))
    # tiny tokenizer consistency
    vocab = json.load(open(os.path.join(d, "vocab.json"), encoding="utf-8"))
    V0 = len(vocab)
    assert V0 == 2000 and sorted(vocab.values()) == list(range(V0))
    merges = [l for l in open(os.path.join(d, "merges.txt"), encoding="utf-8").read().split("\n")[1:] if l]
    assert len(merges) == V0 - 256
    for r, m in enumerate(merges):
        a, b = m.split(" ")
        assert vocab[a + b] == 256 + r and a in vocab and b in vocab
    tcfg = json.load(open(os.path.join(d, "tokenizer_config.json")))
    real = json.load(open(os.path.join(FIXTURE, "tokenizer_config.json")))
    new = sorted(tcfg["added_tokens_decoder"].items(), key=lambda kv: int(kv[0]))
    old = sorted(real["added_tokens_decoder"].items(), key=lambda kv: int(kv[0]))
    assert [int(k) for k, _ in new] == list(range(V0, V0 + 62))
    assert [e for _, e in new] == [e for _, e in old]
    ids = {e["content"]: int(k) for k, e in new}
    assert th["audio_token_id"] == ids["<|audio_pad|>"]
    assert th["audio_start_token_id"] == ids["<|audio_start|>"]
    assert th["audio_end_token_id"] == ids["<|audio_end|>"]
    assert V % 64 == 0 and V0 + 62 <= V < V0 + 62 + 64
    gc = json.load(open(os.path.join(d, "generation_config.json")))
    assert sorted(gc["eos_token_id"]) == sorted([ids["<|endoftext|>"], ids["<|im_end|>"]])
    # --no-lm-head drops exactly the head; --shards 3 writes a consistent index
    ck2 = ref.Checkpoint(os.path.join(Tiny.tmp, "model_nohead"))
    assert set(ck.entries) - set(ck2.entries) == {"thinker.lm_head.weight"}
    idx = json.load(open(os.path.join(Tiny.tmp, "model_3", "model.safetensors.index.json")))
    assert len(set(idx["weight_map"].values())) == 3 and set(idx["weight_map"]) == set(ck.entries)
    assert idx["metadata"]["total_size"] == sum(2 * int(np.prod(v)) for v in shapes.values())
    ck3 = ref.Checkpoint(os.path.join(Tiny.tmp, "model_3"))
    for name in ck.entries:
        assert np.array_equal(ck.raw(name), ck3.raw(name)), name


# sha256 of the published Qwen3-ASR-0.6B files (tests/fixtures/qwen3-asr-0.6b/README.md)
PUBLISHED_SHA256 = {
    "chat_template.json": "75a8cfca24f00de72d796fbfed6858fc9614ef3dabd8696684cc3bc03a9c58ff",
    "config.json": "76d3ae4601ce939830b2517f4a6cadb86cc51316c3900af6b020b051c21a478c",
    "generation_config.json": "1da527824d81e07118facff437e03f2e24a23311e3bdeb2368973fe77e5f275c",
    "merges.txt": "8831e4f1a044471340f7c0a83d7bd71306a5b867e95fd870f74d0c5308a904d5",
    "preprocessor_config.json": "45e120a4eda2c20c5d7f2ea9354e63536bf35e27aa573fb7cdf78017b378770d",
    "tokenizer_config.json": "4942d005604266809309cabc9f4e9cb89ce855d59b14681fdc0e1cc62ea26c4c",
    "vocab.json": "ca10d7e9fb3ed18575dd1e277a2579c16d108e32f27439684afa0e10b1440910",
}


# sha256 of the published Qwen3-ForcedAligner-0.6B files and of the official Korean word list
# (tests/fixtures/qwen3-forced-aligner-0.6b/README.md)
ALIGNER_FIXTURE = os.path.join(ROOT, "tests", "fixtures", "qwen3-forced-aligner-0.6b")
ALIGNER_SHA256 = {
    "chat_template.json": "75a8cfca24f00de72d796fbfed6858fc9614ef3dabd8696684cc3bc03a9c58ff",
    "config.json": "d616c65d46c4b90bdc651b0a0963ea932732241140f337f9bb6b0335a9c8ef09",
    "generation_config.json": "948d089b23bca1d214e768d59c4438365665f52ec6d33678f4062206b3fbbb8c",
    "preprocessor_config.json": "45e120a4eda2c20c5d7f2ea9354e63536bf35e27aa573fb7cdf78017b378770d",
    "tokenizer_config.json": "3ab80063f8511deb9566e6ad438d17b7a6277fcffd52d92854112f19d36bd81c",
}
KOREAN_DICT_SHA256 = "cc157a9ab78f92bf11ed98a69b285768d6627cf5cd57a581e6c06693effce37d"


def _read_bytes(*p):
    with open(os.path.join(*p), "rb") as f:
        return f.read()


def _changed_lines(published, derived):
    """[(published line, derived line)] that differ; the line structure must be the same."""
    a, b = published.decode("utf-8").split("\n"), derived.decode("utf-8").split("\n")
    assert len(a) == len(b), (len(a), len(b))
    return [(x, y) for x, y in zip(a, b) if x != y]


def _member(line):
    """'  "key": value,' -> (indentation, key, value text without the comma)."""
    m = re.fullmatch(r'( *)"([^"]*)": (.*?)(,?)', line)
    assert m, line
    return m.group(1), m.group(2), m.group(3)


@check
def aligner_fixture_files_published():
    names = sorted(f for f in os.listdir(ALIGNER_FIXTURE) if f != "README.md")
    assert names == sorted(ALIGNER_SHA256), names
    for fn, want in ALIGNER_SHA256.items():
        got = hashlib.sha256(_read_bytes(ALIGNER_FIXTURE, fn)).hexdigest()
        assert got == want, (fn, got)
    assert hashlib.sha256(_read_bytes(ref.KOREAN_DICT)).hexdigest() == KOREAN_DICT_SHA256
    cfg = json.loads(_read_bytes(ALIGNER_FIXTURE, "config.json"))
    assert (cfg["timestamp_token_id"], cfg["timestamp_segment_time"]) == (151705, 80)
    assert cfg["thinker_config"]["model_type"] == "qwen3_forced_aligner" and cfg["thinker_config"]["classify_num"] == 5000


@check
def fixture_files_published():
    names = sorted(f for f in os.listdir(FIXTURE) if f != "README.md")
    assert names == sorted(PUBLISHED_SHA256), names
    for fn, want in PUBLISHED_SHA256.items():
        got = hashlib.sha256(_read_bytes(FIXTURE, fn)).hexdigest()
        assert got == want, (fn, got)
    # facts of the published files that differ from what ports reproduce
    pre = json.loads(_read_bytes(FIXTURE, "preprocessor_config.json"))
    assert "sampling_rate" not in pre and pre["feature_size"] == 128 and pre["hop_length"] == 160
    gen = json.loads(_read_bytes(FIXTURE, "generation_config.json"))
    assert gen["do_sample"] is False and gen["temperature"] == 1e-06
    assert gen["eos_token_id"] == [151643, 151645] and gen["pad_token_id"] == 151643
    tc = json.loads(_read_bytes(FIXTURE, "tokenizer_config.json"))
    assert sorted(map(int, tc["added_tokens_decoder"])) == list(range(151643, 151705))


@check
def checkpoint_files_as_published():
    """Non-weight files of synthetic checkpoints (make_synthetic_model.write_files, what its
    main() writes before the weights) against the published bytes."""
    tmp = tempfile.mkdtemp(prefix="qasr_selfcheck_files_", dir=Tiny.tmp)
    for size in ("0.6b", "1.7b"):
        msm.write_files(os.path.join(tmp, size), size)
    # 0.6b: every file is the published one
    for fn in PUBLISHED_SHA256:
        assert _read_bytes(tmp, "0.6b", fn) == _read_bytes(FIXTURE, fn), ("0.6b", fn)
    # 1.7b: config.json differs only in the dimension lines (spec 2.2, 1.7B column)
    for fn in PUBLISHED_SHA256:
        if fn != "config.json":
            assert _read_bytes(tmp, "1.7b", fn) == _read_bytes(FIXTURE, fn), ("1.7b", fn)
    want = {"d_model": "1024", "encoder_attention_heads": "16", "encoder_ffn_dim": "4096",
            "encoder_layers": "24", "num_hidden_layers": "24", "output_dim": "2048",
            "hidden_size": "2048", "intermediate_size": "6144"}
    changed = _changed_lines(_read_bytes(FIXTURE, "config.json"),
                             _read_bytes(tmp, "1.7b", "config.json"))
    assert len(changed) == 8, changed   # 6 audio_config lines, hidden_size, intermediate_size
    for old, new in changed:
        (i0, k0, _), (i1, k1, v1) = _member(old), _member(new)
        assert i0 == i1 and k0 == k1 and want.get(k0) == v1, (old, new)
        assert old.endswith(",") == new.endswith(",")
    c17 = json.loads(_read_bytes(tmp, "1.7b", "config.json"))["thinker_config"]
    ac, tc = c17["audio_config"], c17["text_config"]
    assert (ac["d_model"], ac["encoder_layers"], ac["num_hidden_layers"], ac["encoder_attention_heads"],
            ac["encoder_ffn_dim"], ac["output_dim"], ac["downsample_hidden_size"]) == \
        (1024, 24, 24, 16, 4096, 2048, 480)
    assert (tc["hidden_size"], tc["intermediate_size"], tc["num_hidden_layers"],
            tc["num_attention_heads"], tc["num_key_value_heads"], tc["head_dim"], tc["vocab_size"]) == \
        (2048, 6144, 28, 16, 8, 128, 151936)
    # tiny: preprocessor/chat template verbatim; tokenizer_config and generation_config are the
    # published text with only the added-token ids renumbered (151643 + j -> 2000 + j)
    d = Tiny.model
    for fn in ("preprocessor_config.json", "chat_template.json"):
        assert _read_bytes(d, fn) == _read_bytes(FIXTURE, fn), ("tiny", fn)
    back = lambda m: str(int(m.group(0)) - 2000 + 151643)
    tok = _read_bytes(d, "tokenizer_config.json").decode("utf-8")
    keys = re.findall(r'^    "(\d+)": \{$', tok, flags=re.M)
    assert keys == [str(2000 + j) for j in range(62)], keys[:3]
    restored = re.sub(r'(?<=^    ")\d+(?=": \{$)', back, tok, flags=re.M)
    assert restored.encode("utf-8") == _read_bytes(FIXTURE, "tokenizer_config.json")
    gen = _read_bytes(d, "generation_config.json").decode("utf-8")
    assert json.loads(gen)["eos_token_id"] == [2000, 2002] and json.loads(gen)["pad_token_id"] == 2000
    restored = re.sub(r"\b20\d\d\b", back, gen)
    assert restored.encode("utf-8") == _read_bytes(FIXTURE, "generation_config.json")
    # tiny config.json: only dimension and token-id lines differ, same keys and layout
    allowed = {"d_model", "downsample_hidden_size", "encoder_attention_heads", "encoder_ffn_dim",
               "encoder_layers", "num_hidden_layers", "output_dim", "audio_end_token_id",
               "audio_start_token_id", "audio_token_id", "head_dim", "hidden_size",
               "intermediate_size", "num_attention_heads", "num_key_value_heads", "vocab_size"}
    for old, new in _changed_lines(_read_bytes(FIXTURE, "config.json"), _read_bytes(d, "config.json")):
        (i0, k0, _), (i1, k1, _) = _member(old), _member(new)
        assert i0 == i1 and k0 == k1 and k0 in allowed, (old, new)


@check
def demo_files_as_exported():
    """tests/models/qasr-demo's tokenizer and JSON files are what train_demo_model.py's export
    writes for the demo's own merges (the published files with the demo's dimensions and ids)."""
    import train_demo_model as tdm
    demo = os.path.join(ROOT, "tests", "models", "qasr-demo")
    lines = _read_bytes(demo, "merges.txt").decode("utf-8").split("\n")
    merges = [tuple(l.split(" ")) for l in lines[1:] if l]
    tmp = tempfile.mkdtemp(prefix="qasr_selfcheck_demo_", dir=Tiny.tmp)
    n_tok, ids = tdm.write_tokenizer(tmp, merges)
    tdm.write_config(tmp, ids, n_tok)
    written = sorted(os.listdir(tmp))
    assert written == sorted(f for f in os.listdir(demo) if f != "model.safetensors"), written
    for fn in written:
        assert _read_bytes(tmp, fn) == _read_bytes(demo, fn), fn
    for fn in ("preprocessor_config.json", "chat_template.json"):
        assert _read_bytes(demo, fn) == _read_bytes(FIXTURE, fn), fn


def naive_conv_stem(mel, ck, D):
    """Independent conv stem: per-offset einsum, explicit padding; rows for all chunks."""
    g = lambda n: ck.get("thinker.audio_tower." + n)
    T = mel.shape[1]
    pe_half = D // 2
    inc = math.log(10000.0) / (pe_half - 1)
    rows = []
    nch = ceil_div(T, 100)
    for c in range(nch):
        seg = mel[:, 100 * c:100 * (c + 1)]
        r = seg.shape[1]
        width = 100 if T >= 100 else T
        x = np.zeros((1, 128, width), dtype=np.float64)
        x[0, :, :r] = seg
        for i in (1, 2, 3):
            w, b = g("conv2d%d.weight" % i).astype(np.float64), g("conv2d%d.bias" % i).astype(np.float64)
            Cin, Hh, Ww = x.shape
            Ho, Wo = (Hh + 1) // 2, (Ww + 1) // 2
            xp = np.zeros((Cin, Hh + 2, Ww + 2))
            xp[:, 1:-1, 1:-1] = x
            y = np.zeros((w.shape[0], Ho, Wo)) + b[:, None, None]
            for dy in range(3):
                for dx in range(3):
                    y += np.einsum("oc,chw->ohw", w[:, :, dy, dx], xp[:, dy:dy + 2 * Ho:2, dx:dx + 2 * Wo:2])
            erf = np.vectorize(math.erf)
            x = 0.5 * y * (1 + erf(y / math.sqrt(2)))
        Cc, F, Wd = x.shape
        flat = np.stack([np.concatenate([x[ch, :, col] for ch in range(Cc)]) for col in range(Wd)])
        out = flat @ g("conv_out.weight").astype(np.float64).T
        keep = ceil_div(r, 8)
        for p in range(keep):
            pe = [math.sin(p * math.exp(-inc * i)) for i in range(pe_half)] + \
                 [math.cos(p * math.exp(-inc * i)) for i in range(pe_half)]
            rows.append(out[p] + np.array(pe))
    return np.array(rows)


@check
def tiny_round_trip():
    out = os.path.join(Tiny.tmp, "d137")
    r = run_ref(Tiny.model, os.path.join(Tiny.tmp, "a137.wav"), out, "--dump-step-logits")
    assert r.returncode == 0, r.stderr
    dd = load_dumps(out)
    Tiny.step_logits = dd.pop("step_logits")
    Tiny.dumps = dd
    Tiny.meta = json.load(open(os.path.join(out, "meta.json")))
    cfg = json.load(open(os.path.join(Tiny.model, "config.json")))
    ac, tc = cfg["thinker_config"]["audio_config"], cfg["thinker_config"]["text_config"]
    D, H, V = ac["d_model"], tc["hidden_size"], tc["vocab_size"]
    T = (int(1.37 * 16000) + 37) // 160
    A = 13 * (T // 100) + ceil_div(T % 100, 8)
    # S = A + 15 for the real tokenizer (system/user/assistant are single tokens there);
    # the tiny BPE (first 1744 merges) splits "system" into 2 and "assistant" into 3 tokens
    tok = ref.Tokenizer(Tiny.model)
    extra = sum(len(tok.encode(w)) - 1 for w in ("system", "user", "assistant"))
    assert extra == 3, extra
    S = A + 15 + extra
    assert (T, A) == (137, 18)
    expect = {"mel": (128, T), "enc_conv": (A, D), "enc_out": (A, H), "prompt_ids": (S,),
              "dec_embed": (S, H), "logits": (V,)}
    for i in range(ac["encoder_layers"]):
        expect["enc_layer_%02d" % i] = (A, D)
    for i in range(tc["num_hidden_layers"]):
        expect["dec_layer_%02d" % i] = (S, H)
    for k, shp in expect.items():
        assert k in dd, "missing dump %s" % k
        assert dd[k].shape == shp, (k, dd[k].shape, shp)
        want_dt = np.int32 if k == "prompt_ids" else np.float32
        assert dd[k].dtype == want_dt, (k, dd[k].dtype)
    assert set(dd) == set(expect) | {"tokens"}, sorted(set(dd) - set(expect))
    assert dd["tokens"].dtype == np.int32 and 1 <= dd["tokens"].shape[0] <= 32
    for k, a in dd.items():
        assert np.all(np.isfinite(a)), k
    # prompt ids with the tiny ids
    ad = tok.added
    want = ([ad["<|im_start|>"]] + tok.encode("system\n") + [ad["<|im_end|>"]] + tok.encode("\n")
            + [ad["<|im_start|>"]] + tok.encode("user\n") + [ad["<|audio_start|>"]]
            + [ad["<|audio_pad|>"]] * A + [ad["<|audio_end|>"], ad["<|im_end|>"]] + tok.encode("\n")
            + [ad["<|im_start|>"]] + tok.encode("assistant\n"))
    assert dd["prompt_ids"].tolist() == want, dd["prompt_ids"].tolist()
    # embedding merge
    ck = ref.Checkpoint(Tiny.model)
    emb = ck.get("thinker.model.embed_tokens.weight")
    ids = dd["prompt_ids"]
    isaud = ids == cfg["thinker_config"]["audio_token_id"]
    assert isaud.sum() == A
    assert np.array_equal(dd["dec_embed"][isaud], dd["enc_out"])
    assert np.array_equal(dd["dec_embed"][~isaud], emb[ids[~isaud]])
    # conv stem vs naive float64 implementation (incl. the zero-padded tail chunk)
    naive = naive_conv_stem(dd["mel"], ck, D)
    err = np.abs(naive - dd["enc_conv"]).max() / max(1.0, np.abs(naive).max())
    assert err < 1e-5, err
    # logits = final_norm(dec_layer_last)[-1] @ lm_head^T
    last = dd["dec_layer_%02d" % (tc["num_hidden_layers"] - 1)][-1].astype(np.float64)
    nw = ck.get("thinker.model.norm.weight").astype(np.float64)
    hn = last / np.sqrt(np.mean(last ** 2) + tc["rms_norm_eps"]) * nw
    want_logits = ck.get("thinker.lm_head.weight").astype(np.float64) @ hn
    err = np.abs(want_logits - dd["logits"]).max() / np.abs(want_logits).max()
    assert err < 1e-5, err
    assert dd["tokens"][0] == int(np.argmax(dd["logits"]))


def _ln64(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * w + b


def _gelu64(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def naive_encoder_layer(x, ck, i, heads, windows):
    g = lambda n: ck.get("thinker.audio_tower.layers.%d.%s" % (i, n)).astype(np.float64)
    A, D = x.shape
    hd = D // heads
    h = _ln64(x, g("self_attn_layer_norm.weight"), g("self_attn_layer_norm.bias"))
    q = h @ g("self_attn.q_proj.weight").T + g("self_attn.q_proj.bias")
    k = h @ g("self_attn.k_proj.weight").T + g("self_attn.k_proj.bias")
    v = h @ g("self_attn.v_proj.weight").T + g("self_attn.v_proj.bias")
    o = np.zeros_like(q)
    start = 0
    for wl in windows:
        for hh in range(heads):
            cs = slice(hh * hd, (hh + 1) * hd)
            for t in range(start, start + wl):
                sc = np.array([q[t, cs] @ k[u, cs] for u in range(start, start + wl)]) / math.sqrt(hd)
                p = np.exp(sc - sc.max())
                p /= p.sum()
                o[t, cs] = p @ v[start:start + wl, cs]
        start += wl
    x = x + o @ g("self_attn.out_proj.weight").T + g("self_attn.out_proj.bias")
    h = _ln64(x, g("final_layer_norm.weight"), g("final_layer_norm.bias"))
    f = _gelu64(h @ g("fc1.weight").T + g("fc1.bias"))
    return x + f @ g("fc2.weight").T + g("fc2.bias")


def naive_decoder_layer(x, ck, i, tc):
    g = lambda n: ck.get("thinker.model.layers.%d.%s" % (i, n)).astype(np.float64)
    eps, theta = tc["rms_norm_eps"], tc["rope_theta"]
    nh, nkv, hd = tc["num_attention_heads"], tc["num_key_value_heads"], tc["head_dim"]
    rms = lambda v, w: v / np.sqrt((v ** 2).mean(-1, keepdims=True) + eps) * w
    S = x.shape[0]
    h = rms(x, g("input_layernorm.weight"))
    q = (h @ g("self_attn.q_proj.weight").T).reshape(S, nh, hd)
    k = (h @ g("self_attn.k_proj.weight").T).reshape(S, nkv, hd)
    v = (h @ g("self_attn.v_proj.weight").T).reshape(S, nkv, hd)
    q, k = rms(q, g("self_attn.q_norm.weight")), rms(k, g("self_attn.k_norm.weight"))

    def rope(a, p):   # pair (i, i + hd/2) rotated by p * theta^(-2i/hd)
        half = hd // 2
        z = a[..., :half] + 1j * a[..., half:]
        z = z * np.exp(1j * p * theta ** (-2.0 * np.arange(half) / hd))
        return np.concatenate([z.real, z.imag], axis=-1)
    q = np.stack([rope(q[p], p) for p in range(S)])
    k = np.stack([rope(k[p], p) for p in range(S)])
    o = np.zeros((S, nh * hd))
    for j in range(nh):
        kv = j // (nh // nkv)
        for t in range(S):
            sc = np.array([q[t, j] @ k[u, kv] for u in range(t + 1)]) / math.sqrt(hd)
            p = np.exp(sc - sc.max())
            p /= p.sum()
            o[t, j * hd:(j + 1) * hd] = p @ v[:t + 1, kv]
    x = x + o @ g("self_attn.o_proj.weight").T
    h = rms(x, g("post_attention_layernorm.weight"))
    gt = h @ g("mlp.gate_proj.weight").T
    m = gt / (1 + np.exp(-gt)) * (h @ g("mlp.up_proj.weight").T)
    return x + m @ g("mlp.down_proj.weight").T


def _relerr(a, b):
    return float(np.abs(np.asarray(a, np.float64) - b).max() / max(1.0, np.abs(b).max()))


@check
def tiny_layers_vs_naive():
    """Every encoder/decoder layer and the projector re-derived with loops in float64."""
    dd = Tiny.dumps
    ck = ref.Checkpoint(Tiny.model)
    cfg = json.load(open(os.path.join(Tiny.model, "config.json")))
    ac, tc = cfg["thinker_config"]["audio_config"], cfg["thinker_config"]["text_config"]
    A = dd["enc_conv"].shape[0]
    prev = dd["enc_conv"].astype(np.float64)
    for i in range(ac["encoder_layers"]):
        want = naive_encoder_layer(prev, ck, i, ac["encoder_attention_heads"], [A])
        e = _relerr(dd["enc_layer_%02d" % i], want)
        assert e < 1e-5, ("enc", i, e)
        prev = dd["enc_layer_%02d" % i].astype(np.float64)
    g = lambda n: ck.get("thinker.audio_tower." + n).astype(np.float64)
    want = _gelu64(_ln64(prev, g("ln_post.weight"), g("ln_post.bias")) @ g("proj1.weight").T
                   + g("proj1.bias")) @ g("proj2.weight").T + g("proj2.bias")
    e = _relerr(dd["enc_out"], want)
    assert e < 1e-5, ("enc_out", e)
    prev = dd["dec_embed"].astype(np.float64)
    for i in range(tc["num_hidden_layers"]):
        want = naive_decoder_layer(prev, ck, i, tc)
        e = _relerr(dd["dec_layer_%02d" % i], want)
        assert e < 1e-5, ("dec", i, e)
        prev = dd["dec_layer_%02d" % i].astype(np.float64)


@check
def tiny_no_lm_head_identical():
    out = os.path.join(Tiny.tmp, "d137_nohead")
    r = run_ref(os.path.join(Tiny.tmp, "model_nohead"), os.path.join(Tiny.tmp, "a137.wav"), out)
    assert r.returncode == 0, r.stderr
    dd = load_dumps(out)
    assert np.array_equal(dd["logits"], Tiny.dumps["logits"])
    assert np.array_equal(dd["tokens"], Tiny.dumps["tokens"])
    meta = json.load(open(os.path.join(out, "meta.json")))
    assert meta["lm_head"].startswith("embed_tokens")
    out = os.path.join(Tiny.tmp, "d137_sharded")
    r = run_ref(os.path.join(Tiny.tmp, "model_3"), os.path.join(Tiny.tmp, "a137.wav"), out)
    assert r.returncode == 0, r.stderr
    dd = load_dumps(out)
    for k in Tiny.dumps:
        assert np.array_equal(dd[k], Tiny.dumps[k]), k


@check
def tiny_kv_cache_vs_full_forward():
    """Greedy tokens from the cached decode equal the argmax of a cache-free forward pass."""
    dd = Tiny.dumps
    cfg = json.load(open(os.path.join(Tiny.model, "config.json")))
    ck = ref.Checkpoint(Tiny.model)
    dec = ref.Decoder(ck, cfg["thinker_config"]["text_config"])
    toks = dd["tokens"].astype(np.int64)
    seq = np.concatenate([dd["dec_embed"], dec.embed[toks[:-1]]], axis=0)
    h = seq
    for i in range(len(dec.layers)):
        h = dec.layer(i, h, 0)
    S = dd["dec_embed"].shape[0]
    lg = dec.logits(h[S - 1:])
    assert np.allclose(lg[0], dd["logits"], rtol=1e-4, atol=1e-4)
    sl = Tiny.step_logits
    assert sl.shape == (len(toks), dd["logits"].shape[0]) and np.array_equal(sl[0], dd["logits"])
    assert np.allclose(lg, sl, rtol=1e-4, atol=1e-4 * np.abs(sl).max()), np.abs(lg - sl).max()
    assert [int(np.argmax(r)) for r in sl] == toks.tolist()
    margins = Tiny.meta["margins"]
    for j, t in enumerate(toks):
        if margins[j] > 1e-3:
            assert int(np.argmax(lg[j])) == int(t), (j, int(np.argmax(lg[j])), int(t))
    # causality: the prompt rows of the full pass equal the prompt-only dump
    last = dd["dec_layer_%02d" % (len(dec.layers) - 1)]
    assert np.allclose(h[:S], last, rtol=1e-4, atol=1e-4)


@check
def tiny_encoder_window_isolation():
    cfg = json.load(open(os.path.join(Tiny.model, "config.json")))
    ck = ref.Checkpoint(Tiny.model)
    enc = ref.Encoder(ck, cfg["thinker_config"]["audio_config"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((130, enc.D)).astype(np.float32)
    y = enc.layer(x, enc.layers[0], [104, 26])
    x2 = x.copy()
    x2[110] += rng.standard_normal(enc.D).astype(np.float32)
    y2 = enc.layer(x2, enc.layers[0], [104, 26])
    assert np.array_equal(y[:104], y2[:104])
    assert not np.allclose(y[104:], y2[104:])
    x3 = x.copy()
    x3[3] += rng.standard_normal(enc.D).astype(np.float32)
    y3 = enc.layer(x3, enc.layers[0], [104, 26])
    assert not np.allclose(y[50], y3[50])       # bidirectional inside a window
    assert np.array_equal(y[104:], y3[104:])
    # a 10 s clip through the CLI: T = 1000 -> A = 130, windows [104, 26]
    out = os.path.join(Tiny.tmp, "d10s")
    r = run_ref(Tiny.model, os.path.join(Tiny.tmp, "a10s.wav"), out, "--steps", "2")
    assert r.returncode == 0, r.stderr
    meta = json.load(open(os.path.join(out, "meta.json")))
    assert (meta["T"], meta["A"], meta["S"], meta["windows"]) == (1000, 130, 130 + 18, [104, 26]), meta
    # the dumped first layer equals a naive per-window computation
    dd = load_dumps(out)
    want = naive_encoder_layer(dd["enc_conv"].astype(np.float64), ck, 0, enc.heads, [104, 26])
    e = _relerr(dd["enc_layer_00"], want)
    assert e < 1e-5, e
    full = naive_encoder_layer(dd["enc_conv"].astype(np.float64), ck, 0, enc.heads, [130])
    assert _relerr(dd["enc_layer_00"], full) > 1e-3   # full attention would differ


@check
def tiny_short_clip_context_language():
    out = os.path.join(Tiny.tmp, "d060")
    r = run_ref(Tiny.model, os.path.join(Tiny.tmp, "a060.wav"), out, "--steps", "5",
                "--ignore-eos")
    assert r.returncode == 0, r.stderr
    dd = load_dumps(out)
    assert dd["mel"].shape == (128, 60) and dd["enc_conv"].shape[0] == 8
    assert dd["prompt_ids"].shape == (8 + 15 + 3,) and dd["tokens"].shape == (5,)
    ck = ref.Checkpoint(Tiny.model)
    D = json.load(open(os.path.join(Tiny.model, "config.json")))["thinker_config"]["audio_config"]["d_model"]
    naive = naive_conv_stem(dd["mel"], ck, D)   # T < 100: unpadded single chunk
    assert np.abs(naive - dd["enc_conv"]).max() < 1e-5 * max(1.0, np.abs(naive).max())
    out = os.path.join(Tiny.tmp, "d060_ctx")
    r = run_ref(Tiny.model, os.path.join(Tiny.tmp, "a060.wav"), out, "--steps", "3",
                "--context", "Names: Qwen", "--language", "english")
    assert r.returncode == 0, r.stderr
    tok = ref.Tokenizer(Tiny.model)
    ids = np.load(os.path.join(out, "prompt_ids.npy")).tolist()
    extra_c = tok.encode("system\nNames: Qwen")
    assert ids[1:1 + len(extra_c)] == extra_c
    tail = tok.encode("assistant\nlanguage English") + [tok.added["<asr_text>"]]
    assert ids[-len(tail):] == tail
    assert len(ids) == 8 + 15 + 3 + (len(extra_c) - 3) + (len(tail) - 4), len(ids)
    # unsupported inputs are refused with a message
    for wav in ("stereo.wav", "a8k.wav", "a8bit.wav"):
        r = run_ref(Tiny.model, os.path.join(Tiny.tmp, wav), os.path.join(Tiny.tmp, "dbad"))
        assert r.returncode != 0 and "16-bit PCM mono 16000 Hz" in r.stderr, r.stderr
    r = run_ref(Tiny.model, os.path.join(Tiny.tmp, "a060.wav"), os.path.join(Tiny.tmp, "dbad"),
                "--language", "Klingon")
    assert r.returncode != 0 and "unsupported language" in r.stderr


@check
def aligner_words_and_repair_as_spec():
    """The reference's aligner rules (qwen3-forced-aligner.md) on the spec's worked examples,
    which are the official code's outputs."""
    cases = [
        ("It's 10 o'clock, Mr. O\u2019Neil!", "English", "It's 10 o'clock Mr ONeil"),
        ("\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002", "Chinese", "\u4eca \u5929 \u5929 \u6c14 \u5f88 \u597d"),
        ("\u6211\u5728Qwen3-ASR\u4e0a\u8dd1\u4e862.5\u5c0f\u65f6\u7684benchmark, it's fine.", "Chinese",
         "\u6211 \u5728 Qwen3ASR \u4e0a \u8dd1 \u4e86 25 \u5c0f \u65f6 \u7684 benchmark it's fine"),
        ("Aujourd'hui, l\u2019h\u00f4tel co\u00fbte 12,50 \u20ac \u2014 tr\u00e8s cher!", "French",
         "Aujourd'hui lh\u00f4tel co\u00fbte 1250 tr\u00e8s cher"),
        ("\ubc18\uac11\uc2b5\ub2c8\ub2e4. \uc800\ub294 \ud559\uc0dd\uc785\ub2c8\ub2e4! \ud55c\uad6d\uc5b4\ub97c \uacf5\ubd80\ud574\uc694",
         "Korean", "\ubc18\uac11 \uc2b5\ub2c8\ub2e4 \uc800\ub294 \ud559\uc0dd \uc785\ub2c8\ub2e4 \ud55c\uad6d\uc5b4 \ub97c \uacf5\ubd80 \ud574\uc694"),
        ("Cafe\u0301 x\u00b2 \u01c5", "", "Cafe x\u00b2 \u01c5"),
        ("... !?", "English", ""),
    ]
    for text, lang, want in cases:
        got = " ".join(ref.align_words(text, lang))
        assert got == want, (text, got, want)
    ms = lambda classes: [80.0 * c for c in classes]  # noqa: E731
    a = ref.align_repair(ms([3, 7, 6, 12, 40, 41, 13, 2, 2, 14, 15, 15]))
    assert a == [240, 560, 560, 960, 960, 1040, 1040, 1040, 1120, 1120, 1200, 1200], a
    b = ref.align_repair(ms([2, 1, 5, 9, 8, 30, 31, 32, 10, 11, 12, 12]))
    assert b == [160, 160, 400, 720, 736, 752, 768, 784, 800, 880, 960, 960], b
    t = [0.0] + [5000.0 - 80 * i for i in range(1, 14)] + [1840.0, 1900.0]
    assert ref.align_repair(t)[7] == 919  # 919.9999999999999 in double, truncated (spec 8.2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-v", "--verbose", action="store_true", help="print tracebacks")
    ap.add_argument("--keep", metavar="DIR", help="build the tiny model and dumps in DIR and keep them")
    args = ap.parse_args()
    t0 = time.time()
    passed, failed = 0, []
    try:
        tiny_setup(args.keep)
    except Exception:
        traceback.print_exc()
        print("selfcheck: setup of the tiny model FAILED")
        return 1
    try:
        for fn in CHECKS:
            t = time.time()
            try:
                fn()
                passed += 1
                print("PASS %-34s %.2fs" % (fn.__name__, time.time() - t))
            except Exception as e:
                failed.append(fn.__name__)
                print("FAIL %-34s %s: %s" % (fn.__name__, type(e).__name__, str(e)[:300]))
                if args.verbose:
                    traceback.print_exc()
    finally:
        if not args.keep and Tiny.tmp:
            shutil.rmtree(Tiny.tmp, ignore_errors=True)
    print("selfcheck: %d passed, %d failed (%s) in %.1fs"
          % (passed, len(failed), ", ".join(failed) if failed else "none", time.time() - t0))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
