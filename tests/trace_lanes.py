"""The encoder lane, seen in a CUEMU_TRACE of a transcription run (cuda/emu/trace.cpp's format).

check(path) returns what is wrong (an empty list: all holds):
- the encoder's kernels (mel_*, conv3x3s2*, window_attention*) run on one stream and the decoder's
  (paged_*) on another;
- the decoder's stream waits for events recorded on the encoder's stream (the join), and every
  prefill of encoded audio (a device-to-device copy on the decoder's stream: the audio rows into
  the prompt's embeddings) is ordered after the encoder's work up to the previous encoder call's
  event at least (its sequences were encoded by then; the latest call's may join a step later);
- the lanes overlap: some decoder work is submitted while encoder work it is not ordered after
  is queued (a decoder step beside an encoder call).
"""


def _ops(path):
    """Device 0's operations as they are submitted: what a capture records runs only when its graph
    is launched (a G line, here a decoder kernel named "graph")."""
    ops = []
    with open(path) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if p[0] == "K" and p[2] == "0" and p[11] == "0":
                ops.append(("K", int(p[3]), p[4], None))
            elif p[0] == "L" and p[1] == "0" and p[8] == "0" or p[0] == "C" and p[1] == "0" and p[7] == "0":
                ops.append((p[0], int(p[2]), p[3], None))
            elif p[0] == "G" and p[1] == "0":
                ops.append(("K", int(p[2]), "graph", None))
            elif p[0] == "E" and p[1] == "0":
                ops.append(("E", int(p[2]), p[3], int(p[4])))
            elif p[0] == "S" and p[1] == "0":
                ops.append(("S", int(p[2]), p[3], None))
    return ops


def check(path):
    ops = _ops(path)
    enc = {s for k, s, n, _ in ops if k == "K" and n.startswith(("mel_", "conv3x3s2", "window_attention"))}
    dec = {s for k, s, n, _ in ops if k == "K" and n.startswith("paged_")}
    if len(enc) != 1 or len(dec) != 1 or enc == dec:
        return [f"encoder kernels on streams {sorted(enc)}, decoder kernels on {sorted(dec)}: "
                "expected one stream each, different"]
    enc, dec = enc.pop(), dec.pop()
    # the join's event: recorded on the encoder's stream, waited for by the decoder's
    recorded_on, joined = {}, set()
    for k, s, n, ev in ops:
        if k == "E" and n == "record":
            recorded_on[ev] = s
        elif k == "E" and n == "wait" and s == dec and recorded_on.get(ev) == enc:
            joined.add(ev)
    if not joined:
        return ["the decoder's stream never waits for an event of the encoder's stream"]
    fails, count = [], {}
    marks = []       # encoder ops submitted at each record of a join event
    at_record = {}   # event -> encoder ops submitted at its last record
    enc_at = {}      # any event recorded on the encoder's stream -> the same
    after = 0        # encoder ops the decoder's stream is ordered after
    done = 0         # encoder ops the host has waited for
    prefills = overlap = 0
    for k, s, n, ev in ops:
        if k in ("K", "L", "C"):
            count[s] = count.get(s, 0) + 1
        if k == "E" and n == "record" and s == enc:
            enc_at[ev] = count.get(enc, 0)
        if k == "E" and n == "sync" and ev in enc_at:
            done = max(done, enc_at[ev])
        elif k == "S" and s in (enc, -1):
            done = count.get(enc, 0)
        if k == "E" and n == "record" and s == enc and ev in joined:
            at_record[ev] = count.get(enc, 0)
            marks.append(at_record[ev])
        elif k == "E" and n == "wait" and s == dec and ev in at_record:
            after = max(after, at_record[ev])
        elif k == "C" and s == dec and n == "d2d":
            prefills += 1
            need = marks[-2] if len(marks) >= 2 else (marks[-1] if marks else 0)
            if after < need and len(fails) < 5:
                fails.append(f"a prefill of encoded audio (decoder copy {prefills}) is ordered after {after} "
                             f"encoder operations, not the {need} of the previous encoder call")
        elif k == "K" and s == dec and count.get(enc, 0) > max(after, done):
            overlap += 1
    if prefills == 0:
        fails.append("no prefill of encoded audio (device-to-device copy on the decoder's stream) in the trace")
    if overlap == 0:
        fails.append("no decoder kernel is submitted beside unjoined encoder work: the lanes never overlap")
    return fails
