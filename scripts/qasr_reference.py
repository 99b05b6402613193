#!/usr/bin/python3
"""Independent fp32 reference implementation of Qwen3-ASR (0.6B / 1.7B / synthetic tiny).

Usage:
    qasr_reference.py --model DIR --audio FILE.wav --dump-dir OUT
                      [--context TEXT] [--language NAME] [--steps N] [--ignore-eos]

Written from the specification (MODEL.md) only, with numpy, `regex` and the
standard library. It implements the "fp32 reference path" of spec section 12: the bf16
weights are widened to fp32 once; the mel, every activation, the KV cache and the logits
stay in fp32 without intermediate bf16 rounding; greedy argmax over fp32 logits (lowest id
on an exact tie).

Numerical choices (all are within fp32 accumulation noise of a plain fp32 implementation):
  * mel: framing/STFT/power/mel-matmul/log10 are computed in float64 from the float32
    samples, using the float32-rounded Slaney filterbank (spec 4.3 computes it in float64
    and casts to float32); the final features are cast to float32.
  * GELU: exact erf form, erf evaluated in float64 with math.erf, result cast to float32.
  * LayerNorm / RMSNorm statistics (mean, variance, mean square) are reduced in float64 and
    the normalised values cast back to float32; all matrix products are float32 BLAS;
    softmax is computed in float32 with max subtraction.
  * Sinusoid PE and RoPE tables follow the spec's float32 recipe (inv_freq and the angle
    p * inv_freq in float32; sin/cos of that float32 angle evaluated in float64, then
    rounded to float32).

Dumps into OUT (float32 .npy unless stated; the names are a fixed contract):
  mel.npy [n_mels, T]; enc_conv.npy [A, D] (conv_out + PE, padded rows dropped = input of
  encoder layer 0); enc_layer_NN.npy [A, D] (output of encoder layer NN); enc_out.npy [A, H]
  (after ln_post/proj1/GELU/proj2); prompt_ids.npy int32 [S]; dec_embed.npy [S, H] (decoder
  input after the audio merge); dec_layer_NN.npy [S, H] (prompt hidden states after decoder
  layer NN, before the final norm); logits.npy [V] (logits at the last prompt position);
  tokens.npy int32 [n] (greedy ids in generation order; a stop token, when produced, is the
  last entry). Additionally meta.json (sizes, windows, ids, decoded text, per-step
  top-1/top-2 logit margins, timings) and, with --dump-step-logits, step_logits.npy [n, V]
  (the logits each generated token was chosen from) -- informational, not part of the
  contract. Use the margins to decide which generated tokens a comparison can rely on: a
  step whose margin is below the logit error of the engine under test may legitimately flip.
"""

import argparse
import json
import math
import os
import sys
import time
import unicodedata
import wave

import numpy as np
import regex

# ========================================================================================
# safetensors

_ST_DTYPES = {"BF16": (np.uint16, 2), "F32": (np.float32, 4), "F16": (np.float16, 2)}


def bf16_to_f32(bits):
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


class Checkpoint:
    """Reads model.safetensors or a sharded set via model.safetensors.index.json."""

    def __init__(self, model_dir):
        self.dir = model_dir
        self.entries = {}   # name -> (path, dtype, shape, begin, end)
        index = os.path.join(model_dir, "model.safetensors.index.json")
        single = os.path.join(model_dir, "model.safetensors")
        if os.path.exists(index):
            with open(index, "r", encoding="utf-8") as f:
                wm = json.load(f)["weight_map"]
            files = sorted(set(wm.values()))
            for fn in files:
                self._read_header(os.path.join(model_dir, fn))
            missing = [n for n in wm if n not in self.entries]
            if missing:
                raise ValueError("index lists tensors missing from the shards: %s" % missing[:5])
            for n, fn in wm.items():
                if os.path.basename(self.entries[n][0]) != fn:
                    raise ValueError("tensor %s is not in the shard the index says (%s)" % (n, fn))
        elif os.path.exists(single):
            self._read_header(single)
        else:
            raise FileNotFoundError("no model.safetensors or model.safetensors.index.json in %s"
                                    % model_dir)

    def _read_header(self, path):
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            n = int(np.frombuffer(f.read(8), dtype="<u8")[0])
            if n <= 0 or 8 + n > size:
                raise ValueError("%s: bad safetensors header length" % path)
            header = json.loads(f.read(n).decode("utf-8"))
        base = 8 + n
        for name, e in header.items():
            if name == "__metadata__":
                continue
            if e["dtype"] not in _ST_DTYPES:
                raise ValueError("%s: unsupported dtype %s for %s" % (path, e["dtype"], name))
            b, en = e["data_offsets"]
            nbytes = _ST_DTYPES[e["dtype"]][1] * int(np.prod(e["shape"], dtype=np.int64))
            if en - b != nbytes or base + en > size:
                raise ValueError("%s: bad data_offsets for %s" % (path, name))
            if name in self.entries:
                raise ValueError("tensor %s stored twice" % name)
            self.entries[name] = (path, e["dtype"], tuple(e["shape"]), base + b, base + en)

    def has(self, name):
        return name in self.entries

    def shape(self, name):
        return self.entries[name][2]

    def raw(self, name):
        """Stored values without conversion (uint16 bit patterns for BF16)."""
        path, dt, shape, b, en = self.entries[name]
        npdt, isz = _ST_DTYPES[dt]
        count = (en - b) // isz
        return np.fromfile(path, dtype=np.dtype(npdt).newbyteorder("<"), count=count, offset=b)

    def get(self, name):
        """Tensor widened to float32 (exact for BF16/F16)."""
        dt, shape = self.entries[name][1], self.entries[name][2]
        a = self.raw(name)
        if dt == "BF16":
            a = bf16_to_f32(a)
        else:
            a = a.astype(np.float32)
        return a.reshape(shape)


# ========================================================================================
# tokenizer (Qwen2 byte-level BPE, spec 2.3)

PRETOKENIZE_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                       r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def bytes_to_unicode():
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1))
          + list(range(ord("\xae"), ord("\xff") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


class Tokenizer:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "vocab.json"), "r", encoding="utf-8") as f:
            self.vocab = json.load(f)
        self.id_to_token = {i: s for s, i in self.vocab.items()}
        with open(os.path.join(model_dir, "merges.txt"), "r", encoding="utf-8") as f:
            lines = f.read().split("\n")
        self.ranks = {}
        for line in lines:
            if not line or line.startswith("#version"):
                continue
            a, b = line.split(" ")
            self.ranks.setdefault((a, b), len(self.ranks))
        with open(os.path.join(model_dir, "tokenizer_config.json"), "r", encoding="utf-8") as f:
            tc = json.load(f)
        self.added = {}          # content -> id
        self.added_special = {}  # id -> special flag
        for sid, e in tc.get("added_tokens_decoder", {}).items():
            self.added[e["content"]] = int(sid)
            self.added_special[int(sid)] = bool(e.get("special", False))
        self.id_to_added = {i: s for s, i in self.added.items()}
        alts = sorted(self.added, key=len, reverse=True)   # longest first at one position
        self.added_re = regex.compile("|".join(regex.escape(a) for a in alts)) if alts else None
        self.pre_re = regex.compile(PRETOKENIZE_PATTERN)
        self.byte_enc = bytes_to_unicode()
        self.byte_dec = {c: b for b, c in self.byte_enc.items()}
        self.cache = {}

    def token_id(self, content):
        if content in self.added:
            return self.added[content]
        return self.vocab[content]

    def bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        parts = list(word)
        while len(parts) > 1:
            best, best_rank = None, None
            for i in range(len(parts) - 1):
                r = self.ranks.get((parts[i], parts[i + 1]))
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = (parts[i], parts[i + 1]), r
            if best is None:
                break
            merged, i = [], 0
            while i < len(parts):
                if i < len(parts) - 1 and parts[i] == best[0] and parts[i + 1] == best[1]:
                    merged.append(best[0] + best[1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        ids = []
        for p in parts:
            if p not in self.vocab:
                raise ValueError("BPE produced a symbol not in vocab.json: %r" % p)
            ids.append(self.vocab[p])
        self.cache[word] = ids
        return ids

    def pretokenize(self, text):
        """Split 'isolated': matches and any unmatched gaps are pieces, in order."""
        pieces, pos = [], 0
        for m in self.pre_re.finditer(text):
            if m.start() > pos:
                pieces.append(text[pos:m.start()])
            if m.end() > m.start():
                pieces.append(m.group(0))
            pos = m.end()
        if pos < len(text):
            pieces.append(text[pos:])
        return pieces

    def encode_plain(self, text):
        ids = []
        text = unicodedata.normalize("NFC", text)
        for piece in self.pretokenize(text):
            word = "".join(self.byte_enc[b] for b in piece.encode("utf-8"))
            ids.extend(self.bpe(word))
        return ids

    def encode(self, text):
        """Added tokens are matched first; text between them is BPE-encoded segment-wise."""
        ids, pos = [], 0
        if self.added_re is not None:
            for m in self.added_re.finditer(text):
                if m.start() > pos:
                    ids.extend(self.encode_plain(text[pos:m.start()]))
                ids.append(self.added[m.group(0)])
                pos = m.end()
        if pos < len(text):
            ids.extend(self.encode_plain(text[pos:]))
        return ids

    def decode(self, ids, skip_special_tokens=True):
        out, buf = [], bytearray()
        for i in ids:
            i = int(i)
            if i in self.id_to_added:
                if skip_special_tokens and self.added_special[i]:
                    continue
                out.append(buf.decode("utf-8", errors="replace"))
                buf = bytearray()
                out.append(self.id_to_added[i])
            elif i in self.id_to_token:
                buf.extend(self.byte_dec[c] for c in self.id_to_token[i])
            # ids beyond the tokenizer (rows of the padded vocab) decode to nothing
        out.append(buf.decode("utf-8", errors="replace"))
        return "".join(out)


# ========================================================================================
# audio (spec 3)

def read_wav(path):
    """16-bit PCM mono 16 kHz WAV -> float32 samples (int16 / 32768)."""
    try:
        w = wave.open(path, "rb")
    except (wave.Error, EOFError) as e:
        raise SystemExit("error: %s: not a readable PCM WAV file (%s); need 16-bit PCM mono "
                         "16000 Hz" % (path, e))
    with w:
        ch, sw, sr, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
        if w.getcomptype() != "NONE" or sw != 2 or ch != 1 or sr != 16000:
            raise SystemExit("error: %s: unsupported WAV format (%d channel(s), %d-bit, %d Hz, "
                             "compression %s); need 16-bit PCM mono 16000 Hz"
                             % (path, ch, 8 * sw, sr, w.getcomptype()))
        raw = w.readframes(n)
    x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / np.float32(32768.0)
    return condition_audio(x)


def condition_audio(x):
    """Spec 3 step 4: divide by the peak only if it exceeds 1, then clip to [-1, 1]."""
    x = np.asarray(x, dtype=np.float32)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 1.0:
        x = (x / np.float32(peak)).astype(np.float32)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


# ========================================================================================
# mel (spec 4)

N_FFT, HOP, SR = 400, 160, 16000


def hz_to_mel(f):
    f = np.asarray(f, dtype=np.float64)
    return np.where(f < 1000.0, 3.0 * f / 200.0,
                    15.0 + np.log(np.maximum(f, 1e-300) / 1000.0) * 27.0 / np.log(6.4))


def mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    return np.where(m < 15.0, 200.0 * m / 3.0, 1000.0 * np.exp((m - 15.0) * np.log(6.4) / 27.0))


def mel_filterbank(n_mels=128, n_fft=N_FFT, sr=SR, fmin=0.0, fmax=8000.0):
    """Slaney-scale, Slaney-normalised triangular filters, [n_fft//2+1, n_mels], float32."""
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    c = np.arange(n_fft // 2 + 1, dtype=np.float64) * (sr / 2.0) / (n_fft // 2)
    lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]
    up = (c[:, None] - lo[None, :]) / (mid - lo)[None, :]
    down = (hi[None, :] - c[:, None]) / (hi - mid)[None, :]
    w = np.maximum(0.0, np.minimum(up, down)) * (2.0 / (hi - lo))[None, :]
    return w.astype(np.float32)


def log_mel(x, n_mels=128):
    """float32 samples -> [n_mels, T] float32 features, T = N // 160."""
    x = np.asarray(x, dtype=np.float32)
    n = x.shape[0]
    if n < N_FFT // 2 + 1:
        raise SystemExit("error: audio too short: %d samples (reflect padding needs >= %d)"
                         % (n, N_FFT // 2 + 1))
    xp = np.pad(x.astype(np.float64), N_FFT // 2, mode="reflect")
    T = n // HOP
    idx = HOP * np.arange(T)[:, None] + np.arange(N_FFT)[None, :]
    win = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)
    spec = np.fft.rfft(xp[idx] * win[None, :], n=N_FFT, axis=1)
    power = spec.real ** 2 + spec.imag ** 2                       # [T, 201]
    fb = mel_filterbank(n_mels).astype(np.float64)                # float32 values
    mel = power @ fb                                              # [T, n_mels]
    L = np.log10(np.maximum(mel, 1e-10))
    L = np.maximum(L, L.max() - 8.0)
    return ((L + 4.0) / 4.0).T.astype(np.float32)


# ========================================================================================
# shared math

_SQRT1_2 = 1.0 / math.sqrt(2.0)


def gelu(x):
    """Exact GELU 0.5 x (1 + erf(x / sqrt 2)); erf via math.erf in float64."""
    x = np.asarray(x, dtype=np.float32)
    x64 = x.astype(np.float64).ravel()
    e = np.fromiter(map(math.erf, (x64 * _SQRT1_2).tolist()), dtype=np.float64, count=x64.size)
    return (0.5 * x64 * (1.0 + e)).astype(np.float32).reshape(x.shape)


def layer_norm(x, w, b, eps=1e-5):
    x64 = x.astype(np.float64)
    mu = x64.mean(axis=-1, keepdims=True)
    var = ((x64 - mu) ** 2).mean(axis=-1, keepdims=True)
    y = ((x64 - mu) / np.sqrt(var + eps)).astype(np.float32)
    return y * w + b


def rms_norm(x, w, eps):
    x64 = x.astype(np.float64)
    y = (x64 / np.sqrt((x64 * x64).mean(axis=-1, keepdims=True) + eps)).astype(np.float32)
    return y * w


def softmax(s, axis=-1):
    s = s - s.max(axis=axis, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=axis, keepdims=True)


def silu(x):
    with np.errstate(over="ignore"):
        return x / (np.float32(1.0) + np.exp(-x))


# ========================================================================================
# encoder (spec 5)

def conv_out_len(n):
    return (n - 1) // 2 + 1


def audio_token_count(T):
    """Official formula (spec 5.5), Python floor division, for n_window = 50."""
    r = T % 100
    f = (r - 1) // 2 + 1
    return ((f - 1) // 2 + 1 - 1) // 2 + 1 + 13 * (T // 100)


def encoder_chunks(T, n_window):
    """Conv chunk lengths (spec 5.1)."""
    c = 2 * n_window
    n = (T + c - 1) // c
    lens = [c] * (n - 1) + [T - c * (n - 1)]
    return lens


def encoder_windows(T, A, n_window, n_window_infer):
    """Sizes of the consecutive attention windows (spec 5.6)."""
    lens = encoder_chunks(T, n_window)
    cmax = max(lens)
    w = conv_out_len(conv_out_len(conv_out_len(cmax))) * (n_window_infer // (2 * n_window))
    return [w] * (A // w) + ([A % w] if A % w else [])


def sinusoid_table(length, channels, max_timescale=10000.0):
    """Spec 5.4, float32 recipe: [sin block | cos block]."""
    half = channels // 2
    inc = math.log(max_timescale) / (half - 1)
    inv = np.exp((np.float32(-inc) * np.arange(half, dtype=np.float32)).astype(np.float32))
    inv = inv.astype(np.float32)
    ang = (np.arange(length, dtype=np.float32)[:, None] * inv[None, :]).astype(np.float32)
    a64 = ang.astype(np.float64)
    return np.concatenate([np.sin(a64), np.cos(a64)], axis=1).astype(np.float32)


def conv2d_s2(x, w, b):
    """3x3 conv, stride 2, zero padding 1. x [N, Cin, H, W], w [Cout, Cin, 3, 3]."""
    N, Cin, H, W = x.shape
    Cout = w.shape[0]
    Ho, Wo = conv_out_len(H), conv_out_len(W)
    xp = np.zeros((N, Cin, H + 2, W + 2), dtype=np.float32)
    xp[:, :, 1:H + 1, 1:W + 1] = x
    cols = np.empty((N, Cin, 3, 3, Ho, Wo), dtype=np.float32)
    for dy in range(3):
        for dx in range(3):
            cols[:, :, dy, dx] = xp[:, :, dy:dy + 2 * Ho:2, dx:dx + 2 * Wo:2]
    cols = cols.reshape(N, Cin * 9, Ho * Wo)
    out = np.matmul(w.reshape(Cout, Cin * 9)[None], cols)    # [N, Cout, Ho*Wo]
    out += b[None, :, None]
    return out.reshape(N, Cout, Ho, Wo)


class Encoder:
    def __init__(self, ck, acfg):
        self.cfg = acfg
        p = "thinker.audio_tower."
        g = lambda n: ck.get(p + n)
        self.conv = [(g("conv2d%d.weight" % i), g("conv2d%d.bias" % i)) for i in (1, 2, 3)]
        self.conv_out = g("conv_out.weight")
        self.layers = []
        for i in range(acfg["encoder_layers"]):
            q = "layers.%d." % i
            L = {}
            for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
                L[n] = (g(q + "self_attn.%s.weight" % n), g(q + "self_attn.%s.bias" % n))
            for n in ("self_attn_layer_norm", "final_layer_norm", "fc1", "fc2"):
                L[n] = (g(q + n + ".weight"), g(q + n + ".bias"))
            self.layers.append(L)
        self.ln_post = (g("ln_post.weight"), g("ln_post.bias"))
        self.proj1 = (g("proj1.weight"), g("proj1.bias"))
        self.proj2 = (g("proj2.weight"), g("proj2.bias"))
        self.D = acfg["d_model"]
        self.heads = acfg["encoder_attention_heads"]
        self.pe = sinusoid_table(acfg["max_source_positions"], self.D)

    def conv_stem(self, mel, group=8):
        """mel [n_mels, T] -> packed rows [A, D] (conv_out + PE, padded rows dropped)."""
        nm, T = mel.shape
        nw = self.cfg["n_window"]
        lens = encoder_chunks(T, nw)
        cmax = max(lens)
        rows = []
        for g0 in range(0, len(lens), group):
            glens = lens[g0:g0 + group]
            x = np.zeros((len(glens), 1, nm, cmax), dtype=np.float32)
            for j, ln in enumerate(glens):
                s = (g0 + j) * 2 * nw
                x[j, 0, :, :ln] = mel[:, s:s + ln]
            for w, b in self.conv:
                x = gelu(conv2d_s2(x, w, b))
            n, C, F, Wd = x.shape
            flat = x.transpose(0, 3, 1, 2).reshape(n, Wd, C * F)   # index ch*F + freq
            y = np.matmul(flat, self.conv_out.T)                      # [n, Wd, D]
            y += self.pe[None, :Wd, :]
            for j, ln in enumerate(glens):
                rows.append(y[j, :conv_out_len(conv_out_len(conv_out_len(ln)))])
        return np.concatenate(rows, axis=0).astype(np.float32)

    def layer(self, x, L, windows):
        A, D = x.shape
        nh = self.heads
        hd = D // nh
        h = layer_norm(x, *L["self_attn_layer_norm"])
        q = h @ L["q_proj"][0].T + L["q_proj"][1]
        k = h @ L["k_proj"][0].T + L["k_proj"][1]
        v = h @ L["v_proj"][0].T + L["v_proj"][1]
        att = np.empty_like(q)
        scale = np.float32(1.0 / math.sqrt(hd))
        s0 = 0
        for wlen in windows:
            sl = slice(s0, s0 + wlen)
            qh = q[sl].reshape(wlen, nh, hd).transpose(1, 0, 2)
            kh = k[sl].reshape(wlen, nh, hd).transpose(1, 0, 2)
            vh = v[sl].reshape(wlen, nh, hd).transpose(1, 0, 2)
            p = softmax(np.matmul(qh, kh.transpose(0, 2, 1)) * scale)
            att[sl] = np.matmul(p, vh).transpose(1, 0, 2).reshape(wlen, D)
            s0 += wlen
        x = x + (att @ L["out_proj"][0].T + L["out_proj"][1])
        h = layer_norm(x, *L["final_layer_norm"])
        f = gelu(h @ L["fc1"][0].T + L["fc1"][1])
        return x + (f @ L["fc2"][0].T + L["fc2"][1])

    def head(self, x):
        h = layer_norm(x, *self.ln_post)
        h = gelu(h @ self.proj1[0].T + self.proj1[1])
        return h @ self.proj2[0].T + self.proj2[1]


# ========================================================================================
# decoder (spec 6)

def rope_inv_freq(head_dim, theta):
    e = (np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / np.float32(head_dim))
    return (np.float32(1.0) / np.power(np.float32(theta), e.astype(np.float32))).astype(np.float32)


def rope_cos_sin(positions, head_dim, theta):
    inv = rope_inv_freq(head_dim, theta)
    ang = (np.asarray(positions, dtype=np.float32)[:, None] * inv[None, :]).astype(np.float32)
    ang = np.concatenate([ang, ang], axis=1).astype(np.float64)
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


def apply_rope(x, cos, sin):
    """x [S, heads, hd]; cos/sin [S, hd]; rotate-half pairing (i, i + hd/2)."""
    half = x.shape[-1] // 2
    rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos[:, None, :] + rot * sin[:, None, :]


class Decoder:
    def __init__(self, ck, tcfg):
        self.cfg = tcfg
        p = "thinker.model."
        self.embed = ck.get(p + "embed_tokens.weight")
        self.lm_head_equals_embed = False
        if ck.has("thinker.lm_head.weight"):
            self.tied = False
            # The stored head normally equals the embedding (spec 2.6); share the array
            # when the stored values are identical (saves memory, same numbers).
            if (ck.entries["thinker.lm_head.weight"][1:3] == ck.entries[p + "embed_tokens.weight"][1:3]
                    and np.array_equal(ck.raw("thinker.lm_head.weight"),
                                       ck.raw(p + "embed_tokens.weight"))):
                self.lm_head = self.embed
                self.lm_head_equals_embed = True
            else:
                self.lm_head = ck.get("thinker.lm_head.weight")
        else:
            self.lm_head = self.embed
            self.tied = True
        self.norm = ck.get(p + "norm.weight")
        self.layers = []
        names = ("input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                 "self_attn.o_proj", "self_attn.q_norm", "self_attn.k_norm",
                 "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
        for i in range(tcfg["num_hidden_layers"]):
            self.layers.append({n: ck.get(p + "layers.%d.%s.weight" % (i, n)) for n in names})
        self.nh = tcfg["num_attention_heads"]
        self.nkv = tcfg["num_key_value_heads"]
        self.hd = tcfg.get("head_dim") or tcfg["hidden_size"] // self.nh
        self.eps = float(tcfg["rms_norm_eps"])
        self.theta = float(tcfg["rope_theta"])
        self.cache = [None] * len(self.layers)   # per layer: [K, V] arrays [len, nkv, hd]

    def layer(self, i, x, pos0):
        """x [s, H] for positions pos0..pos0+s-1; uses and extends the KV cache."""
        L = self.layers[i]
        s = x.shape[0]
        nh, nkv, hd = self.nh, self.nkv, self.hd
        h = rms_norm(x, L["input_layernorm"], self.eps)
        q = (h @ L["self_attn.q_proj"].T).reshape(s, nh, hd)
        k = (h @ L["self_attn.k_proj"].T).reshape(s, nkv, hd)
        v = (h @ L["self_attn.v_proj"].T).reshape(s, nkv, hd)
        q = rms_norm(q, L["self_attn.q_norm"], self.eps)
        k = rms_norm(k, L["self_attn.k_norm"], self.eps)
        cos, sin = rope_cos_sin(np.arange(pos0, pos0 + s), hd, self.theta)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        if self.cache[i] is None:
            self.cache[i] = [k, v]
        else:
            self.cache[i] = [np.concatenate([self.cache[i][0], k]),
                             np.concatenate([self.cache[i][1], v])]
        K, V = self.cache[i]
        n = K.shape[0]
        grp = nh // nkv
        kh = np.repeat(K.transpose(1, 0, 2), grp, axis=0)     # [nh, n, hd], head j -> j // grp
        vh = np.repeat(V.transpose(1, 0, 2), grp, axis=0)
        qh = q.transpose(1, 0, 2)                               # [nh, s, hd]
        sc = np.matmul(qh, kh.transpose(0, 2, 1)) * np.float32(1.0 / math.sqrt(hd))
        qpos = np.arange(pos0, pos0 + s)[:, None]
        kpos = np.arange(n)[None, :]
        sc = np.where((kpos <= qpos)[None], sc, np.float32(-np.inf))
        o = np.matmul(softmax(sc), vh).transpose(1, 0, 2).reshape(s, nh * hd)
        x = x + o @ L["self_attn.o_proj"].T
        h = rms_norm(x, L["post_attention_layernorm"], self.eps)
        m = silu(h @ L["mlp.gate_proj"].T) * (h @ L["mlp.up_proj"].T)
        return (x + m @ L["mlp.down_proj"].T).astype(np.float32)

    def logits(self, x_last):
        return rms_norm(x_last, self.norm, self.eps) @ self.lm_head.T


# ========================================================================================
# prompt (spec 7)

def build_prompt_text(n_audio, context="", language=None):
    s = ("<|im_start|>system\n" + context + "<|im_end|>\n<|im_start|>user\n<|audio_start|>"
         + "<|audio_pad|>" * n_audio + "<|audio_end|><|im_end|>\n<|im_start|>assistant\n")
    if language:
        s += "language " + language + "<asr_text>"
    return s


def normalize_language(name, supported):
    norm = name[:1].upper() + name[1:].lower()
    if supported and norm not in supported:
        raise SystemExit("error: unsupported language %r; supported: %s"
                         % (name, ", ".join(supported)))
    return norm


# ========================================================================================
# forced aligner (aligner spec: qwen3-forced-aligner.md)

ALIGN_SPACE = set(chr(c) for c in range(0x110000) if chr(c).isspace())
KOREAN_DICT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "host", "model", "data", "korean_dict_jieba.dict")


def align_clean(word):
    """Aligner spec 5.2: letters (L*), numbers (N*) and the ASCII apostrophe survive."""
    return "".join(ch for ch in word if ch == "'" or unicodedata.category(ch)[0] in "LN")


def align_is_cjk(ch):
    c = ord(ch)
    return (0x4E00 <= c <= 0x9FFF or 0x3400 <= c <= 0x4DBF or 0x20000 <= c <= 0x2A6DF
            or 0x2A700 <= c <= 0x2B73F or 0x2B740 <= c <= 0x2B81F or 0x2B820 <= c <= 0x2CEAF
            or 0xF900 <= c <= 0xFAFF)


def align_words(text, language):
    """Aligner spec 5: the words that get times. Japanese: NFKC + the default splitter (the
    official code segments with nagisa, which this project does not port)."""
    lang = (language or "").lower()
    words = []
    if lang == "korean":
        with open(KOREAN_DICT, encoding="utf-8") as f:
            entries = {ln.split()[0] for ln in f if ln.split()}
        for piece in text.split():
            toks = [piece]
            if len(piece) > 2:
                pre = [piece[:n] for n in range(2, len(piece) + 1) if piece[:n] in entries]
                if pre and len(pre[-1]) < len(piece):
                    toks = [pre[-1], piece[len(pre[-1]):]]
            words += [w for w in (align_clean(t) for t in toks) if w]
        return words
    if lang == "japanese":
        text = unicodedata.normalize("NFKC", text)
    for piece in text.split():
        run = ""
        for ch in align_clean(piece):
            if align_is_cjk(ch):
                if run:
                    words.append(run)
                words.append(ch)
                run = ""
            else:
                run += ch
        if run:
            words.append(run)
    return words


def align_repair(t):
    """Aligner spec 8.2 (fix_timestamp): keep one longest non-decreasing chain, fill the rest."""
    n = len(t)
    best, prev = [1] * n, [-1] * n
    for i in range(n):
        for j in range(i):
            if t[j] <= t[i] and best[j] + 1 > best[i]:
                best[i], prev[i] = best[j] + 1, j
    end = max(range(n), key=lambda i: (best[i], -i)) if n else -1
    kept = set()
    while end >= 0:
        kept.add(end)
        end = prev[end]
    v = [float(x) for x in t]
    i = 0
    while i < n:
        if i in kept:
            i += 1
            continue
        j = i
        while j < n and j not in kept:
            j += 1
        m = j - i
        left = v[i - 1] if i > 0 else None
        right = v[j] if j < n else None
        for k in range(i, j):
            if left is None:
                v[k] = right
            elif right is None:
                v[k] = left
            elif m <= 2:
                v[k] = left if (k - (i - 1)) <= (j - k) else right
            else:
                v[k] = left + (right - left) / (m + 1) * (k - i + 1)
        i = j
    return [int(x) for x in v]


# ========================================================================================
# driver

def load_config(model_dir):
    with open(os.path.join(model_dir, "config.json"), "r", encoding="utf-8") as f:
        return json.load(f)


def encode_audio(enc, acfg, x, dump, timings):
    """Spec sections 4-5: samples -> mel -> encoder output rows, every stage dumped.
    -> (mel, A, windows, audio embeddings [A, H])."""
    t = time.time()
    mel = log_mel(x, acfg["num_mel_bins"])
    dump("mel.npy", mel)
    T = mel.shape[1]
    timings["mel_s"] = time.time() - t
    t = time.time()
    h = enc.conv_stem(mel)
    A = h.shape[0]
    if acfg["n_window"] == 50 and A != audio_token_count(T):
        raise AssertionError("conv rows %d != formula %d" % (A, audio_token_count(T)))
    windows = encoder_windows(T, A, acfg["n_window"], acfg["n_window_infer"])
    dump("enc_conv.npy", h)
    for i, L in enumerate(enc.layers):
        h = enc.layer(h, L, windows)
        dump("enc_layer_%02d.npy" % i, h)
    audio_emb = enc.head(h).astype(np.float32)
    dump("enc_out.npy", audio_emb)
    timings["encoder_s"] = time.time() - t
    return mel, A, windows, audio_emb


def prompt_pass(dec, ids, audio_id, audio_emb, dump):
    """Spec section 6: the prompt's embeddings with the audio rows replaced by the encoder output,
    then every decoder layer over all of it (causal, positions from 0), each dumped.
    -> the last layer's hidden states [S, H] (before the final norm)."""
    pos = np.nonzero(ids == audio_id)[0]
    if len(pos) != len(audio_emb):
        raise AssertionError("prompt has %d audio placeholders, encoder gave %d rows"
                             % (len(pos), len(audio_emb)))
    e = dec.embed[ids].copy()
    e[pos] = audio_emb
    dump("dec_embed.npy", e)
    hs = e
    for i in range(len(dec.layers)):
        hs = dec.layer(i, hs, 0)
        dump("dec_layer_%02d.npy" % i, hs)
    return hs


def run(model_dir, audio_path, dump_dir, context="", language=None, steps=32,
        ignore_eos=False, verbose=True, dump_step_logits=False):
    t_start = time.time()
    timings = {}
    cfg = load_config(model_dir)
    th = cfg["thinker_config"]
    acfg, tcfg = th["audio_config"], th["text_config"]
    tok = Tokenizer(model_dir)
    audio_id = th["audio_token_id"]
    if tok.added.get("<|audio_pad|>", audio_id) != audio_id:
        raise SystemExit("error: config audio_token_id %d != tokenizer <|audio_pad|> id %d"
                         % (audio_id, tok.added["<|audio_pad|>"]))
    stop_ids = {tok.added["<|im_end|>"], tok.added["<|endoftext|>"]}
    if language:
        language = normalize_language(language, cfg.get("support_languages"))
    os.makedirs(dump_dir, exist_ok=True)

    def dump(name, arr, dtype=np.float32):
        np.save(os.path.join(dump_dir, name), np.ascontiguousarray(arr, dtype=dtype))

    t = time.time()
    ck = Checkpoint(model_dir)
    enc = Encoder(ck, acfg)
    dec = Decoder(ck, tcfg)
    timings["load_s"] = time.time() - t

    # ---- audio -> mel -> encoder
    x = read_wav(audio_path)
    mel, A, windows, audio_emb = encode_audio(enc, acfg, x, dump, timings)
    T = mel.shape[1]

    # ---- prompt + embedding merge
    t = time.time()
    ids = tok.encode(build_prompt_text(A, context, language))
    ids_arr = np.array(ids, dtype=np.int64)
    dump("prompt_ids.npy", ids_arr, np.int32)
    S = len(ids)

    # ---- decoder prompt pass
    hs = prompt_pass(dec, ids_arr, audio_id, audio_emb, dump)
    logits = dec.logits(hs[-1:])[0]
    dump("logits.npy", logits)
    timings["prefill_s"] = time.time() - t

    # ---- greedy decoding with the KV cache
    t = time.time()
    tokens, margins, stop = [], [], "steps"
    cur = logits
    step_logits = []
    while len(tokens) < steps:
        if dump_step_logits:
            step_logits.append(cur)
        nxt = int(np.argmax(cur))                 # first maximum = lowest id on a tie
        top2 = np.partition(cur, -2)[-2:]
        margins.append(float(top2[1] - top2[0]))
        tokens.append(nxt)
        if nxt in stop_ids and not ignore_eos:
            stop = "eos"
            break
        if len(tokens) >= steps:
            break
        hs = dec.embed[nxt][None, :].copy()
        p = S + len(tokens) - 1
        for i in range(len(dec.layers)):
            hs = dec.layer(i, hs, p)
        cur = dec.logits(hs)[0]
    dump("tokens.npy", np.array(tokens, dtype=np.int64), np.int32)
    if dump_step_logits:
        dump("step_logits.npy", np.stack(step_logits))
    timings["decode_s"] = time.time() - t
    timings["total_s"] = time.time() - t_start

    text = tok.decode(tokens, skip_special_tokens=True)
    meta = {
        "model": os.path.abspath(model_dir), "audio": os.path.abspath(audio_path),
        "n_samples": int(x.shape[0]), "T": int(T), "A": int(A), "S": int(S),
        "windows": windows, "context": context, "language": language,
        "lm_head": "embed_tokens (tied fallback)" if dec.tied else "thinker.lm_head.weight",
        "lm_head_equals_embed": dec.lm_head_equals_embed,
        "stop_ids": sorted(stop_ids), "stop": stop, "tokens": tokens, "text": text,
        "margins": margins,
        "logits_stats": {"mean": float(logits.mean()), "std": float(logits.std()),
                         "max": float(logits.max()), "min": float(logits.min())},
        "timings": timings,
    }
    with open(os.path.join(dump_dir, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
    if verbose:
        print("T=%d A=%d S=%d windows=%s tokens=%d stop=%s" % (T, A, S, windows, len(tokens), stop))
        print("min top1-top2 margin %.4g, logits std %.3f" %
              (min(margins) if margins else float("nan"), float(logits.std())))
        print("text: %r" % text)
        print("timings: " + ", ".join("%s %.2f" % kv for kv in timings.items()))
    return meta


def run_align(model_dir, audio_path, dump_dir, text, language=None, verbose=True):
    """Aligner spec 1: audio + transcript -> words with start/end ms. Dumps mel, enc_*,
    prompt_ids, dec_embed, dec_layer_NN as run() does, plus slot_logits.npy [slots, classes],
    classes.npy int32 [slots], times_ms.npy int32 [slots] (after the repair) and meta.json
    (words, their times)."""
    cfg = load_config(model_dir)
    th = cfg["thinker_config"]
    if "forced_aligner" not in th.get("model_type", ""):
        raise SystemExit("error: %s is not a forced aligner checkpoint" % model_dir)
    acfg, tcfg = th["audio_config"], th["text_config"]
    tok = Tokenizer(model_dir)
    ts_id, ms_per_class = cfg["timestamp_token_id"], cfg["timestamp_segment_time"]
    os.makedirs(dump_dir, exist_ok=True)

    def dump(name, arr, dtype=np.float32):
        np.save(os.path.join(dump_dir, name), np.ascontiguousarray(arr, dtype=dtype))

    ck = Checkpoint(model_dir)
    enc, dec = Encoder(ck, acfg), Decoder(ck, tcfg)
    mel, A, windows, audio_emb = encode_audio(enc, acfg, read_wav(audio_path), dump, {})
    T = mel.shape[1]

    words = align_words(text, language)
    prompt = ("<|audio_start|>" + "<|audio_pad|>" * A + "<|audio_end|>"
              + "<timestamp><timestamp>".join(words) + "<timestamp><timestamp>")
    ids = np.array(tok.encode(prompt), dtype=np.int64)
    dump("prompt_ids.npy", ids, np.int32)
    slots = np.nonzero(ids == ts_id)[0]
    assert len(slots) == 2 * max(len(words), 1), (len(slots), len(words))
    hs = prompt_pass(dec, ids, th["audio_token_id"], audio_emb, dump)
    logits = dec.logits(hs[slots])          # the rows AT the slots (aligner spec 7.4)
    dump("slot_logits.npy", logits)
    classes = [int(np.argmax(r)) for r in logits]
    top2 = np.sort(logits, axis=1)[:, -2:]
    ms = align_repair([c * float(ms_per_class) for c in classes])
    dump("classes.npy", np.array(classes), np.int32)
    dump("times_ms.npy", np.array(ms), np.int32)
    items = [{"word": w, "start_ms": ms[2 * k], "end_ms": ms[2 * k + 1]} for k, w in enumerate(words)]
    meta = {"model": os.path.abspath(model_dir), "audio": os.path.abspath(audio_path),
            "T": int(T), "A": int(A), "S": int(len(ids)), "windows": windows, "text": text,
            "language": language, "words": items, "classes": classes,
            "margins": [float(m) for m in top2[:, 1] - top2[:, 0]]}
    with open(os.path.join(dump_dir, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
    if verbose:
        print("T=%d A=%d S=%d words=%d" % (T, A, len(ids), len(words)))
        for it in items:
            print("%8d %8d  %s" % (it["start_ms"], it["end_ms"], it["word"]))
    return meta


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--model", required=True, help="checkpoint directory")
    ap.add_argument("--audio", required=True, help="16-bit PCM mono 16 kHz WAV")
    ap.add_argument("--dump-dir", required=True, help="output directory for the .npy dumps")
    ap.add_argument("--context", default="", help="context string for the system block")
    ap.add_argument("--language", default=None, help="force the language (e.g. English)")
    ap.add_argument("--steps", type=int, default=32, help="max generated tokens (default 32)")
    ap.add_argument("--ignore-eos", action="store_true", help="do not stop on stop tokens")
    ap.add_argument("--align-text", default=None,
                    help="forced aligner checkpoint: align this transcript instead of "
                         "transcribing (words and times in meta.json; --language picks the splitter)")
    ap.add_argument("--dump-step-logits", action="store_true",
                    help="also write step_logits.npy [n, V]: the logits each generated token "
                         "was selected from (row 0 = logits.npy); not part of the fixed contract")
    args = ap.parse_args(argv)
    if args.steps < 1:
        ap.error("--steps must be >= 1")
    if args.align_text is not None:
        run_align(args.model, args.audio, args.dump_dir, args.align_text, args.language)
        return 0
    run(args.model, args.audio, args.dump_dir, args.context, args.language, args.steps,
        args.ignore_eos, dump_step_logits=args.dump_step_logits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
