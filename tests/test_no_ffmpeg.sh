#!/usr/bin/env bash
# A build without FFmpeg (-DQASR_FFMPEG=OFF) still builds and works, and says what it lacks: qasr
# alone is configured and built in WORK_DIR/build (the libraries it needs, nothing else; about
# 12 s from scratch on a 2-vCPU VM), links no libav*, reads a WAV as the full build does, and
# refuses an M4A with a message naming the formats it lacks and the packages to build them
# with; --help says so; --audio-decoder ffmpeg is a usage error.
# usage: test_no_ffmpeg.sh SOURCE_DIR WORK_DIR FULL_BUILD_DIR MODEL_DIR
set -uo pipefail
src=$1 work=$2 full=$3 model=$4
. "$(dirname "$0")/testlib.sh"
mkdir -p "$work"
b=$work/build
start=$SECONDS
if ! { cmake -S "$src" -B "$b" -DCMAKE_BUILD_TYPE=Release -DQASR_CUDA=OFF -DQASR_FFMPEG=OFF >"$work/configure.log" 2>&1 &&
       cmake --build "$b" -j"$(nproc)" --target qasr >"$work/build.log" 2>&1; }; then
  tail -30 "$work/configure.log" "$work/build.log"
  echo "FAIL: the build without FFmpeg"
  exit 1
fi
echo "configured and built qasr without FFmpeg in $((SECONDS - start)) s"
q=$b/qasr
check "configured without FFmpeg" grep -q "qasr: FFmpeg OFF" "$work/configure.log"
check "no libav* linked" bash -c "! ldd '$q' | grep -q libav"
help=$("$q" --help)
check "--help says it is built without FFmpeg" grep -q "built without FFmpeg" <<<"$help"
"$q" --model "$model" --audio-decoder ffmpeg x.wav >/dev/null 2>"$work/usage.err"
check "--audio-decoder ffmpeg: usage error (exit 2)" test $? -eq 2
check "... saying why" grep -q "built without FFmpeg" "$work/usage.err"

# an M4A: made with the ffmpeg command where there is one, else an MP4 file type box and no more
wav=$src/tests/audio/heldout-00001.wav m4a=$work/podcast.m4a
if command -v ffmpeg >/dev/null; then
  ffmpeg -nostdin -v error -y -i "$wav" -c:a aac "$m4a"
else
  printf '\0\0\0\x18ftypM4A \0\0\0\0isomM4A ' >"$m4a"
fi
"$q" --model "$model" -t 2 --json "$wav" "$m4a" >"$work/out.jsonl" 2>"$work/err.txt"
check "a WAV and an M4A: exit 1 (one failed)" test $? -eq 1
check "the M4A's error names the file, what is missing and how to get it" \
  grep -q "podcast.m4a: .*built without FFmpeg.*M4A.*libavformat-dev" "$work/out.jsonl"
want=$("$full/qasr" --model "$model" -t 2 "$wav" 2>/dev/null)
got=$(grep -m1 heldout-00001 "$work/out.jsonl" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["text"])')
check "the WAV's text is the full build's ($want)" test "$got" = "$want"
echo "$((checks - fails))/$checks checks passed"
[ "$fails" -eq 0 ]
