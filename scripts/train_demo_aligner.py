#!/usr/bin/python3
"""Train the demo aligner: a small Qwen3-ForcedAligner (exact architecture and file format)
on synthetic speech with known word times, on the CPU, and export it as an official-layout
checkpoint. Also: held-out evaluation through the engine (qasr --aligner --text), and a
check of the exported weights against the numpy reference (scripts/qasr_reference.py).

Usage (the bundled model: data, then two training stages; ~9 + 26 + 26 min on 2 cores):
    train_demo_aligner.py data [--work build/aligner-train] [--sentences 2400] [--variants 3]
    train_demo_aligner.py train --out build/aligner-stage1 [--steps 2400] [--seed 0]
    train_demo_aligner.py train --init build/aligner-stage1 --shuffle-seed 1 --steps 2400
                                --lr 5e-4 --warmup 100 --out tests/models/qasr-demo-aligner
    train_demo_aligner.py export --work build/aligner-train --out DIR   (the last saved state)
    train_demo_aligner.py eval --qasr build/qasr --model tests/models/qasr-demo-aligner
                               [--n 200] [--seed 12] [--work build/aligner-eval]
    train_demo_aligner.py check --model tests/models/qasr-demo-aligner [--work DIR]

`train` makes the data itself when WORK has no cache of it (`data` only makes it first).
`eval` prints the mean absolute boundary error and the shares within 80 / 160 ms per language
(and for the held-out voice), next to a blind baseline that spreads the words over the clip.
`check`: PyTorch forward of the exported weights vs scripts/qasr_reference.py --align-text on
the first held-out clip (slot logits to 1e-4 relative, identical classes).

Needs PyTorch (Debian 12: python3-torch), numpy, regex, espeak-ng. Not needed by the engine.

Data with exact word times (make_clip): a sentence from make_corpus.py's English/German
generators (entry_params: language, espeak-ng voice with variant, speed, pitch), each word
synthesised on its own by espeak-ng (one process per word; the piece of the written sentence
with its outer punctuation stripped, so "twenty-one" is spoken as one word, as the aligner's
splitter makes it one word), resampled to 16 kHz and trimmed to its speech (first and last
5 ms frame above -45 dB of the word's loudest frame: espeak's silence is digital zero, so
this keeps weak fricatives). The words are joined with random gaps (10%: 0-30 ms, 75%:
30-400 ms, 15%: 400-900 ms), 50-800 ms of lead and 50-600 ms of trail, white/pink/brown noise
at 10-40 dB below the speech RMS (none for a fifth), a peak level of -25 to -1 dBFS, and 16-bit
quantisation. Every word's start and end (ms) is known to the sample. Each rendered sentence
is composed `--variants` times (new gaps, noise and level) for training. Training sentences
skip the held-out set's sentences; the held-out set (seed 12, make_corpus's "test" split
parameters, so every fourth item uses the voice variant f3 that no training item uses) is never
trained on. espeak-ng's continuous sentences are not used: its word gap option (-g) and SSML
breaks are not applied between every pair of words (measured), so no exact word times.

Model: the demo ASR model's dimensions (train_demo_model.DIMS) and its PyTorch modules
(train_demo_model.build_model_classes), initialised from tests/models/qasr-demo (encoder,
decoder and embeddings; a head start: the encoder already hears these voices), plus the
aligner's head thinker.lm_head.weight [classify_num = 5000, H], not tied, as published.
Tokenizer: the demo model's vocab.json and merges.txt, then the aligner's 63 added tokens
(the demo's 62 at the same ids, <timestamp> after them). The JSON files are the published
aligner's (tests/fixtures/qwen3-forced-aligner-0.6b) with only dimensions and ids changed.

Input and loss as the aligner spec (sections 6-8): "<|audio_start|>" + A x "<|audio_pad|>" +
"<|audio_end|>" + word1 <timestamp><timestamp> word2 ..., causal decoder over positions
0..L-1, final norm, head read AT each <timestamp> position; slot 2k is word k's start, 2k+1
its end, class = time / 80 ms (timestamp_segment_time as published). Loss: cross-entropy
against a soft target, a Gaussian (sigma 0.5 class) around the exact time / 80 over the
neighbouring classes, so the argmax learns round(ms / 80) and near misses cost less.
AdamW, warm-up then cosine decay, length-bucketed batches, seeded.
"""

import argparse
import concurrent.futures
import json
import os
import random
import subprocess
import sys
import time
import wave

os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import qasr_reference as ref            # noqa: E402  (mel, tokenizer, word splitter, repair)
import make_corpus as mc                # noqa: E402  (sentences, voices)
import make_synthetic_model as msm      # noqa: E402  (fixture JSON editing)
import train_demo_model as tdm          # noqa: E402  (modules, export, tokenizer/config writers)

DEMO_ASR = os.path.join(ROOT, "tests", "models", "qasr-demo")
EVAL_SEED = 12          # the held-out set: make_corpus "test" split parameters, this seed
TRAIN_SPLIT = "align-train"
EVAL_SPLIT = "test"
ESPEAK_SR = 22050
SR = 16000


def log(msg):
    print(time.strftime("%H:%M:%S ") + msg, flush=True)


# ========================================================================================
# data: words synthesised one at a time, joined with known gaps

def espeak_word(word, voice, speed, pitch):
    """One word through espeak-ng -> float32 16 kHz samples, trimmed to its speech."""
    p = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch),
                        "--stdout", word], capture_output=True)
    if p.returncode != 0:
        raise RuntimeError("espeak-ng %r: %s" % (word, p.stderr.decode(errors="replace")))
    raw = p.stdout
    k = raw.find(b"data", 12)
    x = np.frombuffer(raw[k + 8:len(raw) - (len(raw) - k - 8) % 2], dtype="<i2").astype(np.float64)
    x /= 32768.0
    # FFT resampling 22050 -> 16000 Hz (the render starts and ends in digital silence)
    n_out = int(round(len(x) * SR / ESPEAK_SR))
    X = np.fft.rfft(x)
    Y = np.zeros(n_out // 2 + 1, dtype=complex)
    m = min(len(X), len(Y))
    Y[:m] = X[:m]
    y = np.fft.irfft(Y, n_out) * (n_out / len(x))
    f = SR // 200                                   # 5 ms frames
    e = np.sqrt(np.mean(y[:len(y) // f * f].reshape(-1, f) ** 2, axis=1))
    on = np.nonzero(e > e.max() * 10 ** (-45 / 20))[0]
    if len(on) == 0:
        raise RuntimeError("espeak-ng %r: no speech" % word)
    return y[on[0] * f:(on[-1] + 1) * f].astype(np.float32)


def sentence_params(seed, split, i):
    """(text, language, voice, speed, pitch) of item i: make_corpus's generators."""
    p, r = mc.entry_params(seed, split, i)
    return mc.draw_sentence(r, p["lang"]), p["lang"], p["voice"], p["speed"], p["pitch"]


def colored_noise(n, kind, rng):
    """Unit-RMS white, pink (1/f power) or brown (1/f^2) noise of n samples."""
    w = rng.standard_normal(n)
    if kind != "whitenoise":
        W = np.fft.rfft(w)
        f = np.maximum(np.arange(len(W)), 1.0)
        W /= f ** (0.5 if kind == "pinknoise" else 1.0)
        w = np.fft.irfft(W, n)
    return w / max(1e-12, np.sqrt(np.mean(w ** 2)))


def compose(words_audio, rng):
    """Join trimmed words with random gaps, add noise and level -> (int16-exact float32
    samples, [(start_ms, end_ms)] per word)."""
    def gap():
        u = rng.random()
        return rng.uniform(0, 0.03) if u < 0.1 else rng.uniform(0.03, 0.4) if u < 0.85 else rng.uniform(0.4, 0.9)
    pieces, times, pos = [], [], int(rng.uniform(0.05, 0.8) * SR)
    pieces.append(np.zeros(pos, dtype=np.float32))
    for k, w in enumerate(words_audio):
        if k:
            g = int(gap() * SR)
            pieces.append(np.zeros(g, dtype=np.float32))
            pos += g
        times.append((pos / 16.0, (pos + len(w)) / 16.0))
        pieces.append(w)
        pos += len(w)
    pieces.append(np.zeros(int(rng.uniform(0.05, 0.6) * SR), dtype=np.float32))
    x = np.concatenate(pieces).astype(np.float64)
    speech = np.concatenate(words_audio)
    if rng.random() >= 0.2:
        nrng = np.random.default_rng(rng.getrandbits(32))
        rms = np.sqrt(np.mean(speech.astype(np.float64) ** 2))
        kind = rng.choice(mc.NOISES)
        x += colored_noise(len(x), kind, nrng) * rms * 10 ** (-rng.uniform(10, 40) / 20)
    x *= 10 ** (rng.uniform(-25, -1) / 20) / max(1e-9, np.abs(x).max())
    x = np.round(x * 32767) / 32768.0
    return x.astype(np.float32), times


def render_sentence(job):
    """(seed, split, index, variants) -> list of (samples, times, text, language, voice):
    the sentence's words rendered once, composed `variants` times."""
    seed, split, i, variants, exclude = job
    text, lang, voice, speed, pitch = sentence_params(seed, split, i)
    r = random.Random("redraw:%d:%s:%d" % (seed, split, i))
    while text in exclude:
        text = mc.draw_sentence(r, lang)
    pieces = [w.strip(".,;:!?") for w in text.split()]
    words = ref.align_words(text, lang)
    assert len(words) == len(pieces), (text, words)
    audio = [espeak_word(w, voice, speed, pitch) for w in pieces]
    out = []
    for v in range(variants):
        rng = random.Random("compose:%d:%s:%d:%d" % (seed, split, i, v))
        x, times = compose(audio, rng)
        out.append((x, times, text, lang, voice))
    return out


def write_wav(path, x):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(np.round(np.asarray(x, np.float64) * 32768).clip(-32768, 32767).astype("<i2").tobytes())


def heldout_set(out_dir, n, seed=EVAL_SEED, jobs=2):
    """Render the first n held-out items (one composition each) as 16 kHz WAVs in out_dir;
    -> list of {path, text, language, voice, words: [(word, start_ms, end_ms)]}."""
    os.makedirs(out_dir, exist_ok=True)
    items = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        jobs_ = [(seed, EVAL_SPLIT, i, 1, frozenset()) for i in range(n)]
        for i, res in enumerate(pool.map(render_sentence, jobs_)):
            x, times, text, lang, voice = res[0]
            path = os.path.join(out_dir, "align-%04d.wav" % i)
            write_wav(path, x)
            words = ref.align_words(text, lang)
            items.append({"path": path, "text": text, "language": lang, "voice": voice,
                          "words": [(w, a, b) for w, (a, b) in zip(words, times)]})
    return items


def heldout_texts(n, seed=EVAL_SEED):
    return {sentence_params(seed, EVAL_SPLIT, i)[0] for i in range(n)}


def training_data(work, n_sent, variants, seed, jobs):
    """Mels (float16) and word times of the training compositions, cached in WORK/data.npz."""
    cache = os.path.join(work, "data-%d-%d-%d.npz" % (n_sent, variants, seed))
    if os.path.exists(cache):
        z = np.load(cache, allow_pickle=True)
        data, off = z["mel"], z["off"]          # read once (each z[...] reads the file)
        mels = [data[:, off[i]:off[i + 1]] for i in range(len(off) - 1)]
        return mels, list(z["times"]), list(z["text"]), list(z["lang"])
    t0 = time.time()
    exclude = frozenset(heldout_texts(1000))
    mels, times, texts, langs = [], [], [], []
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs) as pool:
        jobs_ = [(seed, TRAIN_SPLIT, i, variants, exclude) for i in range(n_sent)]
        for k, res in enumerate(pool.map(_render_mels, jobs_, chunksize=8)):
            for m, t, text, lang in res:
                mels.append(m)
                times.append(t)
                texts.append(text)
                langs.append(lang)
            if (k + 1) % 200 == 0:
                log("data: %d/%d sentences, %.0f s" % (k + 1, n_sent, time.time() - t0))
    off = np.zeros(len(mels) + 1, dtype=np.int64)
    off[1:] = np.cumsum([m.shape[1] for m in mels])
    np.savez(cache, mel=np.concatenate(mels, axis=1), off=off,
             times=np.array(times, dtype=object), text=np.array(texts), lang=np.array(langs))
    log("data: %d clips from %d sentences in %.0f s -> %s" % (len(mels), n_sent, time.time() - t0, cache))
    return mels, times, texts, langs


def _render_mels(job):
    return [(ref.log_mel(x).astype(np.float16), np.array(t, dtype=np.float32), text, lang)
            for x, t, text, lang, _ in render_sentence(job)]


# ========================================================================================
# checkpoint files and model

def write_aligner_files(out):
    """Every file but the weights: the demo ASR model's vocab.json and merges.txt, the
    published aligner's tokenizer_config.json (63 added tokens renumbered after the vocabulary)
    and config.json / generation_config.json (the demo's dimensions and the new token ids;
    classify_num, timestamp_segment_time and everything else as published), the byte-identical
    preprocessor_config.json and chat_template.json. -> (config, tokenizer ids)."""
    import shutil
    os.makedirs(out, exist_ok=True)
    for fn in os.listdir(out):
        os.remove(os.path.join(out, fn))
    for fn in ("vocab.json", "merges.txt"):
        shutil.copyfile(os.path.join(DEMO_ASR, fn), os.path.join(out, fn))
    n_vocab = len(msm.load_json(os.path.join(out, "vocab.json")))
    msm.json_dir = msm.ALIGNER_FIXTURE_DIR
    try:
        ids = msm.write_tokenizer_config(out, n_vocab)
        cfg = tdm.write_config(out, ids, n_vocab + len(ids))
    finally:
        msm.json_dir = msm.FIXTURE_DIR
    for fn in ("preprocessor_config.json", "chat_template.json"):     # the aligner's = ASR's
        with open(os.path.join(out, fn), "rb") as a, \
                open(os.path.join(msm.ALIGNER_FIXTURE_DIR, fn), "rb") as b:
            assert a.read() == b.read(), fn
    assert "forced_aligner" in cfg["thinker_config"]["model_type"]
    assert cfg["timestamp_token_id"] == ids["<timestamp>"]
    return cfg, ids


def build_aligner_class():
    """The demo ASR Thinker (train_demo_model) plus the aligner head lm_head [classify_num, H]."""
    import torch.nn as nn
    Thinker = tdm.build_model_classes()

    class AlignerThinker(Thinker):
        def __init__(self, cfg):
            super().__init__(cfg)
            th = cfg["thinker_config"]
            self.lm_head = nn.Linear(th["text_config"]["hidden_size"], th["classify_num"], bias=False)
            self.ts_id = cfg["timestamp_token_id"]

        def slot_logits(self, ids, mels):
            """ids [B, S] (right-padded), mels: list of [128, T] tensors -> logits [slots, C]
            at every <timestamp> position, in (batch, position) order."""
            enc, lengths = self.audio_tower(mels)
            rows = torch_cat([enc[b, :n] for b, n in enumerate(lengths)])
            h = self.model(ids, rows, self.audio_id)
            return self.lm_head(h[ids == self.ts_id])

    return AlignerThinker


def torch_cat(xs):
    import torch
    return torch.cat(xs, dim=0)


def load_aligner(model_dir):
    """-> (torch aligner with the checkpoint's weights widened to fp32, config, tokenizer)."""
    import torch
    cfg = ref.load_config(model_dir)
    model = build_aligner_class()(cfg)
    ck = ref.Checkpoint(model_dir)
    model.load_state_dict({k: torch.from_numpy(ck.get("thinker." + k).copy())
                           for k in model.state_dict()})
    model.eval()
    return model, cfg, ref.Tokenizer(model_dir)


class AlignPrompt:
    """Aligner spec 6: audio block, then each word's BPE ids (alone, no space) + 2 slots."""

    def __init__(self, tok):
        self.tok = tok
        a = tok.added
        self.start, self.pad, self.end = a["<|audio_start|>"], a["<|audio_pad|>"], a["<|audio_end|>"]
        self.ts, self.fill = a["<timestamp>"], a["<|endoftext|>"]
        self.cache = {}

    def ids(self, n_audio, words):
        s = [self.start] + [self.pad] * n_audio + [self.end]
        for w in words:
            if w not in self.cache:
                self.cache[w] = self.tok.encode(w)
            s += self.cache[w] + [self.ts, self.ts]
        return s if words else s + [self.ts, self.ts]


def batch_ids(prompt, mels, words_list):
    import torch
    seqs = [prompt.ids(ref.audio_token_count(m.shape[1]), w) for m, w in zip(mels, words_list)]
    S = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), S), prompt.fill, dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[b, :len(s)] = torch.tensor(s)
    return ids


def soft_targets(times_ms, seg, n_cls, sigma=0.5, half=4):
    """Slot times (ms) -> (class indices [N, 2*half], weights [N, 2*half]): a Gaussian of
    sigma classes around time / seg, normalised over the 2*half nearest classes."""
    u = np.asarray(times_ms, dtype=np.float64) / seg
    c = np.floor(u)[:, None] + np.arange(-half + 1, half + 1)[None, :]
    w = np.exp(-0.5 * ((c - u[:, None]) / sigma) ** 2) * (c >= 0) * (c < n_cls)
    w /= w.sum(axis=1, keepdims=True)
    return np.clip(c, 0, n_cls - 1).astype(np.int64), w.astype(np.float32)


def freq_augment(m, rng):
    """Two frequency masks of at most 16 mel bins (no time masks: they could hide a boundary)."""
    m = m.copy()
    fill = float(m.mean())
    for _ in range(2):
        w = rng.randint(0, 16)
        f0 = rng.randint(0, m.shape[0] - w)
        m[f0:f0 + w] = fill
    return m


def forward_loss(model, prompt, mels_np, words_list, times_list, seg):
    import torch
    mels = [torch.as_tensor(np.asarray(m, dtype=np.float32)) for m in mels_np]
    ids = batch_ids(prompt, mels_np, words_list)
    logits = model.slot_logits(ids, mels)
    t = np.concatenate([np.asarray(tt, dtype=np.float64).reshape(-1) for tt in times_list])
    idx, w = soft_targets(t, seg, logits.shape[1])
    lp = torch.log_softmax(logits, dim=-1)
    loss = -(lp.gather(1, torch.from_numpy(idx)) * torch.from_numpy(w)).sum(1).mean()
    pred = logits.argmax(-1).numpy()
    err = np.abs(pred * seg - t)
    return loss, float((pred == np.floor(t / seg + 0.5)).mean()), float(err.mean()), float((err <= 80).mean())


def cmd_train(args):
    import torch
    torch.set_num_threads(args.threads)
    shuffle = args.seed if args.shuffle_seed is None else args.shuffle_seed
    torch.manual_seed(shuffle)
    rng = random.Random(shuffle)
    os.makedirs(args.work, exist_ok=True)
    mels, times, texts, langs = training_data(args.work, args.sentences, args.variants,
                                              args.seed, args.threads)
    words = [ref.align_words(t, l) for t, l in zip(texts, langs)]
    dev_n = min(240, len(mels) // 10) // args.variants * args.variants  # whole sentences
    tr_idx, dev_idx = list(range(len(mels) - dev_n)), list(range(len(mels) - dev_n, len(mels)))

    cfg, _ = write_aligner_files(args.out)
    tok = ref.Tokenizer(args.out)
    prompt = AlignPrompt(tok)
    seg = float(cfg["timestamp_segment_time"])
    model = build_aligner_class()(cfg)
    if "forced_aligner" in ref.load_config(args.init)["thinker_config"]["model_type"]:
        # a second stage: continue from an exported aligner (all weights, head included)
        model.load_state_dict(load_aligner(args.init)[0].state_dict())
    else:
        demo, _, _ = tdm.load_checkpoint(args.init)
        missing = model.load_state_dict(demo.state_dict(), strict=False)
        assert list(missing.missing_keys) == ["lm_head.weight"], missing
        with torch.no_grad():
            model.model.embed_tokens.weight[prompt.ts].normal_(0.0, 0.02)
            model.lm_head.weight.normal_(0.0, 0.02)
        del demo
    nparam = sum(p.numel() for p in model.parameters())
    log("model: %d parameters (%.2f M), initialised from %s; %d training clips, dev %d"
        % (nparam, nparam / 1e6, args.init, len(tr_idx), len(dev_idx)))
    params = list(model.parameters())
    opt, lr_at = tdm.optimizer(params, args)

    def dev_eval():
        model.eval()
        with torch.no_grad():
            r = []
            for k in range(0, len(dev_idx), 32):
                d = dev_idx[k:k + 32]
                _, a, e, w80 = forward_loss(model, prompt, [mels[i] for i in d], [words[i] for i in d],
                                            [times[i] for i in d], seg)
                r.append((a * len(d), e * len(d), w80 * len(d)))
        model.train()
        s = np.sum(r, axis=0) / len(dev_idx)
        log("dev: slot class accuracy %.4f, mean abs error %.1f ms, within 80 ms %.4f" % tuple(s))

    lengths = [mels[i].shape[1] for i in tr_idx]
    batches, t0, step, hist = [], time.time(), 0, []
    aug = random.Random(shuffle + 1)
    model.train()
    dev_eval()
    while step < args.steps:
        if not batches:
            batches = [[tr_idx[j] for j in b] for b in tdm.make_batches(lengths, args.batch_frames, rng)]
        b = batches.pop()
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        ms = [freq_augment(np.asarray(mels[i], dtype=np.float32), aug) for i in b]
        loss, acc, err, w80 = forward_loss(model, prompt, ms, [words[i] for i in b],
                                           [times[i] for i in b], seg)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        hist.append((float(loss), acc, err, w80))
        if step % args.log_every == 0 or step == args.steps:
            h = np.mean(hist, axis=0)
            hist = []
            el = time.time() - t0
            log("step %d/%d lr %.2e loss %.4f acc %.3f err %.1f ms w80 %.3f  %.2f s/step, eta %.0f min"
                % (step, args.steps, lr_at(step), h[0], h[1], h[2], h[3], el / step,
                   el / step * (args.steps - step) / 60))
        if step % args.dev_every == 0 or step == args.steps:
            dev_eval()
            torch.save({"model": model.state_dict(), "step": step, "args": vars(args)},
                       os.path.join(args.work, "aligner.pt"))
    model.eval()
    n_t, nbytes = tdm.export_safetensors(model, os.path.join(args.out, "model.safetensors"), tied_head=False)
    log("exported %s: %d tensors, %d bytes of bf16 weights; training took %.1f min"
        % (args.out, n_t, nbytes, (time.time() - t0) / 60))
    return 0


def cmd_export(args):
    """Re-export the last saved state (WORK/aligner.pt), e.g. of an interrupted run."""
    import torch
    cfg, _ = write_aligner_files(args.out)
    model = build_aligner_class()(cfg)
    st = torch.load(os.path.join(args.work, "aligner.pt"))
    model.load_state_dict(st["model"])
    n_t, nbytes = tdm.export_safetensors(model, os.path.join(args.out, "model.safetensors"), tied_head=False)
    log("exported step %d to %s: %d tensors, %d bytes" % (st["step"], args.out, n_t, nbytes))
    return 0


# ========================================================================================
# evaluation through the engine

def engine_align(qasr, model, item, threads=2):
    """qasr --aligner MODEL --text TEXT --language L --json WAV -> [(word, start_ms, end_ms)]."""
    p = subprocess.run([qasr, "--aligner", model, "--text", item["text"], "--language",
                        item["language"], "--json", "--threads", str(threads), item["path"]],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (qasr, p.returncode, p.stderr))
    doc = json.loads(p.stdout)
    return [(w["word"], 1000.0 * w["start"], 1000.0 * w["end"]) for w in doc["words"]]


def boundary_errors(item, pred):
    """|predicted - true| (ms) of every word start and end; the words must be the same."""
    ref_words = [w for w, _, _ in item["words"]]
    if [w for w, _, _ in pred] != ref_words:
        raise AssertionError("word lists differ: %s vs %s" % ([w for w, _, _ in pred], ref_words))
    return [abs(p - t) for (_, ps, pe), (_, ts, te) in zip(pred, item["words"])
            for p, t in ((ps, ts), (pe, te))]


def summarize(errs):
    e = np.asarray(errs, dtype=np.float64)
    return {"boundaries": int(e.size), "mean_abs_ms": float(e.mean()),
            "within_80ms": float((e <= 80).mean()), "within_160ms": float((e <= 160).mean())}


def spread_baseline(item):
    """A blind guess to beat: the words spread over the whole clip in proportion to their
    letters (what an aligner that ignores the audio, but knows the clip length, could do)."""
    with wave.open(item["path"], "rb") as w:
        dur = 1000.0 * w.getnframes() / w.getframerate()
    n = [len(w) for w, _, _ in item["words"]]
    edges = np.concatenate([[0], np.cumsum(n)]) * dur / sum(n)
    return [(w, edges[k], edges[k + 1]) for k, (w, _, _) in enumerate(item["words"])]


def evaluate(qasr, model, items, threads=2):
    """-> {language: summary, "all": summary, "unseen voice": summary} over the items'
    boundaries ("unseen voice": the items in make_corpus's held-out voice variant); each
    summary also holds the spread baseline's mean abs error (baseline_mean_abs_ms)."""
    by, base = {}, {}
    for it in items:
        e = boundary_errors(it, engine_align(qasr, model, it, threads))
        b = boundary_errors(it, spread_baseline(it))
        unseen = ["unseen voice"] if it["voice"].endswith("+" + mc.HELDOUT_VARIANT) else []
        for k in [it["language"], "all"] + unseen:
            by.setdefault(k, []).extend(e)
            base.setdefault(k, []).extend(b)
    return {k: dict(summarize(v), baseline_mean_abs_ms=float(np.mean(base[k])))
            for k, v in sorted(by.items())}


def print_summary(res):
    for k, s in res.items():
        print("%-12s %5d boundaries: mean abs error %6.1f ms, within 80 ms %5.1f%%, within 160 ms "
              "%5.1f%% (spread baseline: %.0f ms)" % (k, s["boundaries"], s["mean_abs_ms"],
                                                     100 * s["within_80ms"], 100 * s["within_160ms"],
                                                     s["baseline_mean_abs_ms"]))


def cmd_eval(args):
    t0 = time.time()
    items = heldout_set(os.path.join(args.work, "clips"), args.n, args.seed, args.threads)
    log("held-out set: %d clips (seed %d) in %.0f s" % (len(items), args.seed, time.time() - t0))
    t0 = time.time()
    res = evaluate(args.qasr, args.model, items, args.threads)
    log("aligned through %s in %.0f s" % (args.qasr, time.time() - t0))
    print_summary(res)
    with open(os.path.join(args.work, "eval.json"), "w") as f:
        json.dump(res, f, indent=1)
    return 0


def cmd_check(args):
    """PyTorch forward of the exported weights vs the numpy reference on one held-out clip:
    slot logits (max relative difference) and classes (identical)."""
    import torch
    torch.set_num_threads(args.threads)
    item = heldout_set(args.work, 1, args.seed, 1)[0]
    meta = ref.run_align(args.model, item["path"], os.path.join(args.work, "ref"), item["text"],
                         item["language"], verbose=False)
    lg_ref = np.load(os.path.join(args.work, "ref", "slot_logits.npy"))
    mel = np.load(os.path.join(args.work, "ref", "mel.npy"))
    model, cfg, tok = load_aligner(args.model)
    with torch.no_grad():
        ids = batch_ids(AlignPrompt(tok), [mel], [ref.align_words(item["text"], item["language"])])
        lg = model.slot_logits(ids, [torch.from_numpy(mel)]).numpy()
    rel = float(np.abs(lg - lg_ref).max() / np.abs(lg_ref).max())
    classes = [int(c) for c in lg.argmax(-1)]
    same = classes == meta["classes"]
    print("%s | %s: slot logits max rel diff %.2e; classes %s" % (
        item["text"], item["language"], rel, "identical" if same else "DIFFER"))
    for it, (_, a, b) in zip(meta["words"], item["words"]):
        print("  %-14s %6d %6d ms   (true %6.0f %6.0f)" % (it["word"], it["start_ms"], it["end_ms"], a, b))
    return 0 if rel < 1e-4 and same else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    sub = ap.add_subparsers(dest="cmd", required=True)
    work = os.path.join(ROOT, "build", "aligner-train")
    out = os.path.join(ROOT, "tests", "models", "qasr-demo-aligner")
    for name in ("data", "train"):
        t = sub.add_parser(name)
        t.add_argument("--work", default=work)
        t.add_argument("--sentences", type=int, default=2400)
        t.add_argument("--variants", type=int, default=3)
        t.add_argument("--seed", type=int, default=0)
        t.add_argument("--threads", type=int, default=2)
    t.add_argument("--out", default=out)
    t.add_argument("--init", default=DEMO_ASR,
                   help="checkpoint to start from: an ASR model (encoder, decoder, embeddings; "
                        "new head) or an aligner (everything: a further training stage)")
    t.add_argument("--shuffle-seed", type=int, default=None,
                   help="seed of the batch order, augmentation and new weights (default --seed, "
                        "which also picks the data)")
    t.add_argument("--steps", type=int, default=2400)
    t.add_argument("--batch-frames", type=int, default=5000,
                   help="padded mel frames per batch (default 5000, ~9 clips)")
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--warmup", type=int, default=200)
    t.add_argument("--log-every", type=int, default=50)
    t.add_argument("--dev-every", type=int, default=500)
    x = sub.add_parser("export")
    x.add_argument("--work", default=work)
    x.add_argument("--out", default=out)
    e = sub.add_parser("eval")
    e.add_argument("--qasr", default=os.path.join(ROOT, "build", "qasr"))
    e.add_argument("--model", default=out)
    e.add_argument("--n", type=int, default=200)
    e.add_argument("--seed", type=int, default=EVAL_SEED)
    e.add_argument("--work", default=os.path.join(ROOT, "build", "aligner-eval"))
    e.add_argument("--threads", type=int, default=2)
    c = sub.add_parser("check")
    c.add_argument("--model", default=out)
    c.add_argument("--seed", type=int, default=EVAL_SEED)
    c.add_argument("--work", default=os.path.join(ROOT, "build", "aligner-check"))
    c.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if args.cmd == "data":
        os.makedirs(args.work, exist_ok=True)
        training_data(args.work, args.sentences, args.variants, args.seed, args.threads)
        return 0
    return {"train": cmd_train, "export": cmd_export, "eval": cmd_eval, "check": cmd_check}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
