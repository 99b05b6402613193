#!/usr/bin/env bash
# Predicted GPU throughput of qasr-batch, without a GPU: the emulated build runs whole batch jobs
# as dry runs (CUEMU_DRYRUN=1: every launch, cuBLAS/cuFFT call, copy and sync is traced with its
# bytes and flops, nothing is computed) on synthetic checkpoints at the real 0.6B and 1.7B
# dimensions, and bench/gpu_model.py turns each trace into a time on a named GPU from
# bench/gpu_constants.tsv. PREDICTIONS from a model with published constants, not measurements;
# bench/ROOFLINE.md explains every term.
#
#   bench/predict_gpu.sh [BUILD_DIR] [WORK_DIR]     (defaults: build-predict, BUILD_DIR/predict)
#
# Design exploration (the figures in README come from the plain command): PREDICT_ARGS adds
# qasr-batch options to every transcription run (e.g. PREDICT_ARGS="--batch 128"), SIZES picks
# the models (default "0.6b 1.7b"), ALIGNER=0 skips the aligner, CHECK_ROWS=0 the predictions of
# scripts/gpu-check.sh's e2e rows (0.6B: its 1024 files at --batch 32, 128 and the default),
# MULTI_GPU=0 the --gpus predictions (0.6B on 1, 2, 4 and 8 H100s, four times the mix).
#
# Today's defaults of qasr-batch (--batch 32, step budget, encoder budget, KV cache from the
# device's memory: CUEMU_DEVICE_MEM_MB = an H100's 80 GiB); each utterance decodes
# 4 + ceil(3.5 tokens/s x duration) tokens (--ignore-eos --tokens-per-second 3.5, the length of a
# LibriSpeech transcript in Qwen3 tokens). The load and warm-up are removed by subtracting the
# trace of the same command on one 1.3 s clip. Then the forced aligner (a synthetic
# Qwen3-ForcedAligner-0.6B) aligning the mix's texts, and its time next to 0.6B transcription's.
# Synthetic models are deleted at the end unless KEEP_MODELS=1. The last lines, for scripts:
#   predicted 0.6b h100 librispeech-mix: N s audio/s
#   predicted 1.7b h100 librispeech-mix: N s audio/s
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${1:-build-predict}
work=${2:-$build/predict}
py=/usr/bin/python3
gpus=${GPUS:-h100 h200}
sizes=${SIZES:-0.6b 1.7b}
read -r -a extra <<<"${PREDICT_ARGS:-}"

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DQASR_CUDA_EMU_NVCC_CHECK=OFF >/dev/null
cmake --build "$build" --target qasr-batch-emu -j"$(nproc)" >/dev/null
bin=$(find "$build" -name qasr-batch-emu -type f | head -1)
mkdir -p "$work"

mix_seconds=$($py bench/make_mix.py "$work/mix" librispeech --count 2620)
clip_seconds=$($py bench/make_mix.py "$work/clips" clips --seconds 10 --count 256)
$py bench/make_mix.py "$work/one" clips --seconds 1.3 --count 1 >/dev/null
check_seconds=$($py bench/make_mix.py "$work/check" gpu-check --count 1024)

trace() { # model_dir manifest out
    rm -f "$3"
    CUEMU_DRYRUN=1 CUEMU_TRACE="$3" CUEMU_DEVICE_MEM_MB=81559 CUEMU_RACECHECK=0 \
        "$bin" "$2" --model "$1" --backend cuda --ignore-eos --tokens-per-second 3.5 --full-batches \
        -o "$work/out.jsonl" --overwrite -q "${extra[@]}"
}

declare -A result multi
for size in $sizes; do
    model=$work/model-$size
    [ -f "$model/config.json" ] || $py scripts/make_synthetic_model.py "$model" --size "$size" >/dev/null
    trace "$model" "$work/one/manifest.tsv" "$work/$size-one.tsv"
    trace "$model" "$work/mix/manifest.tsv" "$work/$size-mix.tsv"
    trace "$model" "$work/clips/manifest.tsv" "$work/$size-clips.tsv"
    if [ $size = 0.6b ] && [ "${CHECK_ROWS:-1}" = 1 ]; then
        # scripts/gpu-check.sh's e2e rows: its 1024 files, its batch sizes, no --ignore-eos (a
        # synthetic checkpoint never ends a transcript there, nor does a dry run: every file
        # decodes its whole limit, 32 + 24 tokens per second)
        for b in 32 128 default 32+sync; do
            sizing=(--batch "${b%+sync}" --readers 8)
            [ "${b%+sync}" = default ] && sizing=()
            [ "${b%+sync}" != "$b" ] && sizing+=(--sync-steps)
            rm -f "$work/check-$b.tsv"
            CUEMU_DRYRUN=1 CUEMU_TRACE="$work/check-$b.tsv" CUEMU_DEVICE_MEM_MB=81559 CUEMU_RACECHECK=0 \
                "$bin" "$work/check/manifest.tsv" --model "$model" --backend cuda --full-batches "${sizing[@]}" \
                -o "$work/out.jsonl" --overwrite -q
            rm -f "$work/check-one-$b.tsv"
            CUEMU_DRYRUN=1 CUEMU_TRACE="$work/check-one-$b.tsv" CUEMU_DEVICE_MEM_MB=81559 CUEMU_RACECHECK=0 \
                "$bin" "$work/one/manifest.tsv" --model "$model" --backend cuda --full-batches "${sizing[@]}" \
                -o "$work/out.jsonl" --overwrite -q
            echo "== PREDICTION gpu-check e2e row batch=$b, 0.6b h100 (1024 files of 2-20 s, $check_seconds s, whole token limits)"
            $py bench/gpu_model.py "$work/check-$b.tsv" --gpu h100 --audio-seconds "$check_seconds" \
                --minus "$work/check-one-$b.tsv" | sed 's/^/   /'
        done
    fi
    if [ $size = 0.6b ] && [ "${MULTI_GPU:-1}" = 1 ]; then
        # --gpus: 1, 2, 4 and 8 devices (emulated, each an H100) on four times the mix, so that
        # each device still has seconds of work; each device is simulated with its own worker's
        # host clock (gpu_model.py), the run ends with the last
        big_seconds=$($py bench/make_mix.py "$work/big" librispeech --count 10480)
        for n in 1 2 4 8; do
            for set in big one; do
                rm -f "$work/gpus$n-$set.tsv"
                CUEMU_DEVICES=$n CUEMU_DRYRUN=1 CUEMU_TRACE="$work/gpus$n-$set.tsv" CUEMU_DEVICE_MEM_MB=81559 \
                    CUEMU_RACECHECK=0 "$bin" "$work/$set/manifest.tsv" --model "$model" --gpus all --ignore-eos \
                    --tokens-per-second 3.5 --full-batches -o "$work/out.jsonl" --overwrite -q
            done
            echo "== PREDICTION 0.6b h100 x $n (--gpus), 4 x the mix (10480 utterances, $big_seconds s)"
            $py bench/gpu_model.py "$work/gpus$n-big.tsv" --gpu h100 --audio-seconds "$big_seconds" \
                --minus "$work/gpus$n-one.tsv" | grep -E 'prediction|devices|RTFx' | sed 's/^/   /'
            multi[$n]=$($py bench/gpu_model.py "$work/gpus$n-big.tsv" --gpu h100 --audio-seconds "$big_seconds" \
                --minus "$work/gpus$n-one.tsv" --json | $py -c 'import json,sys; print(round(json.load(sys.stdin)["rtfx"]))')
        done
        echo "scaling, 0.6b h100, 4 x the mix: $(for n in 1 2 4 8; do printf '%d GPU %d s/s (%.0f%%); ' $n ${multi[$n]} \
            "$($py -c "print(100 * ${multi[$n]} / ($n * ${multi[1]}))")"; done)"
    fi
    [ "${KEEP_MODELS:-0}" = 1 ] || rm -rf "$model"
    for gpu in $gpus; do
        for set in mix clips; do
            secs=$mix_seconds; [ $set = clips ] && secs=$clip_seconds
            label="librispeech-mix (2620 utterances, $mix_seconds s)"
            [ $set = clips ] && label="10 s clips (256, $clip_seconds s)"
            echo "== PREDICTION $size $gpu $label"
            $py bench/gpu_model.py "$work/$size-$set.tsv" --gpu "$gpu" --audio-seconds "$secs" \
                --minus "$work/$size-one.tsv" | sed 's/^/   /'
        done
        result[$size-$gpu]=$($py bench/gpu_model.py "$work/$size-mix.tsv" --gpu "$gpu" --audio-seconds "$mix_seconds" \
            --minus "$work/$size-one.tsv" --json | $py -c 'import json,sys; print(round(json.load(sys.stdin)["rtfx"]))')
    done
done
if [ "${ALIGNER:-1}" = 1 ]; then
# The forced aligner (Qwen3-ForcedAligner-0.6B) on the mix, aligning each utterance's text
# (--align-reference: the manifest's text column, 2.7 words per second), next to transcription
aligner=$work/aligner-0.6b
[ -f "$aligner/config.json" ] || $py scripts/make_synthetic_model.py "$aligner" --size 0.6b --aligner >/dev/null
align_trace() { # manifest out
    rm -f "$2"
    CUEMU_DRYRUN=1 CUEMU_TRACE="$2" CUEMU_DEVICE_MEM_MB=81559 CUEMU_RACECHECK=0 \
        "$bin" "$1" --aligner "$aligner" --align-reference --backend cuda --full-batches -o "$work/out.jsonl" \
        --overwrite -q
}
printf 'id\tpath\tduration\ttext\nu0\t%s\t1.3\tthe quick brown\n' "$(realpath "$work/one/a001.3.wav")" >"$work/one-text.tsv"
align_trace "$work/one-text.tsv" "$work/aligner-one.tsv"
align_trace "$work/mix/manifest.tsv" "$work/aligner-mix.tsv"
[ "${KEEP_MODELS:-0}" = 1 ] || rm -rf "$aligner"
echo "== PREDICTION aligner-0.6b h100 librispeech-mix (--align-reference, 2.7 words/s)"
$py bench/gpu_model.py "$work/aligner-mix.tsv" --gpu h100 --audio-seconds "$mix_seconds" --minus "$work/aligner-one.tsv" |
    sed 's/^/   /'
align_rtfx=$($py bench/gpu_model.py "$work/aligner-mix.tsv" --gpu h100 --audio-seconds "$mix_seconds" \
    --minus "$work/aligner-one.tsv" --json | $py -c 'import json,sys; print(round(json.load(sys.stdin)["rtfx"]))')
[ -n "${result[0.6b-h100]:-}" ] &&
    echo "aligner time / 0.6b transcription time on h100: $($py -c "print(f'{${result[0.6b-h100]} / $align_rtfx:.0%}')")"
fi

for size in $sizes; do echo "predicted $size h100 librispeech-mix: ${result[$size-h100]} s audio/s"; done
