#!/usr/bin/env bash
# The body of qasr-array.sbatch and qasr-node.sbatch (one copy for both): run qasr-batch on this
# task's shard, pass Slurm's time-limit warning on to it, and requeue the task when it stopped
# for one, so that the restarted task resumes where this one stopped.
#
#   qasr-task.sh MANIFEST MODEL_DIR OUTPUT [qasr-batch options...]
#
# qasr-batch takes its shard K/N from the job array (SLURM_ARRAY_TASK_ID, ...) and writes
# OUTPUT with ".K-of-N" before the extension. QASR_BATCH: the binary (default: on PATH).
# Exit status: qasr-batch's (0 done, 1 some entries failed, 4 interrupted, ...).
set -u
if [ $# -lt 3 ]; then
  echo "usage: sbatch --array=0-N SCRIPT MANIFEST MODEL_DIR OUTPUT [qasr-batch options...]" >&2
  exit 2
fi
manifest=$1 model=$2 output=$3
shift 3
# An array task is ARRAYJOB_TASK: its own SLURM_JOB_ID can equal the array's id, which scontrol
# would take for the whole array.
task=${SLURM_ARRAY_JOB_ID:+${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID:-}}
task=${task:-${SLURM_JOB_ID:-}}
echo "qasr-task: $task on $(hostname -s), run $((${SLURM_RESTART_COUNT:-0} + 1))" >&2

# Several GPUs: one qasr-batch worker each. CUDA_VISIBLE_DEVICES names the node's devices, but
# inside the process the visible ones are numbered from 0, so --gpus gets 0..n-1.
gpus=()
IFS=, read -ra visible <<<"${CUDA_VISIBLE_DEVICES:-}"
if [ ${#visible[@]} -gt 1 ]; then gpus=(--gpus "$(seq -s, 0 $((${#visible[@]} - 1)))"); fi

# TERM: the --signal=B:TERM@300 warning (only this shell gets it), or scancel --signal=TERM
# --batch; USR1 likewise for --signal=B:USR1@... qasr-batch finishes the files in progress,
# flushes and exits 4.
signalled=
trap 'signalled=TERM; kill -TERM "$pid" 2>/dev/null' TERM
trap 'signalled=USR1; kill -TERM "$pid" 2>/dev/null' USR1
"${QASR_BATCH:-qasr-batch}" "$manifest" --model "$model" -o "$output" "${gpus[@]}" "$@" &
pid=$!
# wait returns early (status > 128) when a trapped signal arrives: wait again until it exits
while wait "$pid"; rc=$?; [ $rc -gt 128 ] && kill -0 "$pid" 2>/dev/null; do :; done

# Requeue only a job still RUNNING: a cancelled one (scancel) is COMPLETING and stays stopped.
if [ $rc -eq 4 ] && [ -n "$signalled" ] && [ "$(squeue -h -j "$task" -o %T 2>/dev/null)" = RUNNING ]; then
  echo "qasr-task: stopped on SIG$signalled with the output flushed: requeueing $task to resume" >&2
  trap - TERM USR1
  scontrol requeue "$task" || echo "qasr-task: requeue failed: submit the task again to resume" >&2
fi
exit $rc
