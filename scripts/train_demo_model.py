#!/usr/bin/python3
"""Train the demo model: a small Qwen3-ASR (exact architecture and file format) on the
synthetic corpus of make_corpus.py, on the CPU, and export it as an official-layout
checkpoint. Also: greedy PyTorch inference over a manifest, and a check against the numpy
reference (scripts/qasr_reference.py).

Usage:
    train_demo_model.py train --corpus build/corpus --work build/demo-train
                              --out tests/models/qasr-demo [--steps 7000] [--seed 0]
    train_demo_model.py infer --model DIR --manifest M.tsv -o out.jsonl [--compare C.jsonl]
    train_demo_model.py check --model DIR --audio FILE.wav

Needs PyTorch (Debian 12: apt-get install python3-torch), numpy, regex, sox. Not needed by
the tests or at run time: the engine loads the exported files.

Architecture (spec sections 4-6, same tensor names and shapes as the real checkpoints,
small dimensions: DIMS below): log-mel 128 x T (qasr_reference.log_mel, the official front
end) -> conv stem per 100-frame chunk (tail chunk zero-padded to 100 frames), 3 x
Conv2d(3x3, stride 2) + GELU, channel-major flatten, conv_out, per-chunk sinusoid positions
0..12 -> pre-LN encoder layers with attention inside 104-token windows -> ln_post, proj1,
GELU, proj2 -> audio embeddings replacing the <|audio_pad|> rows of the official prompt ->
Qwen3 decoder (RMSNorm, GQA, per-head QK RMSNorm, rotate-half RoPE, SwiGLU), tied head
(exported as a bit-identical thinker.lm_head.weight, as in the real checkpoints).

Tokenizer: byte-level BPE trained here on the training texts (GPT-2 byte alphabet, the Qwen2
pre-tokenizer regex, merges by frequency, ties broken by the pair's strings), written as
vocab.json + merges.txt, then the 62 added tokens of the real tokenizer (same names and
special flags, new ids) in tokenizer_config.json. The JSON files are the published 0.6B files
of tests/fixtures/qwen3-asr-0.6b with only what depends on the dimensions or the ids changed
(write_tokenizer, write_config): preprocessor_config.json and chat_template.json are copies.

Training: teacher-forced cross-entropy on the assistant's answer
"language English<asr_text>{text}<|im_end|>" after the official prompt (empty system
context), plus an auxiliary CTC loss on the audio embeddings (a linear head that is not
exported; it makes the encoder learn fast). AdamW, warm-up then cosine decay, SpecAugment
(2 frequency and 2 time masks), length-bucketed batches. Seeded: the same command on the
same machine and software gives the same weights. 200 training entries are kept aside as a
dev set (teacher-forced token accuracy in the log); the test split is never used.
"""

import argparse
import concurrent.futures
import hashlib
import json
import math
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter, OrderedDict

# Debian's OpenBLAS 0.3.21 does not know Sapphire Rapids and falls back to SSE3 kernels;
# Haswell's AVX2 kernels are correct on any AVX2 machine and several times faster here.
os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")
# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine a spinning team
# waiting for a descheduled thread makes each step many times slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import regex

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import qasr_reference as ref            # noqa: E402  (mel, tokenizer, tables, checkpoint reader)
import make_synthetic_model as msm      # noqa: E402  (fixture files, JSON editing)
from make_synthetic_model import f32_to_bf16_bits, FIXTURE_DIR   # noqa: E402

DIMS = dict(
    audio=dict(d_model=192, encoder_layers=4, encoder_attention_heads=3, encoder_ffn_dim=768,
               downsample_hidden_size=32),
    text=dict(hidden_size=192, intermediate_size=576, num_hidden_layers=4,
              num_attention_heads=4, num_key_value_heads=2, head_dim=48),
)
BPE_MERGES = 700          # 256 byte tokens + 700 merges + 62 added tokens -> vocab 1024
DEV_SIZE = 200
PROMPT_HEAD = "<|im_start|>system\n<|im_end|>\n<|im_start|>user\n<|audio_start|>"
PROMPT_TAIL = "<|audio_end|><|im_end|>\n<|im_start|>assistant\n"


def log(msg):
    print(time.strftime("%H:%M:%S ") + msg, flush=True)


# ========================================================================================
# data

def read_manifest(path):
    rows = []
    base = os.path.dirname(os.path.abspath(path))
    with open(path, encoding="utf-8") as f:
        header = None
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            cols = line.split("\t")
            if header is None:
                header = cols
                continue
            r = dict(zip(header, cols))
            r["abspath"] = r["path"] if os.path.isabs(r["path"]) else os.path.join(base, r["path"])
            rows.append(r)
    return rows


def load_audio_16k(path):
    """Any file sox reads -> float32 mono 16 kHz (channels averaged), conditioned (spec 3)."""
    p = subprocess.run(["sox", "-R", path, "-t", "raw", "-e", "floating-point", "-b", "32",
                        "-c", "1", "-r", "16000", "-"], capture_output=True)
    if p.returncode != 0:
        raise RuntimeError("sox %s: %s" % (path, p.stderr.decode(errors="replace")))
    return ref.condition_audio(np.frombuffer(p.stdout, dtype="<f4"))


def mel_of(path):
    return ref.log_mel(load_audio_16k(path)).astype(np.float16)


def features(rows, cache_path, jobs):
    """Log-mel of every row, cached in one .npz (float16; keyed by the paths)."""
    key = hashlib.sha256("\n".join(r["abspath"] for r in rows).encode()).hexdigest()[:16]
    if os.path.exists(cache_path):
        z = np.load(cache_path)
        if str(z["key"]) == key:
            data, off = z["data"], z["off"]
            return [data[:, off[i]:off[i + 1]] for i in range(len(rows))]
    t0 = time.time()
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs) as pool:
        mels = list(pool.map(mel_of, [r["abspath"] for r in rows], chunksize=16))
    off = np.zeros(len(mels) + 1, dtype=np.int64)
    off[1:] = np.cumsum([m.shape[1] for m in mels])
    np.savez(cache_path, key=key, data=np.concatenate(mels, axis=1), off=off)
    log("features: %d files in %.0f s -> %s" % (len(rows), time.time() - t0, cache_path))
    return mels


# ========================================================================================
# tokenizer

def train_bpe(texts, extra, n_merges):
    """Byte-level BPE merges over the pre-tokenized pieces of `texts` (+ weighted extras)."""
    pre = regex.compile(ref.PRETOKENIZE_PATTERN)
    benc = ref.bytes_to_unicode()
    counts = Counter()
    for t, w in [(t, 1) for t in texts] + extra:
        for piece in pre.findall(t):
            counts["".join(benc[b] for b in piece.encode("utf-8"))] += w
    words = {w: list(w) for w in counts}
    merges = []
    for _ in range(n_merges):
        pairs = Counter()
        for w, syms in words.items():
            c = counts[w]
            for a, b in zip(syms, syms[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < 2:
            break
        merges.append(best)
        a, b = best
        for w, syms in words.items():
            if len(syms) < 2:
                continue
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            words[w] = out
    return merges


def write_tokenizer(out_dir, merges):
    """vocab.json and merges.txt of the trained BPE; tokenizer_config.json: the fixture's
    (published) file with its 62 added tokens renumbered to follow the vocabulary (only the
    keys of added_tokens_decoder change). Returns (n_tokens, {added token: id})."""
    vocab = OrderedDict((c, i) for i, c in enumerate(ref.bytes_to_unicode().values()))
    for a, b in merges:
        vocab[a + b] = len(vocab)
    assert len(vocab) == 256 + len(merges), "a merge product repeats a token"
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False, separators=(",", ":"))
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join("%s %s\n" % m for m in merges))
    ids = msm.write_tokenizer_config(out_dir, len(vocab))
    return len(vocab) + len(ids), ids


def write_config(out_dir, tok_ids, n_tok):
    """config.json, generation_config.json, preprocessor_config.json, chat_template.json:
    the fixture's (published) files, with only the demo's dimensions and token ids changed
    (edited as text: layout, key order and other values as published); the last two are
    byte copies. Returns the config."""
    A, T = ("thinker_config", "audio_config"), ("thinker_config", "text_config")
    changes = {A + (k,): v for k, v in DIMS["audio"].items()}
    changes[A + ("num_hidden_layers",)] = DIMS["audio"]["encoder_layers"]
    changes[A + ("output_dim",)] = DIMS["text"]["hidden_size"]
    changes.update({T + (k,): v for k, v in DIMS["text"].items()})
    changes[T + ("vocab_size",)] = (n_tok + 63) // 64 * 64
    id_map = msm.added_id_map(tok_ids)
    cfg = msm.write_fixture_json(out_dir, "config.json", changes, id_map)
    msm.write_fixture_json(out_dir, "generation_config.json", id_map=id_map)
    for fn in ("preprocessor_config.json", "chat_template.json"):
        shutil.copyfile(os.path.join(FIXTURE_DIR, fn), os.path.join(out_dir, fn))
    return cfg


# ========================================================================================
# model (PyTorch); imported lazily so that the module loads without torch

def build_model_classes():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    NEG = -1e9   # finite mask value: padded rows stay finite (no NaN through 0 * inf)

    def conv_len(n):
        return (n - 1) // 2 + 1

    class EncoderAttention(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.q_proj, self.k_proj = nn.Linear(d, d), nn.Linear(d, d)
            self.v_proj, self.out_proj = nn.Linear(d, d), nn.Linear(d, d)

    class EncoderLayer(nn.Module):
        def __init__(self, a):
            super().__init__()
            d = a["d_model"]
            self.self_attn = EncoderAttention(d)
            self.self_attn_layer_norm = nn.LayerNorm(d, eps=1e-5)
            self.fc1 = nn.Linear(d, a["encoder_ffn_dim"])
            self.fc2 = nn.Linear(a["encoder_ffn_dim"], d)
            self.final_layer_norm = nn.LayerNorm(d, eps=1e-5)
            self.heads = a["encoder_attention_heads"]

        def forward(self, x, mask):
            B, A, D = x.shape
            nh, hd = self.heads, D // self.heads
            h = self.self_attn_layer_norm(x)
            at = self.self_attn
            q = at.q_proj(h).view(B, A, nh, hd).transpose(1, 2)
            k = at.k_proj(h).view(B, A, nh, hd).transpose(1, 2)
            v = at.v_proj(h).view(B, A, nh, hd).transpose(1, 2)
            s = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(hd)) + mask
            o = torch.matmul(torch.softmax(s, dim=-1), v).transpose(1, 2).reshape(B, A, D)
            x = x + at.out_proj(o)
            h = self.final_layer_norm(x)
            return x + self.fc2(F.gelu(self.fc1(h)))

    class AudioTower(nn.Module):
        def __init__(self, a, out_dim):
            super().__init__()
            C, D = a["downsample_hidden_size"], a["d_model"]
            self.conv2d1 = nn.Conv2d(1, C, 3, 2, 1)
            self.conv2d2 = nn.Conv2d(C, C, 3, 2, 1)
            self.conv2d3 = nn.Conv2d(C, C, 3, 2, 1)
            f = conv_len(conv_len(conv_len(a["num_mel_bins"])))
            self.conv_out = nn.Linear(C * f, D, bias=False)
            self.layers = nn.ModuleList(EncoderLayer(a) for _ in range(a["encoder_layers"]))
            self.ln_post = nn.LayerNorm(D, eps=1e-5)
            self.proj1 = nn.Linear(D, D)
            self.proj2 = nn.Linear(D, out_dim)
            self.register_buffer("pe", torch.from_numpy(
                ref.sinusoid_table(a["max_source_positions"], D)), persistent=False)
            self.nw, self.nwi = a["n_window"], a["n_window_infer"]

        def conv_stem(self, x):
            """[N, 1, mels, W] chunks -> [N, W', D] rows (conv_out + positions)."""
            x = F.gelu(self.conv2d2(F.gelu(self.conv2d1(x))))
            x = self.conv2d3(x)
            N, C, Fq, W = x.shape
            # The last GELU after the channel-major flatten: same values, and its backward
            # then sees a contiguous gradient (Debian's torch 1.13.1 gelu backward returns
            # wrong values for a permuted gradient: 2.0 relative error measured).
            x = F.gelu(x.permute(0, 3, 1, 2).contiguous()).reshape(N, W, C * Fq)
            return self.conv_out(x) + self.pe[:W]

        def forward(self, mels):
            """list of [mels, T_i] -> (padded embeddings [B, Amax, H], lengths A_i)."""
            c = 2 * self.nw
            groups = {}        # chunk width -> list of (utt, chunk index, valid frames)
            for u, m in enumerate(mels):
                lens = ref.encoder_chunks(m.shape[1], self.nw)
                w = max(lens)
                for j, ln in enumerate(lens):
                    groups.setdefault(w, []).append((u, j, ln))
            rows = {}
            for w, items in groups.items():
                x = mels[0].new_zeros((len(items), 1, mels[0].shape[0], w))
                for n, (u, j, ln) in enumerate(items):
                    x[n, 0, :, :ln] = mels[u][:, j * c:j * c + ln]
                y = self.conv_stem(x)
                for n, (u, j, ln) in enumerate(items):
                    rows[(u, j)] = y[n, :conv_len(conv_len(conv_len(ln)))]
            seqs, wins = [], []
            for u, m in enumerate(mels):
                lens = ref.encoder_chunks(m.shape[1], self.nw)
                seqs.append(torch.cat([rows[(u, j)] for j in range(len(lens))], dim=0))
                wins.append(conv_len(conv_len(conv_len(max(lens)))) * (self.nwi // c))
            lengths = [s.shape[0] for s in seqs]
            B, Amax = len(seqs), max(lengths)
            x = nn.utils.rnn.pad_sequence(seqs, batch_first=True)
            idx = torch.arange(Amax)
            mask = torch.full((B, 1, Amax, Amax), NEG)
            for u in range(B):
                win = idx // wins[u]
                ok = (win[:, None] == win[None, :]) & (idx[None, :] < lengths[u])
                mask[u, 0][ok] = 0.0
            for layer in self.layers:
                x = layer(x, mask)
            h = F.gelu(self.proj1(self.ln_post(x)))
            return self.proj2(h), lengths

    def rms(x, w, eps):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    class RMSNorm(nn.Module):
        def __init__(self, n, eps):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(n))
            self.eps = eps

        def forward(self, x):
            return rms(x, self.weight, self.eps)

    class DecoderAttention(nn.Module):
        def __init__(self, t):
            super().__init__()
            H, hd = t["hidden_size"], t["head_dim"]
            nh, nkv = t["num_attention_heads"], t["num_key_value_heads"]
            self.q_proj = nn.Linear(H, nh * hd, bias=False)
            self.k_proj = nn.Linear(H, nkv * hd, bias=False)
            self.v_proj = nn.Linear(H, nkv * hd, bias=False)
            self.o_proj = nn.Linear(nh * hd, H, bias=False)
            self.q_norm = RMSNorm(hd, t["rms_norm_eps"])
            self.k_norm = RMSNorm(hd, t["rms_norm_eps"])
            self.nh, self.nkv, self.hd = nh, nkv, hd

    class MLP(nn.Module):
        def __init__(self, t):
            super().__init__()
            H, I = t["hidden_size"], t["intermediate_size"]
            self.gate_proj = nn.Linear(H, I, bias=False)
            self.up_proj = nn.Linear(H, I, bias=False)
            self.down_proj = nn.Linear(I, H, bias=False)

    def rotate_half(x):
        half = x.shape[-1] // 2
        return torch.cat([-x[..., half:], x[..., :half]], dim=-1)

    class DecoderLayer(nn.Module):
        def __init__(self, t):
            super().__init__()
            self.input_layernorm = RMSNorm(t["hidden_size"], t["rms_norm_eps"])
            self.self_attn = DecoderAttention(t)
            self.post_attention_layernorm = RMSNorm(t["hidden_size"], t["rms_norm_eps"])
            self.mlp = MLP(t)

        def forward(self, x, cos, sin, mask):
            B, S, _ = x.shape
            at = self.self_attn
            h = self.input_layernorm(x)
            q = at.q_norm(at.q_proj(h).view(B, S, at.nh, at.hd))
            k = at.k_norm(at.k_proj(h).view(B, S, at.nkv, at.hd))
            v = at.v_proj(h).view(B, S, at.nkv, at.hd)
            q = q * cos[:, None] + rotate_half(q) * sin[:, None]
            k = k * cos[:, None] + rotate_half(k) * sin[:, None]
            grp = at.nh // at.nkv                     # query head j uses KV head j // grp
            k = k.repeat_interleave(grp, dim=2)
            v = v.repeat_interleave(grp, dim=2)
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
            s = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(at.hd)) + mask
            o = torch.matmul(torch.softmax(s, dim=-1), v).transpose(1, 2).reshape(B, S, -1)
            x = x + at.o_proj(o)
            h = self.post_attention_layernorm(x)
            m = self.mlp
            return x + m.down_proj(F.silu(m.gate_proj(h)) * m.up_proj(h))

    class TextModel(nn.Module):
        def __init__(self, t):
            super().__init__()
            self.embed_tokens = nn.Embedding(t["vocab_size"], t["hidden_size"])
            self.layers = nn.ModuleList(DecoderLayer(t) for _ in range(t["num_hidden_layers"]))
            self.norm = RMSNorm(t["hidden_size"], t["rms_norm_eps"])
            cos, sin = ref.rope_cos_sin(np.arange(1024), t["head_dim"], float(t["rope_theta"]))
            self.register_buffer("cos", torch.from_numpy(cos), persistent=False)
            self.register_buffer("sin", torch.from_numpy(sin), persistent=False)

        def forward(self, ids, audio_rows, audio_id):
            """ids [B, S] right-padded; audio_rows [sum A, H] in row order -> hidden [B, S, H]."""
            B, S = ids.shape
            x = self.embed_tokens(ids)
            pos = (ids == audio_id).nonzero(as_tuple=True)
            x = x.index_put(pos, audio_rows)
            mask = torch.triu(torch.full((S, S), NEG), diagonal=1)
            for layer in self.layers:
                x = layer(x, self.cos[:S], self.sin[:S], mask)
            return self.norm(x)

        def logits(self, h):
            return h @ self.embed_tokens.weight.t()

    class Thinker(nn.Module):
        """Parameter names = the checkpoint's names without the "thinker." prefix."""

        def __init__(self, cfg):
            super().__init__()
            th = cfg["thinker_config"]
            self.audio_tower = AudioTower(th["audio_config"], th["text_config"]["hidden_size"])
            self.model = TextModel(th["text_config"])
            self.audio_id = th["audio_token_id"]

    return Thinker


# ========================================================================================
# checkpoint export / import

def export_safetensors(model, path, tied_head=True):
    """All parameters as BF16 (round to nearest even), official names, header sorted by name;
    thinker.lm_head.weight = the embedding (tied), unless tied_head is False (the model's own
    lm_head parameter, e.g. the forced aligner's)."""
    sd = {"thinker." + k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    if tied_head:
        sd["thinker.lm_head.weight"] = sd["thinker.model.embed_tokens.weight"]
    header = OrderedDict([("__metadata__", {"format": "pt"})])
    blobs, off = [], 0
    for name in sorted(sd):
        b = f32_to_bf16_bits(sd[name]).tobytes()
        header[name] = {"dtype": "BF16", "shape": list(sd[name].shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((-len(hj)) % 8)
    with open(path, "wb") as f:
        f.write(np.uint64(len(hj)).tobytes())
        f.write(hj)
        for b in blobs:
            f.write(b)
    return len(sd), off


def load_checkpoint(model_dir):
    """-> (torch model with the checkpoint's weights widened to fp32, config, tokenizer)."""
    import torch
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    model = build_model_classes()(cfg)
    ck = ref.Checkpoint(model_dir)
    sd = {k: torch.from_numpy(ck.get("thinker." + k).copy()) for k in model.state_dict()}
    model.load_state_dict(sd)
    model.eval()
    return model, cfg, ref.Tokenizer(model_dir)


# ========================================================================================
# training

class Prompt:
    def __init__(self, tok):
        self.tok = tok
        self.head = tok.encode(PROMPT_HEAD)
        self.tail = tok.encode(PROMPT_TAIL)
        self.pad = tok.added["<|audio_pad|>"]
        self.im_end = tok.added["<|im_end|>"]
        self.stops = {tok.added["<|im_end|>"], tok.added["<|endoftext|>"]}
        assert tok.encode(ref.build_prompt_text(5)) == self.head + [self.pad] * 5 + self.tail

    def ids(self, n_audio):
        return self.head + [self.pad] * n_audio + self.tail

    def target(self, language, text):
        return self.tok.encode("language %s<asr_text>%s" % (language, text)) + [self.im_end]


def audio_tokens(T):
    return ref.audio_token_count(T)


def make_batches(lengths, max_frames, rng):
    """Length-bucketed batches of indices, each with at most max_frames padded frames."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    batches, cur, cur_max = [], [], 0
    for i in order:
        m = max(cur_max, lengths[i])
        if cur and m * (len(cur) + 1) > max_frames:
            batches.append(cur)
            cur, m = [], lengths[i]
        cur.append(i)
        cur_max = m
    if cur:
        batches.append(cur)
    rng.shuffle(batches)
    return batches


def spec_augment(m, rng):
    """Two frequency masks (<= 16 bins) and two time masks (<= 6% of the frames each)."""
    m = m.copy()
    fill = float(m.mean())
    n_mels, T = m.shape
    for _ in range(2):
        w = rng.randint(0, 16)
        f0 = rng.randint(0, n_mels - w)
        m[f0:f0 + w] = fill
    for _ in range(2):
        w = rng.randint(0, max(1, int(0.06 * T)))
        t0 = rng.randint(0, T - w)
        m[:, t0:t0 + w] = fill
    return m


def batch_tensors(model, prompt, mels, targets):
    """Build (ids [B,S], label positions, labels) for teacher forcing."""
    import torch
    seqs, lab_pos, labels = [], [], []
    for b, (m, tgt) in enumerate(zip(mels, targets)):
        p = prompt.ids(audio_tokens(m.shape[1]))
        s = p + tgt
        for j in range(len(tgt)):
            lab_pos.append((b, len(p) - 1 + j))
            labels.append(tgt[j])
        seqs.append(s)
    S = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), S), prompt.tok.added["<|endoftext|>"], dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[b, :len(s)] = torch.tensor(s)
    pb = torch.tensor([p[0] for p in lab_pos])
    ps = torch.tensor([p[1] for p in lab_pos])
    return ids, pb, ps, torch.tensor(labels)


def forward_loss(model, ctc_head, prompt, mels_np, targets, ctc_targets, ctc_weight):
    import torch
    import torch.nn.functional as F
    mels = [torch.as_tensor(np.asarray(m), dtype=torch.get_default_dtype()) for m in mels_np]
    enc, lengths = model.audio_tower(mels)
    rows = torch.cat([enc[b, :n] for b, n in enumerate(lengths)], dim=0)
    ids, pb, ps, labels = batch_tensors(model, prompt, mels_np, targets)
    h = model.model(ids, rows, model.audio_id)
    logits = model.model.logits(h[pb, ps])
    ce = F.cross_entropy(logits, labels)
    acc = (logits.argmax(-1) == labels).float().mean()
    ctc = torch.zeros(())
    if ctc_weight > 0:
        lp = F.log_softmax(ctc_head(enc), dim=-1).transpose(0, 1)      # [Amax, B, V+1]
        tgt = torch.tensor([t for ts in ctc_targets for t in ts])
        ctc = F.ctc_loss(lp, tgt, torch.tensor(lengths), torch.tensor([len(t) for t in ctc_targets]),
                         blank=lp.shape[-1] - 1, zero_infinity=True)
    return ce, ctc, acc


def optimizer(params, args):
    """AdamW (weight decay on matrices only) and its learning rate at a step: linear warm-up over
    args.warmup steps, then cosine decay to 3% of args.lr at args.steps. -> (opt, lr_at)."""
    import torch
    opt = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.01},
                             {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98), eps=1e-8)

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        p = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * (0.03 + 0.97 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))

    return opt, lr_at


def cmd_train(args):
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    os.makedirs(args.work, exist_ok=True)
    rows = read_manifest(os.path.join(args.corpus, "train.tsv"))
    if args.limit:
        rows = rows[:args.limit]
    mels = features(rows, os.path.join(args.work, "feats-train-%d.npz" % len(rows)), args.threads)
    dev_n = min(DEV_SIZE, len(rows) // 10)
    tr_idx, dev_idx = list(range(len(rows) - dev_n)), list(range(len(rows) - dev_n, len(rows)))

    # tokenizer from the training texts only (dev and test words may still be split into
    # smaller pieces, never unknown: the byte alphabet is complete)
    out = args.out
    os.makedirs(out, exist_ok=True)
    for fn in os.listdir(out):
        os.remove(os.path.join(out, fn))
    extra = [(s, len(tr_idx)) for s in ("system\n", "user\n", "assistant\n", "language English",
                                        "language German")]
    merges = train_bpe([rows[i]["text"] for i in tr_idx], extra, BPE_MERGES)
    n_tok, tok_ids = write_tokenizer(out, merges)
    cfg = write_config(out, tok_ids, n_tok)
    tok = ref.Tokenizer(out)
    prompt = Prompt(tok)
    targets = [prompt.target(r.get("ref_language") or r["language"], r["text"]) for r in rows]
    ctc_targets = [tok.encode(r["text"]) for r in rows]
    log("tokenizer: %d merges, %d tokens (vocab_size %d); target tokens mean %.1f"
        % (len(merges), n_tok, cfg["thinker_config"]["text_config"]["vocab_size"],
           np.mean([len(t) for t in targets])))

    Thinker = build_model_classes()
    model = Thinker(cfg)
    V, H = cfg["thinker_config"]["text_config"]["vocab_size"], DIMS["text"]["hidden_size"]
    with torch.no_grad():
        model.model.embed_tokens.weight.normal_(0.0, 0.02)
    ctc_head = torch.nn.Linear(H, V + 1)
    nparam = sum(p.numel() for p in model.parameters())
    log("model: %d parameters (%.2f M), training %d utterances, dev %d"
        % (nparam, nparam / 1e6, len(tr_idx), len(dev_idx)))
    params = list(model.parameters()) + list(ctc_head.parameters())
    opt, lr_at = optimizer(params, args)

    lengths = [mels[i].shape[1] for i in tr_idx]
    batches, t0, step, hist = [], time.time(), 0, []
    aug_rng = random.Random(args.seed + 1)
    model.train()
    while step < args.steps:
        if not batches:
            batches = [[tr_idx[j] for j in b] for b in make_batches(lengths, args.batch_frames, rng)]
        b = batches.pop()
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        ms = [spec_augment(np.asarray(mels[i], dtype=np.float32), aug_rng) for i in b]
        ctc_w = args.ctc_weight * max(0.1, 1.0 - step / max(1, args.steps))
        ce, ctc, acc = forward_loss(model, ctc_head, prompt, ms, [targets[i] for i in b],
                                    [ctc_targets[i] for i in b], ctc_w)
        loss = ce + ctc_w * ctc
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        hist.append((float(ce), float(ctc), float(acc)))
        if step % args.log_every == 0 or step == args.steps:
            h = np.mean(hist, axis=0)
            hist = []
            el = time.time() - t0
            log("step %d/%d lr %.2e ce %.4f ctc %.3f acc %.4f  %.2f s/step, eta %.0f min"
                % (step, args.steps, lr_at(step), h[0], h[1], h[2], el / step,
                   el / step * (args.steps - step) / 60))
        if dev_idx and (step % args.dev_every == 0 or step == args.steps):
            model.eval()
            with torch.no_grad():
                accs = []
                for k in range(0, len(dev_idx), 32):
                    d = dev_idx[k:k + 32]
                    _, _, a = forward_loss(model, ctc_head, prompt, [mels[i] for i in d],
                                           [targets[i] for i in d], [ctc_targets[i] for i in d], 0)
                    accs.append(float(a) * len(d))
            log("dev teacher-forced token accuracy %.4f" % (sum(accs) / len(dev_idx)))
            model.train()
    model.eval()
    n_t, nbytes = export_safetensors(model, os.path.join(out, "model.safetensors"))
    torch.save({"model": model.state_dict(), "args": vars(args)}, os.path.join(args.work, "final.pt"))
    log("exported %s: %d tensors, %d bytes of bf16 weights; training took %.1f min"
        % (out, n_t, nbytes, (time.time() - t0) / 60))
    return 0


# ========================================================================================
# inference

def parse_raw(raw):
    """'language X<asr_text>text' -> (language, text), as the engine's parser (spec 9)."""
    if "<asr_text>" in raw:
        head, text = raw.split("<asr_text>", 1)
        head = head.strip()
        lang = head[len("language "):].strip() if head.startswith("language ") else ""
        return lang, text.strip()
    return "", raw.strip()


def greedy(model, prompt, mels_np, max_new):
    """Batched greedy decoding (full recomputation each step of the sequences not yet ended;
    lowest id on a tie)."""
    import torch
    mels = [torch.from_numpy(np.asarray(m, dtype=np.float32)) for m in mels_np]
    enc, lengths = model.audio_tower(mels)
    rows = [enc[b, :n] for b, n in enumerate(lengths)]
    seqs = [prompt.ids(n) for n in lengths]
    plen = [len(s) for s in seqs]
    done = [False] * len(seqs)
    out = [[] for _ in seqs]
    fill = prompt.tok.added["<|endoftext|>"]
    for step in range(max(max_new)):
        live = [b for b in range(len(seqs)) if not done[b]]
        if not live:
            break
        S = max(len(seqs[b]) for b in live)
        ids = torch.full((len(live), S), fill, dtype=torch.long)
        for i, b in enumerate(live):
            ids[i, :len(seqs[b])] = torch.tensor(seqs[b])
        h = model.model(ids, torch.cat([rows[b] for b in live], dim=0), model.audio_id)
        last = torch.stack([h[i, len(seqs[b]) - 1] for i, b in enumerate(live)])
        nxt = model.model.logits(last).argmax(-1).tolist()
        for i, b in enumerate(live):
            out[b].append(nxt[i])
            seqs[b].append(nxt[i])
            if nxt[i] in prompt.stops or len(out[b]) >= max_new[b]:
                done[b] = True
    return out, plen


def cmd_infer(args):
    rows = read_manifest(args.manifest)
    t0 = time.time()
    # features first, in fresh processes: workers forked from a process whose torch/OpenMP
    # threads already ran crawl (measured: minutes for what takes seconds)
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=args.threads, mp_context=ctx) as pool:
        mels = list(pool.map(mel_of, [r["abspath"] for r in rows], chunksize=8))
    import torch
    torch.set_num_threads(args.threads)
    model, cfg, tok = load_checkpoint(args.model)
    prompt = Prompt(tok)
    results = []
    with torch.no_grad():
        for k in range(0, len(rows), args.batch):
            idx = list(range(k, min(len(rows), k + args.batch)))
            max_new = [32 + 24 * mels[i].shape[1] // 100 for i in idx]  # the engine's default limit
            toks, _ = greedy(model, prompt, [mels[i] for i in idx], max_new)
            for i, t in zip(idx, toks):
                raw = tok.decode(t, skip_special_tokens=True)
                lang, text = parse_raw(raw)
                results.append(OrderedDict([
                    ("id", rows[i].get("id", rows[i]["path"])), ("path", rows[i]["path"]),
                    ("text", text), ("language", lang), ("raw", raw), ("token_ids", t),
                    ("truncated", t[-1] not in prompt.stops), ("error", None),
                    ("reference", rows[i].get("text"))]))
    with open(args.output, "w", encoding="utf-8") as f:
        for r in results:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    log("infer: %d files in %.1f s -> %s" % (len(rows), time.time() - t0, args.output))
    if args.compare:
        return compare(results, args.compare, args.min_agreement)
    return 0


def compare(results, other_path, min_agreement):
    """Share of entries whose text and language equal the other file's; 1 below min_agreement."""
    other = {}
    with open(other_path, encoding="utf-8") as f:
        for line in f:
            o = json.loads(line)
            other[o["id"]] = o
    same, diff = 0, []
    for r in results:
        o = other.get(r["id"])
        if o is not None and o.get("text") == r["text"] and o.get("language") == r["language"]:
            same += 1
        else:
            diff.append((r, o))
    share = 100.0 * same / max(1, len(results))
    print("agreement with %s: %d/%d (%.2f%%) identical text and language"
          % (other_path, same, len(results), share))
    for r, o in diff:
        print("  %s\n    torch: %s | %s\n    other: %s" % (
            r["id"], r["language"], r["text"],
            "missing" if o is None else "%s | %s" % (o.get("language"), o.get("text"))))
    if share < min_agreement:
        print("FAIL: agreement %.2f%% is below %.2f%%" % (share, min_agreement))
        return 1
    return 0


def cmd_check(args):
    """PyTorch forward vs the numpy reference on one clip: encoder output, logits, tokens."""
    import torch
    import tempfile
    torch.set_num_threads(args.threads)
    model, cfg, tok = load_checkpoint(args.model)
    prompt = Prompt(tok)
    with tempfile.TemporaryDirectory() as tmp:
        meta = ref.run(args.model, args.audio, tmp, steps=args.steps, verbose=False)
        enc_ref = np.load(os.path.join(tmp, "enc_out.npy"))
        logits_ref = np.load(os.path.join(tmp, "logits.npy"))
        mel = np.load(os.path.join(tmp, "mel.npy"))
    with torch.no_grad():
        enc, lengths = model.audio_tower([torch.from_numpy(mel)])
        e = enc[0, :lengths[0]].numpy()
        ids = torch.tensor([prompt.ids(lengths[0])])
        h = model.model(ids, enc[0, :lengths[0]], model.audio_id)
        lg = model.model.logits(h[0, -1]).numpy()
        toks, _ = greedy(model, prompt, [mel], [args.steps])
    rel = lambda a, b: float(np.abs(a - b).max() / max(1e-30, np.abs(b).max()))
    print("encoder output: max rel diff %.2e; logits: max rel diff %.2e; tokens %s (%d vs %d)"
          % (rel(e, enc_ref), rel(lg, logits_ref),
             "identical" if toks[0] == meta["tokens"] else "DIFFER", len(toks[0]), len(meta["tokens"])))
    print("text: %r" % tok.decode(toks[0]))
    ok = rel(e, enc_ref) < 1e-4 and rel(lg, logits_ref) < 1e-4 and toks[0] == meta["tokens"]
    return 0 if ok else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--corpus", default=os.path.join(ROOT, "build", "corpus"))
    t.add_argument("--work", default=os.path.join(ROOT, "build", "demo-train"))
    t.add_argument("--out", default=os.path.join(ROOT, "tests", "models", "qasr-demo"))
    t.add_argument("--steps", type=int, default=7000)
    t.add_argument("--batch-frames", type=int, default=10000,
                   help="padded mel frames per batch (default 10000, ~32 utterances)")
    t.add_argument("--lr", type=float, default=1.5e-3)
    t.add_argument("--warmup", type=int, default=400)
    t.add_argument("--ctc-weight", type=float, default=0.3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--limit", type=int, default=0, help="use only the first N training entries")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--log-every", type=int, default=50)
    t.add_argument("--dev-every", type=int, default=1000)
    i = sub.add_parser("infer")
    i.add_argument("--model", required=True)
    i.add_argument("--manifest", required=True)
    i.add_argument("-o", "--output", required=True)
    i.add_argument("--compare", help="JSONL (e.g. qasr-batch's) to compare text and language with")
    i.add_argument("--min-agreement", type=float, default=0.0,
                   help="with --compare: exit 1 if fewer entries (%%) agree")
    i.add_argument("--batch", type=int, default=32)
    i.add_argument("--threads", type=int, default=2)
    c = sub.add_parser("check")
    c.add_argument("--model", required=True)
    c.add_argument("--audio", required=True, help="16-bit PCM mono 16 kHz WAV")
    c.add_argument("--steps", type=int, default=40)
    c.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    return {"train": cmd_train, "infer": cmd_infer, "check": cmd_check}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
