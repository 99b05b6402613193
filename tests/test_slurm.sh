#!/usr/bin/env bash
# qasr-batch on a real Slurm: a private one-node cluster (scripts/slurm/ci-cluster.sh: Debian's
# slurm-wlm and munge on localhost) runs scripts/slurm/qasr-array.sbatch as a 3-task job array
# over 240 entries with the CPU backend. Task 1's qasr-batch is killed with SIGKILL mid-run and
# the task requeued by hand; task 2 gets the time-limit warning as --signal=B:TERM@300 delivers
# it (TERM to the batch shell only) and must flush, exit 4 and requeue itself. Both restarts must
# resume; qasr-merge must then exit 0 with every entry exactly once and the texts of a
# single-process run. The cluster is always torn down (trap), and a missing Slurm or a cluster
# that does not come up is a failure, not a skip.
#
# usage: test_slurm.sh BUILD_DIR MODEL_DIR WORK_DIR
set -u
bin=$(cd "$1" && pwd) model=$(cd "$2" && pwd) work=$3
root=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
cluster=$work/cluster
n_entries=240
# 80 entries a task, 20-200 ms each (idle or busy machine): long enough to be hit mid-run
opts=(--backend cpu -t 1 --ignore-eos -n 256 --batch 2 --kv-gb 0.25)
fails=0 checks=0
t0=$SECONDS

show_logs() {
  for f in "$work"/log-*.out; do [ -f "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }; done
  for f in "$cluster"/log/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 15 "$f"; }; done
}
check() { # check NAME CMD...
  local name=$1
  shift
  checks=$((checks + 1))
  if ! "$@"; then
    fails=$((fails + 1))
    echo "FAIL: $name"
  fi
}
die() { # the test cannot go on
  echo "FAIL: $*"
  show_logs
  exit 1
}
teardown() {
  local rc=$? left
  unset SLURM_CONF # so that only the cluster's processes carry it below
  "$root/scripts/slurm/ci-cluster.sh" down "$cluster" || rc=1
  left=$(grep -lsxzF "SLURM_CONF=$cluster/etc/slurm.conf" /proc/[0-9]*/environ)
  if [ -n "$left" ]; then
    echo "FAIL: processes left after the teardown: $left"
    rc=1
  fi
  exit $rc
}

"$root/scripts/slurm/ci-cluster.sh" down "$cluster" 2>/dev/null # one a killed earlier run left
rm -rf "$work" && mkdir -p "$work/out"
trap teardown EXIT
trap 'exit 1' INT TERM

# --- the manifest and the single-process reference ---
# Entry i is file i % 5. A text depends on the file only (batching never changes tokens: see
# test_batch.py), so the reference is one qasr-batch run over the 5 files, not all 90 entries.
names=(demo.flac stereo44k.ogg phone8k.wav quiet48k.flac speech10s.aiff)
manifest=$work/manifest.tsv
{
  printf 'path\tid\n'
  for ((i = 0; i < n_entries; i++)); do printf '%s\tclip%03d\n' "$root/tests/audio/${names[i % 5]}" "$i"; done
} >"$manifest"
head -n 6 "$manifest" >"$work/ref.tsv"
"$bin/qasr-batch" "$work/ref.tsv" --model "$model" -o "$work/ref.jsonl" --shard none "${opts[@]}" -t 2 -q ||
  die "the reference run failed"

# --- the cluster ---
"$root/scripts/slurm/ci-cluster.sh" up "$cluster" || die "the Slurm cluster did not come up (above)"
export SLURM_CONF=$cluster/etc/slurm.conf
t_up=$SECONDS

field() { scontrol -o show job "$1" 2>/dev/null | grep -o " $2=[^ ]*" | cut -d= -f2; } # JOB KEY
lines() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }
# Task $1 has written 2 lines; stops the test if the task has ended already.
writing() {
  ! ended "${jid}_$1" || die "task $1 ended ($(field "${jid}_$1" JobState)) before it could be interrupted"
  [ "$(lines "$(out "$1")")" -ge 2 ]
}
ended() { case $(field "$1" JobState) in COMPLETED | FAILED | CANCELLED | TIMEOUT | OUT_OF_MEMORY) true ;; *) false ;; esac; }
requeued() { [ "$(field "$1" JobState)" = PENDING ] && [ "$(field "$1" Restarts)" -ge 1 ]; }
array_done() { [ -z "$(squeue -h -j "$jid" 2>/dev/null)" ]; }
# Limits are for hangs, not speed: each is ten times what an idle 2-core machine needs, so a
# machine busy with another job does not fail the test (QASR_TEST_HANG_SCALE changes the factor).
hang=${QASR_TEST_HANG_SCALE:-10}
wait_for() { # DESC SECONDS CMD...: poll every 0.1 s
  local desc=$1 limit=$2 end=$((SECONDS + $2))
  shift 2
  until "$@"; do
    [ $SECONDS -lt $end ] || die "gave up after $limit s waiting for $desc"
    sleep 0.1
  done
}
# The qasr-batch process of array task $1.
batch_pid() {
  local d env
  for d in /proc/[0-9]*; do
    [ "$(cat "$d/comm" 2>/dev/null)" = qasr-batch ] || continue
    env=$(tr '\0' '\n' <"$d/environ" 2>/dev/null) || continue
    if grep -qx "SLURM_ARRAY_JOB_ID=$jid" <<<"$env" && grep -qx "SLURM_ARRAY_TASK_ID=$1" <<<"$env"; then
      echo "${d#/proc/}"
      return
    fi
  done
}
# A requeued job waits ~2 minutes (its BeginTime) before it may start again: too long for a
# test. Not at once, though: slurmd refuses a launch whose credential is from the same second as
# the revocation of the job's last run (1 s resolution: "Job credential revoked").
release() {
  wait_for "$1 to be pending again" $((30 * hang)) requeued "$1"
  sleep 2
  scontrol update JobId="$1" StartTime=now || die "cannot release $1"
}

# --- the array: no GPUs here (--gpus=0 overrides the script's one per task), one CPU a task ---
jid=$(cd "$work" && QASR_BATCH=$bin/qasr-batch sbatch --parsable --array=0-2 --gpus=0 --cpus-per-task=1 \
  --time=10 -o "$work/log-%A_%a.out" "$root/scripts/slurm/qasr-array.sbatch" "$manifest" "$model" \
  "$work/out/results.jsonl" "${opts[@]}") || die "sbatch failed"
out() { echo "$work/out/results.$1-of-3.jsonl"; }

# Task 1: SIGKILL its qasr-batch mid-run (the wrapper then fails), requeue it by hand. Its CPU
# goes to task 2 at once: task 2 is stopped next, and both are released after that.
wait_for "task 1 to write 2 lines" $((60 * hang)) writing 1
pid=$(batch_pid 1)
[ -n "$pid" ] || die "task 1's qasr-batch is not running (it finished before the kill: make its run longer)"
kill -KILL "$pid"
killed_at=$(lines "$(out 1)")
echo "task 1: qasr-batch killed after $killed_at lines"
check "task 1 was killed mid-run ($killed_at lines)" [ "$killed_at" -lt $((n_entries / 3)) ]
wait_for "task 1 to end after the kill" $((30 * hang)) ended "${jid}_1"
check "the killed task failed: $(field "${jid}_1" JobState) $(field "${jid}_1" ExitCode)" \
  [ "$(field "${jid}_1" JobState)" = FAILED ]
scontrol requeue "${jid}_1" || die "scontrol requeue ${jid}_1 failed"

# Task 2: the time-limit warning. The wrapper passes TERM on, qasr-batch flushes and exits 4, and
# the wrapper requeues the task itself.
wait_for "task 2 to write 2 lines" $((60 * hang)) writing 2
check "task 2 was still running when signalled" [ -n "$(batch_pid 2)" ]
signalled_at=$(lines "$(out 2)")
scancel --signal=TERM --batch "${jid}_2" || die "scancel --signal=TERM --batch failed"
wait_for "task 2 to requeue itself" $((60 * hang)) requeued "${jid}_2"
stopped_at=$(lines "$(out 2)")
echo "task 2: signalled after $signalled_at lines, stopped after $stopped_at"
check "task 2 stopped mid-run ($stopped_at lines)" [ "$stopped_at" -lt $((n_entries / 3)) ]
check "task 2's output ends with a complete line" [ "$(tail -c 1 "$(out 2)" | od -An -c | tr -d ' ')" = '\n' ]
release "${jid}_1"
release "${jid}_2"

wait_for "the array to finish" $((120 * hang)) array_done
echo "array done $((SECONDS - t_up)) s after the cluster came up"

# --- every task completed, the two restarts resumed ---
for k in 0 1 2; do
  st="$(field "${jid}_$k" JobState) $(field "${jid}_$k" ExitCode) restarts $(field "${jid}_$k" Restarts)"
  want="COMPLETED 0:0 restarts $([ $k = 0 ] && echo 0 || echo 1)"
  check "task $k: $st, wanted $want" [ "$st" = "$want" ]
done
log1=$work/log-${jid}_1.out log2=$work/log-${jid}_2.out
check "task 1 ran twice and resumed" grep -q "run 2" "$log1"
check "task 1's second run resumed its shard" grep -q "resuming $(out 1): $killed_at done" "$log1"
check "task 2's wrapper requeued it" grep -q "stopped on SIGTERM with the output flushed: requeueing ${jid}_2" "$log2"
check "task 2's qasr-batch stopped cleanly" grep -q "qasr-batch: interrupted" "$log2"
check "task 2's second run resumed its shard" grep -q "resuming $(out 2): $stopped_at done" "$log2"

# --- the merge: exit 0, every entry once in manifest order, the reference texts ---
"$bin/qasr-merge" "$manifest" "$work"/out/results.*-of-3.jsonl -o "$work/merged.jsonl" 2>"$work/merge.err"
rc=$?
check "qasr-merge exit $rc, wanted 0: $(cat "$work/merge.err")" [ $rc -eq 0 ]
check "merged output: every entry once, reference texts, shards disjoint" \
  $py - "$manifest" "$work/ref.jsonl" "$work/merged.jsonl" "$work"/out/results.{0,1,2}-of-3.jsonl <<'EOF'
import json, sys
manifest, ref, merged, *shards = sys.argv[1:]
rows = [line.rstrip("\n").split("\t") for line in open(manifest)][1:]
ids = [r[1] for r in rows]
load = lambda p: [json.loads(line) for line in open(p)]
by_file = {o["path"]: o["text"] for o in load(ref)}
ref = {r[1]: by_file.get(r[0]) for r in rows}
got = load(merged)
problems = []
if [o["id"] for o in got] != ids:
    problems.append(f"merged ids are not the manifest's, in order ({len(got)} lines)")
problems += [f"{o['id']}: {o['text']!r} != {ref.get(o['id'])!r}" for o in got if o["text"] != ref.get(o["id"])]
per_shard = [[o["id"] for o in load(s)] for s in shards]
if sorted(sum(per_shard, [])) != sorted(ids):
    problems.append("the shard files together do not hold each id exactly once")
print("\n".join(problems[:10]))
sys.exit(1 if problems else 0)
EOF

echo "slurm test: $((SECONDS - t0)) s (cluster up after $((t_up - t0)) s)"
[ $fails -eq 0 ] || show_logs
echo "$((checks - fails))/$checks checks passed"
[ $fails -eq 0 ] && [ $checks -gt 0 ]
