#!/usr/bin/python3
"""Malformed model directories, made at test time from the tiny synthetic checkpoints: every
file of the directory missing, empty, cut in half, garbage, a directory, a FIFO, /dev/zero or a
dangling link; every config.json key qasr reads deleted, of the wrong type, zero, absurd, and
one off; safetensors headers and tensors broken (lengths, offsets, dtypes, shapes, names), a
sharded index that points nowhere or outside the directory; tokenizer files at odds with each
other; preprocessor_config.json describing other features; an aligner given as --model and a
transcription model as --aligner.

Each case states its outcome: "ok" (the clip transcribed, exit 0) or an error: exit 3, stderr
naming the file (and for config.json the key), never an internal error, a signal, a sanitizer
report, a hang (HANG seconds, for hangs only) or more than MAX_RSS_MB of memory (an absurd size
must be refused before anything is allocated).

usage: test_model_corpus.py --bin BUILD_DIR --model TINY --aligner TINY_ALIGNER --sharded TINY_SHARDED --work DIR
"""
import argparse
import json
import os
import shutil
import struct
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testlib import Checker, ROOT  # noqa: E402

HANG = 300        # seconds: a load this long has hung (each takes well under a second)
MAX_RSS_MB = 1024  # the tiny model runs in ~60 MB (~250 MB under ASan)
CLIP = os.path.join(ROOT, "tests", "audio", "heldout-00001.wav")
SANITIZER = ("runtime error:", "AddressSanitizer", "LeakSanitizer", "internal error")
OK = "ok"


def resident_mb(pid):
    """pid's resident memory now, in MB (0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0


def error(*names):
    """The outcome of a case that must fail: exit 3 and each of names in the message."""
    return ("error",) + names


# --- whole files ---

def file_breakers(name):
    """(label, edit of path) for one file: each leaves path unusable."""
    def cut(p):
        with open(p, "r+b") as f:
            f.truncate(os.path.getsize(p) // 2)

    def garbage(p):
        with open(p, "wb") as f:
            f.write(bytes((i * 131 + 7) % 256 for i in range(4096)))

    def replace(p, make):
        os.remove(p)
        make(p)

    return [
        ("missing", os.remove),
        ("empty", lambda p: open(p, "wb").close()),
        ("cut", cut),
        ("garbage", garbage),
        ("directory", lambda p: replace(p, os.mkdir)),
        ("fifo", lambda p: replace(p, os.mkfifo)),
        ("devzero", lambda p: replace(p, lambda q: os.symlink("/dev/zero", q))),
        ("dangling", lambda p: replace(p, lambda q: os.symlink(q + ".nowhere", q))),
    ]


# --- config.json ---

AUDIO_INTS = ["num_mel_bins", "d_model", "encoder_attention_heads", "encoder_ffn_dim", "output_dim",
              "downsample_hidden_size", "n_window", "n_window_infer", "max_source_positions", "encoder_layers"]
TEXT_INTS = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
             "num_key_value_heads", "head_dim"]
THINKER_IDS = ["audio_token_id", "audio_start_token_id", "audio_end_token_id"]


def key_path(key):
    if key in AUDIO_INTS or key == "activation_function":
        return ["thinker_config", "audio_config", key]
    if key in THINKER_IDS:
        return ["thinker_config", key]
    if key in ("model_type", "support_languages"):
        return [key]
    return ["thinker_config", "text_config", key]


def config_cases():
    """(label, edit of the config dict, outcome)."""
    cases = []

    def setter(path, value, delete=False):
        def edit(c):
            d = c
            for k in path[:-1]:
                d = d[k]
            if delete:
                del d[path[-1]]
            elif callable(value):
                d[path[-1]] = value(d[path[-1]])
            else:
                d[path[-1]] = value
        return edit

    for key in AUDIO_INTS + TEXT_INTS + THINKER_IDS:
        p = key_path(key)
        named = error("config.json", key)
        wrong = {"string": "64", "null": None, "list": [64], "float": 2.5, "negative": -1, "zero": 0,
                 "absurd": 2 ** 31, "huge": 1e300}
        for label, v in wrong.items():
            if label == "zero" and key in THINKER_IDS:
                continue  # id 0 is a token like any other; the tokenizer check names it below
            cases.append((f"config.{key}.{label}", setter(p, v), named))
        # deleting: encoder_layers falls back to num_hidden_layers; head_dim to hidden_size / heads,
        # which the tiny checkpoint's projections do not have (nor the published ones)
        optional = key == "encoder_layers"
        cases.append((f"config.{key}.deleted", setter(p, None, delete=True), OK if optional else named))
        # one off: a size no tensor has, a layer count the checkpoint cannot hold, an id of another token
        if key in THINKER_IDS:
            cases.append((f"config.{key}.other_token", setter(p, lambda v: v + 1), error("config.json", key)))
        elif key != "max_source_positions":  # it only bounds the sinusoid table: one more is harmless
            cases.append((f"config.{key}.plus_one", setter(p, lambda v: v + 1), error("config.json")))
    # fewer layers than the checkpoint holds: tensors the config does not explain
    for key in ("encoder_layers", "num_hidden_layers"):
        cases.append((f"config.{key}.minus_one", setter(key_path(key), lambda v: v - 1),
                      error("config.json", key)))
    cases += [
        ("config.rms_norm_eps.zero", setter(key_path("rms_norm_eps"), 0), error("config.json", "rms_norm_eps")),
        ("config.rms_norm_eps.tiny", setter(key_path("rms_norm_eps"), 1e-86), error("config.json", "rms_norm_eps")),
        ("config.rms_norm_eps.string", setter(key_path("rms_norm_eps"), "1e-6"), error("config.json", "rms_norm_eps")),
        ("config.rope_theta.negative", setter(key_path("rope_theta"), -1e6), error("config.json", "rope_theta")),
        ("config.rope_theta.inf", setter(key_path("rope_theta"), 1e400), error("config.json", "rope_theta")),
        ("config.hidden_act.gelu", setter(key_path("hidden_act"), "gelu"), error("config.json", "hidden_act")),
        ("config.activation_function.relu", setter(key_path("activation_function"), "relu"),
         error("config.json", "activation_function")),
        ("config.model_type.other", setter(["model_type"], "whisper"), error("config.json", "model_type")),
        ("config.tie_word_embeddings.string", setter(key_path("tie_word_embeddings"), "yes"),
         error("config.json", "tie_word_embeddings")),
        ("config.support_languages.number", setter(["support_languages"], 3),
         error("config.json", "support_languages")),
        ("config.support_languages.empty_name", setter(["support_languages"], ["English", ""]),
         error("config.json", "support_languages")),
        ("config.thinker_config.list", setter(["thinker_config"], []), error("config.json", "thinker_config")),
        ("config.text_config.deleted", setter(["thinker_config", "text_config"], None, delete=True),
         error("config.json", "text_config")),
        ("config.top.list", lambda c: c.clear() or c.update({"__list__": True}), error("config.json")),
    ]
    return cases


# --- safetensors ---

def read_st(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:]


def write_st(path, header, data, raw_header=None, length=None):
    """The file with the header (padded with spaces to 8 bytes, so data stays aligned)."""
    h = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h) if length is None else length) + h + data)


def st_cases():
    """(label, edit(header, data) -> (header, data, raw_header, length) or None for in place, outcome)."""
    named = error("model.safetensors")
    norm = "thinker.model.norm.weight"

    def tensor(edit):
        def f(h, d):
            edit(h[norm])
        return f

    def first(h):
        return next(k for k in h if k != "__metadata__")

    cases = [
        ("st.length_huge", lambda h, d: (h, d, None, 2 ** 63), named),
        ("st.length_past_end", lambda h, d: (h, d, None, 10 ** 9), named),
        ("st.length_zero", lambda h, d: (h, d, None, 0), named),
        ("st.header_not_json", lambda h, d: (h, d, b"{not json" + b" " * 100, None), named),
        ("st.header_list", lambda h, d: (h, d, b"[1, 2, 3]", None), named),
        ("st.header_nul", lambda h, d: (h, d, json.dumps(h).encode()[:-1] + b"\0}", None), named),
        ("st.offsets_past_end", tensor(lambda t: t.update(data_offsets=[t["data_offsets"][0], 10 ** 9])),
         error("model.safetensors", norm)),
        ("st.offsets_reversed", tensor(lambda t: t.update(data_offsets=t["data_offsets"][::-1])),
         error("model.safetensors", norm)),
        ("st.offsets_negative", tensor(lambda t: t.update(data_offsets=[-2, t["data_offsets"][1]])),
         error("model.safetensors", norm)),
        ("st.offsets_float", tensor(lambda t: t.update(data_offsets=[0.5, t["data_offsets"][1]])),
         error("model.safetensors", norm)),
        ("st.offsets_missing", tensor(lambda t: t.pop("data_offsets")), error("model.safetensors", norm)),
        ("st.dtype_unknown", tensor(lambda t: t.update(dtype="Q7")), error("model.safetensors", norm)),
        ("st.dtype_int", tensor(lambda t: t.update(dtype="I16")), error("model.safetensors", norm)),
        ("st.dtype_f32_size", tensor(lambda t: t.update(dtype="F32")), error("model.safetensors", norm)),
        ("st.shape_size", tensor(lambda t: t.update(shape=[t["shape"][0] // 2])), error("model.safetensors", norm)),
        ("st.shape_negative", tensor(lambda t: t.update(shape=[-t["shape"][0]])), error("model.safetensors", norm)),
        ("st.shape_overflow", tensor(lambda t: t.update(shape=[2 ** 32, 2 ** 32, 2 ** 32])),
         error("model.safetensors", norm)),
        ("st.shape_string", tensor(lambda t: t.update(shape="64")), error("model.safetensors", norm)),
        ("st.shape_2d", tensor(lambda t: t.update(shape=[1, t["shape"][0]])), error("model.safetensors", norm)),
        ("st.renamed", lambda h, d: h.__setitem__(norm + "x", h.pop(norm)), error(norm)),
        ("st.metadata_list", lambda h, d: h.__setitem__("__metadata__", [1]), named),
        ("st.entry_number", lambda h, d: h.__setitem__(first(h), 5), named),
        ("st.unknown_tensor", lambda h, d: h.__setitem__("thinker.model.extra.weight", dict(h[norm])),
         error("model.safetensors", "thinker.model.extra.weight")),
    ]
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("--bin", "--model", "--aligner", "--sharded", "--work"):
        ap.add_argument(name, required=True)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    qasr = os.path.join(args.bin, "qasr")
    chk = Checker()
    cases = []  # (label, directory, extra arguments, outcome)

    def copy(label, src=args.model):
        d = os.path.join(args.work, label)
        shutil.copytree(src, d)
        return d

    def add(label, d, outcome, extra=()):
        cases.append((label, d, list(extra), outcome))

    # every file of the directory, broken each way; the files qasr does not read may break
    for name in sorted(os.listdir(args.model)):
        read = name in ("config.json", "model.safetensors", "vocab.json", "merges.txt", "tokenizer_config.json",
                        "preprocessor_config.json")
        for how, edit in file_breakers(name):
            if not read and how in ("cut", "garbage", "empty"):
                continue
            d = copy(f"file.{name}.{how}")
            edit(os.path.join(d, name))
            optional = not read or (name == "preprocessor_config.json" and how in ("missing", "dangling"))
            add(f"file.{name}.{how}", d, OK if optional else error(name))
    add("dir.missing", os.path.join(args.work, "nowhere"), error("nowhere"))
    add("dir.is_file", CLIP, error(os.path.basename(CLIP)))
    os.mkdir(os.path.join(args.work, "dir.empty"))
    add("dir.empty", os.path.join(args.work, "dir.empty"), error("config.json"))

    for label, edit, outcome in config_cases():
        d = copy(label)
        p = os.path.join(d, "config.json")
        with open(p) as f:
            c = json.load(f)
        edit(c)
        text = "[]" if c.get("__list__") else json.dumps(c)
        with open(p, "w") as f:
            f.write(text)
        add(label, d, outcome)
    for label, raw in [("config.bom", b"\xef\xbb\xbf"), ("config.trailing", None), ("config.invalid_utf8", None)]:
        d = copy(label)
        p = os.path.join(d, "config.json")
        b = open(p, "rb").read()
        b = {"config.bom": raw + b if raw else b, "config.trailing": b + b" }",
             "config.invalid_utf8": b.replace(b'"English"', b'"Engl\xffish"')}[label]
        open(p, "wb").write(b)
        add(label, d, OK if label == "config.bom" else error("config.json"))

    for label, edit, outcome in st_cases():
        d = copy(label)
        p = os.path.join(d, "model.safetensors")
        h, data = read_st(p)
        r = edit(h, data)
        if r:
            write_st(p, *r)
        else:
            write_st(p, h, data)
        add(label, d, outcome)

    # the sharded checkpoint's index
    index = "model.safetensors.index.json"

    def index_case(label, edit, outcome):
        d = copy(label, args.sharded)
        p = os.path.join(d, index)
        with open(p) as f:
            j = json.load(f)
        edit(j, d)
        with open(p, "w") as f:
            json.dump(j, f)
        add(label, d, outcome)

    norm = "thinker.model.norm.weight"
    index_case("index.shard_missing", lambda j, d: os.remove(os.path.join(d, j["weight_map"][norm])),
               error(index))
    outside = "../dir.outside/model.safetensors"  # a whole checkpoint there: only the name is wrong
    shutil.copytree(args.model, os.path.join(args.work, "dir.outside"))
    index_case("index.outside", lambda j, d: j["weight_map"].__setitem__(norm, outside), error(index, outside))
    index_case("index.absolute", lambda j, d: j["weight_map"].__setitem__(norm, "/etc/passwd"),
               error(index, "/etc/passwd"))
    index_case("index.wrong_shard", lambda j, d: j["weight_map"].__setitem__(
        norm, next(v for v in j["weight_map"].values() if v != j["weight_map"][norm])), error(norm))
    index_case("index.not_string", lambda j, d: j["weight_map"].__setitem__(norm, 3), error(index))
    index_case("index.no_weight_map", lambda j, d: j.pop("weight_map"), error(index, "weight_map"))
    # a shard's tensors all load, listed or not, as in transformers
    index_case("index.tensor_dropped", lambda j, d: j["weight_map"].pop(norm), OK)
    for how, edit in file_breakers(index):
        if how != "missing":  # without the index the shards are not found: covered by "shard_missing"
            d = copy(f"index.file.{how}", args.sharded)
            edit(os.path.join(d, index))
            add(f"index.file.{how}", d, error(index))

    # tokenizer files at odds with each other and with config.json
    def json_case(label, name, edit, outcome, src=args.model):
        d = copy(label, src)
        p = os.path.join(d, name)
        with open(p) as f:
            j = json.load(f)
        j = edit(j) or j
        with open(p, "w") as f:
            json.dump(j, f, ensure_ascii=False)
        add(label, d, outcome)

    json_case("vocab.list", "vocab.json", lambda j: list(j), error("vocab.json"))
    json_case("vocab.string_id", "vocab.json", lambda j: j.__setitem__("Ġthe", "7"), error("vocab.json"))
    json_case("vocab.negative_id", "vocab.json", lambda j: j.__setitem__(next(iter(j)), -5), error("vocab.json"))
    json_case("vocab.duplicate_id", "vocab.json", lambda j: j.__setitem__(list(j)[1], j[list(j)[0]]),
              error("vocab.json"))
    json_case("vocab.huge_id", "vocab.json", lambda j: j.__setitem__(next(iter(j)), 2 ** 31 - 1), error("vocab.json"))
    tc = "tokenizer_config.json"

    def drop_added(content):
        def edit(j):
            j["added_tokens_decoder"] = {k: v for k, v in j["added_tokens_decoder"].items() if v["content"] != content}
        return edit

    json_case("tokcfg.no_audio_token", tc, drop_added("<|audio_pad|>"), error("<|audio_pad|>"))
    json_case("tokcfg.no_im_end", tc, drop_added("<|im_end|>"), error("<|im_end|>"))
    json_case("tokcfg.id_string", tc, lambda j: j["added_tokens_decoder"].__setitem__("x", {"content": "<|y|>"}),
              error(tc))
    json_case("tokcfg.decoder_list", tc, lambda j: j.__setitem__("added_tokens_decoder", []), error(tc))
    json_case("tokcfg.content_number", tc,
              lambda j: next(iter(j["added_tokens_decoder"].values())).__setitem__("content", 5), error(tc))
    for label, lines in [("merges.one_token", ["#version: 0.2", "Ġ"]), ("merges.three_tokens", ["#version: 0.2", "Ġ Ġ Ġ"]),
                         ("merges.unknown", ["#version: 0.2", "Ġ zzzzqqq"])]:
        d = copy(label)
        with open(os.path.join(d, "merges.txt"), "a") as f:
            f.write("\n".join(lines[1:]) + "\n")
        add(label, d, error("merges.txt"))

    # features the front end does not compute
    pc = "preprocessor_config.json"
    for key, v in [("feature_size", 80), ("hop_length", 320), ("n_fft", 512), ("sampling_rate", 8000),
                   ("dither", 1.0), ("feature_size", "128")]:
        json_case(f"preproc.{key}.{v!r}", pc, lambda j, key=key, v=v: j.__setitem__(key, v), error(pc, key))
    json_case("preproc.padding_value", pc, lambda j: j.__setitem__("chunk_length", 15), OK)  # legacy, not applied

    # the two kinds of checkpoint swapped
    add("swap.aligner_as_model", args.aligner, error(args.aligner, "aligner"))
    add("swap.model_as_aligner", args.model, error(args.model, "aligner"), ["--aligner-only"])

    print(f"{len(cases)} model directories")

    def run(case):
        """(case, exit code or None if hung, stdout, stderr, peak memory in MB, seconds)."""
        label, d, extra, outcome = case
        if extra == ["--aligner-only"]:
            cmd = [qasr, "--aligner", d, "--text", "one two", "--json", CLIP]
        else:
            cmd = [qasr, "--model", d, "--json", "--max-new-tokens", "2", *extra, CLIP]
        out_path, err_path = (os.path.join(args.work, f"{label}.{s}") for s in ("out", "err"))
        t0 = time.time()
        # posix_spawn and wait4, not subprocess: the child's own peak memory, and no other
        # thread's Popen reaping it
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        pid = os.posix_spawn(cmd[0], cmd, os.environ, file_actions=[
            (os.POSIX_SPAWN_OPEN, 1, out_path, flags, 0o644), (os.POSIX_SPAWN_OPEN, 2, err_path, flags, 0o644)])
        rc, rss = None, 0
        while time.time() - t0 < HANG:
            got, status, usage = os.wait4(pid, os.WNOHANG)
            if got == pid:
                rc, rss = os.waitstatus_to_exitcode(status), usage.ru_maxrss // 1024
                break
            if resident_mb(pid) > 2 * MAX_RSS_MB:  # stopped before it takes the machine's memory
                rss = resident_mb(pid)
                os.kill(pid, 9)
            time.sleep(0.005)
        if rc is None:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        read = lambda p: open(p, "rb").read().decode(errors="replace")  # noqa: E731
        return case, rc, read(out_path), read(err_path), rss, time.time() - t0

    slowest = (0.0, "")
    with ThreadPoolExecutor(args.jobs) as pool:
        for case, rc, out, err, rss, secs in pool.map(run, cases):
            label, d, extra, outcome = case
            slowest = max(slowest, (secs, label))
            what = f"{label}: "
            if not chk.ok(rc is not None, what + f"still loading after {HANG} s (hung)"):
                continue
            chk.ok(not any(s in err for s in SANITIZER), what + f"sanitizer report or internal error:\n{err[-3000:]}")
            chk.ok(rss <= MAX_RSS_MB, what + f"peak memory {rss} MB > {MAX_RSS_MB} MB")
            if outcome == OK:
                chk.ok(rc == 0 and '"text"' in out, what + f"expected a transcript, got exit {rc}: {err[-600:]}")
                continue
            if not chk.ok(rc == 3, what + f"expected exit 3 (model), got {rc}: {err[-600:]}"):
                continue
            missing = [n for n in outcome[1:] if n not in err]
            chk.ok(not missing, what + f"the message lacks {missing}: {err.strip()[-600:]}")
    print(f"slowest load: {slowest[0]:.1f} s ({slowest[1]})")
    if chk.failures == 0:  # 335 copies of the model: kept only to reproduce a failure
        shutil.rmtree(args.work)
    return chk.result()


if __name__ == "__main__":
    sys.exit(main())
