#!/usr/bin/python3
"""Write a synthetic Qwen3-ASR checkpoint in the exact official Hugging Face layout.

Usage:
    make_synthetic_model.py OUT_DIR --size {tiny,0.6b,1.7b} [--seed N] [--shards K]
                            [--no-lm-head] [--aligner]

The directory receives config.json, generation_config.json, preprocessor_config.json,
chat_template.json, tokenizer_config.json, vocab.json, merges.txt and BF16 safetensors
with the official tensor names and shapes (spec section 2.6). The non-weight files come from
tests/fixtures/qwen3-asr-0.6b (the published Qwen3-ASR-0.6B files, byte for byte):

  * 0.6b  -- all of them copied verbatim; one model.safetensors (612 tensors, ~0.94 G
             parameters incl. lm_head).
  * 1.7b  -- the same files; config.json differs only in the dimensions, set to the 1.7B
             column of spec 2.2; two shards model-0000i-of-00002.safetensors +
             model.safetensors.index.json.
  * tiny  -- small dims (encoder 64 wide x 2 layers, decoder 64 wide x 2 layers) and a
             small, self-consistent byte-level BPE tokenizer: the 256 byte tokens and the
             first 1744 merges of the real vocabulary (V0 = 2000 ids, 0..1999, the same
             strings as ids 0..1999 of the real vocabulary), followed by the same 62 added
             tokens at ids 2000..2061 (so the special ids differ from the real model and
             must be read from the files). vocab_size = 2112 (2062 rounded up to 64).
             preprocessor_config.json and chat_template.json are copied verbatim; in the
             other JSON files only what depends on the dimensions or the ids changes
             (tokenizer_config.json: the keys of added_tokens_decoder; generation_config.json
             and config.json: the token ids; config.json: the dimensions).

Changed files are edited as text (patch_json_text): key order, layout and every other value
stay exactly as published.

`--shards K` forces K shards for any size (K = 1: single model.safetensors, no index).
`--no-lm-head` omits thinker.lm_head.weight (tests the tied-embedding fallback).
`--aligner` writes a Qwen3-ForcedAligner checkpoint instead (aligner spec 2): the JSON files
come from tests/fixtures/qwen3-forced-aligner-0.6b (the published aligner's, byte for byte;
vocab.json and merges.txt are the ASR ones, as published), the head thinker.lm_head.weight is
[classify_num, H] (5000 timestamp classes of 80 ms), not tied. --size 0.6b: the published
dimensions (708 tensors, 917,728,896 parameters: the published file size); tiny: the tiny
dimensions and tokenizer above, with the aligner's 63 added tokens (<timestamp> included).

Weights are drawn from numpy's default_rng, seeded per tensor *and per row chunk* with
(seed, crc32(tensor name), chunk index), so the values do not depend on the shard layout
or on the thread schedule; thinker.lm_head.weight is generated from the seed of
thinker.model.embed_tokens.weight and is therefore bit-identical to it. Values are rounded
float32 -> bf16 with round-to-nearest-even. Large tensors are streamed in row chunks (up to
four worker threads), so memory stays bounded (~ a few hundred MB) at the real sizes.

Distributions (chosen so activations neither explode nor vanish, and so the logits have
a spread of ~3 units with clear top-1 margins; see weight_init()):
  * linear weights ~ N(0, g^2 / fan_in) with g = 1 (g = sqrt(2) for conv_out,
    g = 1/sqrt(0.425) for proj2 so the audio embeddings come out with rms ~1); biases
    ~ N(0, 0.02^2); conv weights He-scaled, N(0, 2 / (C_in * 9));
  * LayerNorm / RMSNorm weights ~ 1 + N(0, 0.05^2), LayerNorm biases ~ N(0, 0.02^2);
    q_norm ~ 2 + N(0, 0.1^2) (decoder attention scores spread ~2 units, so RoPE/mask
    errors are visible); the final decoder norm ~ G * (1 + N(0, 0.05^2)) with
    G = 3 / (0.25 * exp(0.4^2)) ~ 10.2, which sets the logit std to ~3;
  * embed_tokens (= lm_head): row v ~ N(0, (0.25 s_v)^2 / H), i.e. rows of norm ~0.25
    (small next to the residual stream, which grows to rms ~5, so the current token does
    not dominate its own next-token logit -> no trivial self-loops), with a log-normal
    row scale s_v = exp(0.4 z_v) for the ordinary tokens (heavier upper tail -> larger
    top-1/top-2 gaps than i.i.d. Gaussian logits), s_v = 1 for the 62 added tokens and
    s_v = 0.05 for the rows beyond the tokenizer (ids >= tokenizer size), which therefore
    never win the argmax, as in the real model.
Measured (fp32 reference, 32 greedy steps): logits std ~3.0; top-1/top-2 margin median
~2 units, ~1% of steps below 0.01. Per-step margins are written to meta.json by
qasr_reference.py.
"""

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import sys
import zlib
from collections import OrderedDict

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE_DIR = os.path.join(os.path.dirname(HERE), "tests", "fixtures", "qwen3-asr-0.6b")
ALIGNER_FIXTURE_DIR = os.path.join(os.path.dirname(HERE), "tests", "fixtures", "qwen3-forced-aligner-0.6b")
# The JSON files (config, tokenizer_config, ...) come from here: FIXTURE_DIR, or the aligner's
# with --aligner. vocab.json and merges.txt always come from FIXTURE_DIR.
json_dir = FIXTURE_DIR

TINY_V0 = 2000          # tiny tokenizer: ids 0..1999 = 256 bytes + first 1744 merges
CHUNK_ELEMS = 1 << 22   # elements per generated row chunk (fixed: values depend on it)

AUDIO_DIMS = {
    "tiny": dict(d_model=64, encoder_layers=2, encoder_attention_heads=4,
                 encoder_ffn_dim=128, output_dim=64, downsample_hidden_size=32),
    "0.6b": dict(d_model=896, encoder_layers=18, encoder_attention_heads=14,
                 encoder_ffn_dim=3584, output_dim=1024, downsample_hidden_size=480),
    "1.7b": dict(d_model=1024, encoder_layers=24, encoder_attention_heads=16,
                 encoder_ffn_dim=4096, output_dim=2048, downsample_hidden_size=480),
}
TEXT_DIMS = {
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=32),
    "0.6b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                 num_attention_heads=16, num_key_value_heads=8, head_dim=128),
    "1.7b": dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28,
                 num_attention_heads=16, num_key_value_heads=8, head_dim=128),
}


# ----------------------------------------------------------------------------------------
# bf16

def f32_to_bf16_bits(x):
    """float32 array -> uint16 bf16 bit patterns, round to nearest, ties to even.

    Integer ops on the uint32 view: add 0x7FFF + lsb(of the kept part), shift right 16.
    (NaN handling not needed: the generator never produces NaN.)"""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    lsb = (u >> np.uint32(16)) & np.uint32(1)
    return ((u + lsb + np.uint32(0x7FFF)) >> np.uint32(16)).astype(np.uint16)


def bf16_bits_to_f32(b):
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


# ----------------------------------------------------------------------------------------
# files

def load_json(path):
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f, object_pairs_hook=OrderedDict)


def write_json(path, obj, indent=2):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=indent, ensure_ascii=False)
        f.write("\n")


_JSON_WS = " \t\r\n"
_JSON_SCALAR = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null")


def json_spans(text):
    """Character spans of every value and every object key of a JSON document.

    -> (values, keys): values maps a path (tuple of object keys and list indices; () is the
    document) to the (start, end) of its value; keys maps the path of an object member to the
    span of its quoted key. Duplicate keys are refused (a path would be ambiguous)."""
    values, keys = {}, {}

    def ws(i):
        while i < len(text) and text[i] in _JSON_WS:
            i += 1
        return i

    def at(i):
        return text[i] if i < len(text) else ""

    def value(i, path):
        i = ws(i)
        start = i
        c = at(i)
        if c in ("{", "["):
            close, n = ("}" if c == "{" else "]"), 0
            i = ws(i + 1)
            if at(i) == close:
                i += 1
            else:
                while True:
                    if c == "{":
                        i = ws(i)
                        if at(i) != '"':
                            raise ValueError("JSON: key expected at %d" % i)
                        key, end = json.decoder.scanstring(text, i + 1)
                        if path + (key,) in keys:
                            raise ValueError("JSON: duplicate key %r" % (path + (key,),))
                        keys[path + (key,)] = (i, end)
                        i = ws(end)
                        if at(i) != ":":
                            raise ValueError("JSON: ':' expected at %d" % i)
                        i = value(i + 1, path + (key,))
                    else:
                        i = value(i, path + (n,))
                        n += 1
                    i = ws(i)
                    if at(i) == close:
                        i += 1
                        break
                    if at(i) != ",":
                        raise ValueError("JSON: ',' or %r expected at %d" % (close, i))
                    i += 1
        elif c == '"':
            _, i = json.decoder.scanstring(text, i + 1)
        else:
            m = _JSON_SCALAR.match(text, i)
            if not m:
                raise ValueError("JSON: value expected at %d" % i)
            i = m.end()
        values[path] = (start, i)
        return i

    end = ws(value(0, ()))
    if end != len(text):
        raise ValueError("JSON: trailing data at %d" % end)
    return values, keys


def _json_get(obj, path):
    for k in path:
        obj = obj[k]
    return obj


def patch_json_text(text, values=None, keys=None):
    """Edit a JSON document in place, as text: replace the values at the given paths
    ({path: new value}, each written with json.dumps) and rename the object keys at the given
    paths ({path: new key}). Every other byte (layout, key order, number spelling, a missing
    final newline) stays as it was. Every path must exist."""
    values, keys = values or {}, keys or {}
    vspans, kspans = json_spans(text)
    edits = []
    for path, val in values.items():
        if path not in vspans:
            raise KeyError("JSON: no value at %r" % (path,))
        edits.append(vspans[path] + (json.dumps(val, ensure_ascii=False),))
    for path, key in keys.items():
        if path not in kspans:
            raise KeyError("JSON: no key at %r" % (path,))
        edits.append(kspans[path] + (json.dumps(key, ensure_ascii=False),))
    edits.sort()
    for a, b in zip(edits, edits[1:]):
        if a[1] > b[0]:
            raise ValueError("JSON: overlapping edits")
    out = text
    for start, end, rep in reversed(edits):
        out = out[:start] + rep + out[end:]
    # the result must parse as the original with exactly these changes (paths name the
    # original keys: values first, then renames, deepest first)
    want = json.loads(text, object_pairs_hook=OrderedDict)
    for path, val in values.items():
        _json_get(want, path[:-1])[path[-1]] = val
    for path, key in sorted(keys.items(), key=lambda kv: -len(kv[0])):
        parent = _json_get(want, path[:-1])
        renamed = [(key if k == path[-1] else k, v) for k, v in parent.items()]
        parent.clear()
        parent.update(renamed)
    got = json.loads(out, object_pairs_hook=OrderedDict)
    if json.dumps(got) != json.dumps(want):
        raise AssertionError("patch_json_text: the edited text does not parse as intended")
    return out


def patch_json_file(src, dst, values=None, keys=None):
    """Copy the JSON file src to dst with patch_json_text's changes (byte copy if none)."""
    with open(src, "r", encoding="utf-8", newline="") as f:
        text = f.read()
    with open(dst, "w", encoding="utf-8", newline="") as f:
        f.write(patch_json_text(text, values, keys))


def bytes_to_unicode():
    """GPT-2 byte -> printable unicode character table."""
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


def build_tiny_tokenizer(out_dir, v0=TINY_V0):
    """Write vocab.json / merges.txt / tokenizer_config.json of the tiny tokenizer.

    Returns (n_tokens_total, {added content: new id})."""
    vocab = load_json(os.path.join(FIXTURE_DIR, "vocab.json"))
    inv = {i: s for s, i in vocab.items()}
    with open(os.path.join(FIXTURE_DIR, "merges.txt"), "r", encoding="utf-8") as f:
        lines = f.read().split("\n")
    header = lines[0]
    assert header.startswith("#version"), "unexpected merges.txt header"
    merges = [l for l in lines[1:] if l]
    # Verify the structure the tiny vocabulary relies on.
    byte_chars = set(bytes_to_unicode().values())
    if set(inv[i] for i in range(256)) != byte_chars:
        raise SystemExit("real vocab: ids 0..255 are not the 256 byte tokens")
    for r, m in enumerate(merges):
        a, b = m.split(" ")
        if inv.get(256 + r) != a + b:
            raise SystemExit("real vocab: id %d is not the product of merge %d" % (256 + r, r))
    k = v0 - 256
    small_merges = merges[:k]
    small_vocab = OrderedDict((inv[i], i) for i in range(v0))
    # every merge's inputs and product must be inside the small vocabulary
    for m in small_merges:
        a, b = m.split(" ")
        assert a in small_vocab and b in small_vocab and (a + b) in small_vocab
    assert len(small_vocab) == v0  # ids contiguous 0..v0-1, no duplicate strings
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(small_vocab, f, ensure_ascii=False, separators=(",", ":"))
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write(header + "\n" + "\n".join(small_merges) + "\n")

    ids = write_tokenizer_config(out_dir, v0)
    return v0 + len(ids), ids


def fixture_added_tokens():
    """[(id, added_tokens_decoder entry)] of the fixture's tokenizer_config.json, by id."""
    tc = load_json(os.path.join(json_dir, "tokenizer_config.json"))
    return sorted(((int(k), e) for k, e in tc["added_tokens_decoder"].items()), key=lambda t: t[0])


def write_tokenizer_config(out_dir, first_id):
    """The fixture's tokenizer_config.json with its added tokens moved, in id order, to the
    ids first_id, first_id + 1, ... (for a tokenizer whose vocab.json holds first_id tokens).
    Only the keys of added_tokens_decoder change; every other byte is the published file's
    (token names are referenced by content elsewhere in the file, never by id).
    Returns {content: new id}."""
    keys, ids = {}, {}
    for j, (old, entry) in enumerate(fixture_added_tokens()):
        keys[("added_tokens_decoder", str(old))] = str(first_id + j)
        ids[entry["content"]] = first_id + j
    patch_json_file(os.path.join(json_dir, "tokenizer_config.json"),
                    os.path.join(out_dir, "tokenizer_config.json"), keys=keys)
    return ids


def added_id_map(ids):
    """{fixture id: new id} of the added tokens, from write_tokenizer_config's result."""
    return {old: ids[e["content"]] for old, e in fixture_added_tokens()}


def _token_ids(doc, path=()):
    """(path, id) of every integer under a key ending in "token_id", alone or in a list."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k.endswith("token_id"):
                if isinstance(v, int) and not isinstance(v, bool):
                    yield path + (k,), v
                elif isinstance(v, list):
                    for i, x in enumerate(v):
                        if isinstance(x, int) and not isinstance(x, bool):
                            yield path + (k, i), x
            yield from _token_ids(v, path + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _token_ids(v, path + (i,))


def token_id_changes(doc, id_map):
    """{path: new id} for every token id of the document (e.g. config.json's
    thinker_config.audio_token_id, generation_config.json's eos_token_id list), mapped through
    id_map {old id: new id}."""
    found = dict(_token_ids(doc))
    missing = sorted(set(found.values()) - set(id_map))
    if missing:
        raise SystemExit("token ids %s have no counterpart in the new tokenizer" % missing)
    return {p: id_map[v] for p, v in found.items()}


def write_fixture_json(out_dir, fn, values=None, id_map=None):
    """The fixture's JSON file fn written to out_dir with only the given values changed
    ({path: value}) and, with id_map, every token id renumbered (token_id_changes); a byte
    copy when nothing changes. Returns the written document."""
    src = os.path.join(json_dir, fn)
    changes = dict(values or {})
    if id_map is not None:
        changes.update(token_id_changes(load_json(src), id_map))
    patch_json_file(src, os.path.join(out_dir, fn), values=changes)
    return load_json(os.path.join(out_dir, fn))


def config_changes(size, n_tok=None):
    """{path: value} that turn the fixture's 0.6B config.json into the given size's
    (dimensions of spec 2.2 / AUDIO_DIMS, TEXT_DIMS; for tiny also the vocabulary size,
    n_tok rounded up to a multiple of 64). Nothing for 0.6b."""
    if size == "0.6b":
        return {}
    A, T = ("thinker_config", "audio_config"), ("thinker_config", "text_config")
    ch = {A + (k,): v for k, v in AUDIO_DIMS[size].items()}
    ch[A + ("num_hidden_layers",)] = AUDIO_DIMS[size]["encoder_layers"]
    ch.update({T + (k,): v for k, v in TEXT_DIMS[size].items()})
    if size == "tiny":
        ch[T + ("vocab_size",)] = (n_tok + 63) // 64 * 64
    return ch


def write_files(out, size):
    """Every file of the checkpoint except the weights. -> (config, n_real, n_tok): n_real
    ordinary (vocab.json) tokens, n_tok with the added tokens."""
    os.makedirs(out, exist_ok=True)
    for fn in ("preprocessor_config.json", "chat_template.json"):
        shutil.copyfile(os.path.join(json_dir, fn), os.path.join(out, fn))
    if size == "tiny":
        n_tok, tok_ids = build_tiny_tokenizer(out)
        n_real = TINY_V0
        id_map = added_id_map(tok_ids)
        write_fixture_json(out, "generation_config.json", id_map=id_map)
        cfg = write_fixture_json(out, "config.json", config_changes("tiny", n_tok), id_map)
    else:
        for fn in ("vocab.json", "merges.txt"):
            shutil.copyfile(os.path.join(FIXTURE_DIR, fn), os.path.join(out, fn))
        for fn in ("tokenizer_config.json", "generation_config.json"):
            shutil.copyfile(os.path.join(json_dir, fn), os.path.join(out, fn))
        n_real = len(load_json(os.path.join(FIXTURE_DIR, "vocab.json")))
        n_tok = n_real + len(fixture_added_tokens())
        cfg = write_fixture_json(out, "config.json", config_changes(size))
    return cfg, n_real, n_tok


# ----------------------------------------------------------------------------------------
# tensors

def tensor_list(cfg, lm_head=True):
    """Ordered (name, shape) list exactly as spec 2.6."""
    th = cfg["thinker_config"]
    ac, tc = th["audio_config"], th["text_config"]
    D, F, L = ac["d_model"], ac["encoder_ffn_dim"], ac["encoder_layers"]
    C, NM, OD = ac["downsample_hidden_size"], ac["num_mel_bins"], ac["output_dim"]
    f = NM
    for _ in range(3):
        f = (f - 1) // 2 + 1
    H, I, LD = tc["hidden_size"], tc["intermediate_size"], tc["num_hidden_layers"]
    NH, NKV, HD, V = (tc["num_attention_heads"], tc["num_key_value_heads"], tc["head_dim"],
                      tc["vocab_size"])
    assert OD == H, "audio output_dim must equal the decoder hidden size"
    t = []
    a = "thinker.audio_tower."
    t += [(a + "conv2d1.weight", [C, 1, 3, 3]), (a + "conv2d1.bias", [C]),
          (a + "conv2d2.weight", [C, C, 3, 3]), (a + "conv2d2.bias", [C]),
          (a + "conv2d3.weight", [C, C, 3, 3]), (a + "conv2d3.bias", [C]),
          (a + "conv_out.weight", [D, C * f])]
    for i in range(L):
        p = a + "layers.%d." % i
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            t += [(p + "self_attn.%s.weight" % proj, [D, D]), (p + "self_attn.%s.bias" % proj, [D])]
        t += [(p + "self_attn_layer_norm.weight", [D]), (p + "self_attn_layer_norm.bias", [D]),
              (p + "fc1.weight", [F, D]), (p + "fc1.bias", [F]),
              (p + "fc2.weight", [D, F]), (p + "fc2.bias", [D]),
              (p + "final_layer_norm.weight", [D]), (p + "final_layer_norm.bias", [D])]
    t += [(a + "ln_post.weight", [D]), (a + "ln_post.bias", [D]),
          (a + "proj1.weight", [D, D]), (a + "proj1.bias", [D]),
          (a + "proj2.weight", [OD, D]), (a + "proj2.bias", [OD])]
    m = "thinker.model."
    t += [(m + "embed_tokens.weight", [V, H])]
    for i in range(LD):
        p = m + "layers.%d." % i
        t += [(p + "input_layernorm.weight", [H]),
              (p + "self_attn.q_proj.weight", [NH * HD, H]),
              (p + "self_attn.k_proj.weight", [NKV * HD, H]),
              (p + "self_attn.v_proj.weight", [NKV * HD, H]),
              (p + "self_attn.o_proj.weight", [H, NH * HD]),
              (p + "self_attn.q_norm.weight", [HD]),
              (p + "self_attn.k_norm.weight", [HD]),
              (p + "post_attention_layernorm.weight", [H]),
              (p + "mlp.gate_proj.weight", [I, H]),
              (p + "mlp.up_proj.weight", [I, H]),
              (p + "mlp.down_proj.weight", [H, I])]
    t += [(m + "norm.weight", [H])]
    if lm_head:  # the aligner's head: classify_num timestamp classes (aligner spec 2.4)
        t += [("thinker.lm_head.weight", [th.get("classify_num", V), H])]
    return t


def expected_tensor_count(cfg, lm_head=True):
    L = cfg["thinker_config"]["audio_config"]["encoder_layers"]
    LD = cfg["thinker_config"]["text_config"]["num_hidden_layers"]
    return 13 + 16 * L + 11 * LD + 2 + (1 if lm_head else 0)


EMBED_NAME = "thinker.model.embed_tokens.weight"
EMBED_ROW_TAU = 0.4                 # log-normal row scale exp(tau z)
EMBED_ROW_NORM = 0.25               # typical |row| of embed_tokens (std * sqrt(H))
LOGIT_STD = 3.0                     # target spread of the logits over the vocabulary
FINAL_NORM_GAIN = LOGIT_STD / (EMBED_ROW_NORM * float(np.exp(EMBED_ROW_TAU ** 2)))


def weight_init(name, shape, ctx):
    """-> (mean, std) for a plain Gaussian tensor, or ('embed', std) for the embedding."""
    if name == "thinker.lm_head.weight" and ctx.get("aligner"):
        return (0.0, EMBED_ROW_NORM / np.sqrt(shape[1]))  # its own classifier: logits std ~2.5
    if name in (EMBED_NAME, "thinker.lm_head.weight"):
        return ("embed", EMBED_ROW_NORM / np.sqrt(shape[1]))
    if name == "thinker.model.norm.weight":
        return (FINAL_NORM_GAIN, 0.05 * FINAL_NORM_GAIN)
    base = name.rsplit(".", 1)[0]
    leaf = base.rsplit(".", 1)[-1]
    is_bias = name.endswith(".bias")
    if "layer_norm" in leaf or leaf in ("ln_post", "input_layernorm",
                                        "post_attention_layernorm", "norm", "k_norm"):
        return (0.0, 0.02) if is_bias else (1.0, 0.05)
    if leaf == "q_norm":
        return (2.0, 0.1)
    if is_bias:
        return (0.0, 0.02)
    if leaf.startswith("conv2d"):
        fan_in = shape[1] * shape[2] * shape[3]
        return (0.0, np.sqrt(2.0 / fan_in))     # He: a GELU follows
    fan_in = shape[1]
    gain = 1.0                                   # q/k/v/o, fc1/fc2, proj1, decoder MLP
    if leaf == "proj2":
        gain = 1.0 / np.sqrt(0.425)              # E[gelu(z)^2] = 0.425 for z ~ N(0,1)
    if leaf == "conv_out":
        gain = np.sqrt(2.0)
    return (0.0, gain / np.sqrt(fan_in))


def embed_row_scales(seed, V, n_real, n_tok):
    """Row scales of embed_tokens/lm_head (see module docstring)."""
    rng = np.random.default_rng([seed, zlib.crc32(EMBED_NAME.encode()), 0xE5CA1E])
    s = np.exp(EMBED_ROW_TAU * rng.standard_normal(V)).astype(np.float32)
    s[n_real:n_tok] = 1.0
    s[n_tok:] = 0.05
    return s


def rows_per_chunk(shape):
    cols = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    return max(1, CHUNK_ELEMS // cols)


def gen_chunk(name, shape, c, ctx):
    """bf16 bits of row chunk c of tensor `name` (deterministic)."""
    rows = rows_per_chunk(shape)
    r0 = c * rows
    r1 = min(shape[0], r0 + rows)
    cols = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    init = weight_init(name, shape, ctx)
    key_name = EMBED_NAME if init[0] == "embed" else name
    rng = np.random.default_rng([ctx["seed"], zlib.crc32(key_name.encode()), c])
    x = rng.standard_normal((r1 - r0) * cols, dtype=np.float32)
    if init[0] == "embed":
        x = x.reshape(r1 - r0, cols)
        x *= (ctx["row_scale"][r0:r1] * np.float32(init[1]))[:, None]
    else:
        mean, std = init
        x *= np.float32(std)
        if mean:
            x += np.float32(mean)
    return f32_to_bf16_bits(x).tobytes()


def n_chunks(shape):
    return (shape[0] + rows_per_chunk(shape) - 1) // rows_per_chunk(shape)


def write_safetensors(path, tensors, ctx, pool):
    """tensors: list of (name, shape). Header sorted by name, data in the same order."""
    tensors = sorted(tensors, key=lambda t: t[0])
    header = OrderedDict()
    header["__metadata__"] = {"format": "pt"}
    off = 0
    for name, shape in tensors:
        nbytes = 2 * int(np.prod(shape))
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + nbytes]}
        off += nbytes
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((-len(hj)) % 8)
    with open(path, "wb") as f:
        f.write(np.uint64(len(hj)).tobytes())
        f.write(hj)
        jobs = [(name, shape, c) for name, shape in tensors for c in range(n_chunks(shape))]
        window = []
        it = iter(jobs)
        depth = 6
        for job in it:
            window.append(pool.submit(gen_chunk, job[0], job[1], job[2], ctx))
            if len(window) >= depth:
                f.write(window.pop(0).result())
        for fut in window:
            f.write(fut.result())
        written = f.tell()
    assert written == 8 + len(hj) + off, "size mismatch in %s" % path
    return off


def split_shards(tensors, k):
    """Contiguous split of the ordered list into k non-empty groups of roughly equal bytes."""
    sizes = [2 * int(np.prod(s)) for _, s in tensors]
    total, n = sum(sizes), len(tensors)
    if k > n:
        raise SystemExit("--shards %d exceeds the tensor count %d" % (k, n))
    groups = [[] for _ in range(k)]
    g, acc = 0, 0
    for i, (t, sz) in enumerate(zip(tensors, sizes)):
        if groups[g] and g < k - 1 and (acc + sz / 2 > total * (g + 1) / k or n - i <= k - 1 - g):
            g += 1
        groups[g].append(t)
        acc += sz
    assert all(groups)
    return groups


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("out_dir")
    ap.add_argument("--size", required=True, choices=["tiny", "0.6b", "1.7b"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shards", type=int, default=None,
                    help="number of safetensors shards (default: 1 for tiny/0.6b, 2 for 1.7b)")
    ap.add_argument("--no-lm-head", action="store_true",
                    help="omit thinker.lm_head.weight (tied-embedding fallback)")
    ap.add_argument("--aligner", action="store_true",
                    help="a Qwen3-ForcedAligner checkpoint (sizes tiny and 0.6b)")
    args = ap.parse_args(argv)
    global json_dir
    if args.aligner:
        if args.size == "1.7b" or args.no_lm_head:
            ap.error("--aligner: sizes tiny and 0.6b, with its head")
        json_dir = ALIGNER_FIXTURE_DIR
    shards = args.shards if args.shards is not None else (2 if args.size == "1.7b" else 1)
    if shards < 1:
        ap.error("--shards must be >= 1")

    out = args.out_dir
    cfg, n_real, n_tok = write_files(out, args.size)

    # remove stale weight files from an earlier run into the same directory
    for fn in os.listdir(out):
        if fn.endswith(".safetensors") or fn == "model.safetensors.index.json":
            os.remove(os.path.join(out, fn))

    tensors = tensor_list(cfg, lm_head=not args.no_lm_head)
    assert len(tensors) == expected_tensor_count(cfg, not args.no_lm_head)
    V = cfg["thinker_config"]["text_config"]["vocab_size"]
    ctx = {"seed": args.seed, "row_scale": embed_row_scales(args.seed, V, n_real, n_tok),
           "aligner": args.aligner}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        if shards == 1:
            total = write_safetensors(os.path.join(out, "model.safetensors"), tensors, ctx, pool)
        else:
            groups = split_shards(tensors, shards)
            weight_map = {}
            total = 0
            for i, g in enumerate(groups):
                fn = "model-%05d-of-%05d.safetensors" % (i + 1, shards)
                total += write_safetensors(os.path.join(out, fn), g, ctx, pool)
                for name, _ in g:
                    weight_map[name] = fn
            index = OrderedDict([("metadata", {"total_size": total}),
                                 ("weight_map", OrderedDict(sorted(weight_map.items())))])
            write_json(os.path.join(out, "model.safetensors.index.json"), index)
    nparam = sum(int(np.prod(s)) for _, s in tensors)
    print("wrote %s: size %s, %d tensors, %d parameters, %d bytes of weights, %d shard(s)"
          % (out, args.size, len(tensors), nparam, total, shards))
    return 0


if __name__ == "__main__":
    sys.exit(main())
