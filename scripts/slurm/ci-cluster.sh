#!/usr/bin/env bash
# A private one-node Slurm cluster on localhost for tests: munged, slurmctld and slurmd from
# Debian's munge and slurm-wlm packages, run as root, with the key, socket, config, state,
# spool, logs and pid files all under one directory. Nothing in /etc/slurm or /etc/munge is
# used; clients find the cluster through SLURM_CONF (written to DIR/env.sh).
#
#   ci-cluster.sh up DIR     start it; exits non-zero with the reason and the log tails if it
#                            does not come up (then nothing is left running)
#   ci-cluster.sh down DIR   cancel every job, stop the daemons, sweep leftover job processes;
#                            safe to run twice or after a failed up
#
# The comments marked "(n)" refer to the pitfalls in shared/notes/slurm-single-node.md.
set -euo pipefail

die() { echo "ci-cluster.sh: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: ci-cluster.sh up|down DIR"
mode=$1
mkdir -p "$2"
W=$(cd "$2" && pwd)
CONF=$W/etc/slurm.conf
# munged's socket: in /tmp, not under $W, because munged wants every directory above it open to
# all (a checkout under a 0700 directory, as mktemp -d makes, would fail) and a socket path
# must fit in 108 bytes. Named by $W so that "down" finds it.
SOCK_DIR=/tmp/qasr-munge-$(printf %s "$W" | md5sum | cut -c1-12)
SOCK=$SOCK_DIR/munge.sock
export SLURM_CONF=$CONF  # (6) every client needs it

# 0 if PID runs and its command line contains WORD. Not kill -0: (13) PID 1 here reaps
# orphans late, and a zombie (state Z) still answers kill -0.
alive() {
  local pid=$1 word=$2 stat cmd
  [ -n "$pid" ] && stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  cmd=$( { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null) || return 1
  [ "${stat%% *}" != Z ] && [[ $cmd == *"$word"* ]]
}

# TERM the daemon of a pid file (only if it is ours: its command line names WORD), wait up to
# 10 s, then KILL.
stop_pidfile() {
  local file=$1 word=$2 pid
  pid=$(cat "$file" 2>/dev/null) || return 0
  alive "$pid" "$word" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do alive "$pid" "$word" || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

# (14) slurmstepd and job processes survive their slurmd. Ours carry our SLURM_CONF; only
# slurmstepd, job processes (SLURM_JOB_ID) and Slurm clients are matched, never the caller.
sweep() {
  local sig dir pid env comm found=0
  for sig in TERM KILL; do
    for dir in /proc/[0-9]*; do
      pid=${dir#/proc/}
      [ "$pid" = $$ ] && continue
      env=$( { tr '\0' '\n' <"$dir/environ"; } 2>/dev/null) || continue
      grep -qxF "SLURM_CONF=$CONF" <<<"$env" || continue
      comm=$(cat "$dir/comm" 2>/dev/null) || continue
      case $comm in
        slurmstepd | srun | salloc | sbatch) ;;
        *) grep -q '^SLURM_JOB_ID=' <<<"$env" || continue ;;
      esac
      kill -"$sig" "$pid" 2>/dev/null && found=1
    done
    # slurmstepd ignores TERM: the KILL pass ends it
    if [ $sig = TERM ] && [ $found = 1 ]; then sleep 1; fi
  done
}

down() {
  if [ -f "$CONF" ] && alive "$(cat "$W/slurmctld.pid" 2>/dev/null)" "$CONF"; then
    squeue -h -o %i 2>/dev/null | xargs -r scancel --full 2>/dev/null || true
    for _ in $(seq 60); do  # up to 15 s for the jobs to end (KillWait=5)
      [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.25
    done
  fi
  stop_pidfile "$W/slurmd.pid" "$CONF"
  stop_pidfile "$W/slurmctld.pid" "$CONF"
  stop_pidfile "$W/munge/munged.pid" "$SOCK"
  sweep
  rm -rf "$SOCK_DIR"
}

# The first free pair (port, port + 1) of 6817, 16817, ...: a listening socket in
# /proc/net/tcp* has state 0A and its port in hex after the address.
free_port() {
  local p
  for p in 6817 16817 26817 36817; do
    if ! grep -qiE ":($(printf %04X $p)|$(printf %04X $((p + 1)))) [0-9A-F:]+ 0A " /proc/net/tcp /proc/net/tcp6 2>/dev/null
    then echo $p; return 0; fi
  done
  die "ports 6817, 16817, 26817 and 36817 (and each + 1) are all in use"
}

# Fails with the log tails (the up is then undone).
wait_for() {
  local what=$1; shift
  for _ in $(seq 120); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  echo "ci-cluster.sh: $what did not happen within 30 s; logs:" >&2
  tail -n 20 "$W"/log/*.log "$W/munge/munged.log" >&2 2>/dev/null || true
  down
  exit 1
}

node_idle() { [ "$(sinfo -h -N -n "$NODE" -o %T)" = idle ]; }

up() {
  for cmd in munged mungekey slurmctld slurmd sbatch squeue scontrol sinfo scancel; do
    command -v "$cmd" >/dev/null ||
      die "$cmd not found: install Debian's slurm-wlm and munge (scripts/deps.sh does)"
  done
  [ "$(id -u)" -eq 0 ] || die "must run as root (the daemons run as root: SlurmUser=root)"
  # (17) a re-used directory: refuse a live cluster, forget old jobs
  ! alive "$(cat "$W/slurmctld.pid" 2>/dev/null)" "$CONF" || die "a cluster is already running in $W"
  down  # a half-dead earlier one
  rm -rf "$W/state" "$W/spool" "$W/munge"
  # (3) the socket's directories need execute for all and must not be group/other-writable
  mkdir -p "$W/etc" "$W/state" "$W/log" "$W/munge" "$SOCK_DIR"
  chmod 0755 "$W" "$W/munge" "$SOCK_DIR"
  NODE=$(hostname -s)
  mkdir -p "$W/spool/slurmd-$NODE"  # (11)

  # (2, 4) a private key and socket; --origin so munged need not resolve the hostname
  mungekey --create --keyfile="$W/munge/munge.key"
  chmod 0400 "$W/munge/munge.key"
  munged --socket="$SOCK" --origin=127.0.0.1 --key-file="$W/munge/munge.key" \
    --log-file="$W/munge/munged.log" --pid-file="$W/munge/munged.pid" --seed-file="$W/munge/munged.seed"
  wait_for "munged's socket" test -S "$SOCK"

  local port mem
  port=$(free_port)
  # (10) no more than the hardware: slurmd drains a node that claims more
  mem=$(awk '/^MemTotal:/ { m = int($2 / 2048); print (m < 1024 ? m : 1024) }' /proc/meminfo)
  cat >"$CONF" <<EOF
# Written by scripts/slurm/ci-cluster.sh: a private one-node test cluster.
ClusterName=ci
# (1) addresses, not names: nothing has to resolve the hostname
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
# (12) root daemons: no chown of the state directories
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCK
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool/slurmd-%n
SlurmctldPidFile=$W/slurmctld.pid
SlurmdPidFile=$W/slurmd.pid
SlurmctldLogFile=$W/log/slurmctld.log
SlurmdLogFile=$W/log/slurmd.log
# (7) the cgroup defaults fail every job on this host's cgroup mounts
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# (9) one CPU per task: array tasks run side by side
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
# (8) start batch jobs at once, not on a pass up to 3 s later
SchedulerParameters=batch_sched_delay=0
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
ReturnToService=2
# (15) no accounting: finished jobs stay visible to scontrol for 10 minutes
MinJobAge=600
KillWait=5
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  echo "export SLURM_CONF=$CONF" >"$W/env.sh"
  slurmctld -f "$CONF"
  wait_for "slurmctld answering" sh -c 'scontrol ping | grep -q UP'
  slurmd -f "$CONF"
  wait_for "node $NODE idle" node_idle
}

case $mode in
  up) up ;;
  down) down ;;
  *) die "unknown mode '$mode' (up or down)" ;;
esac
