#!/bin/sh
# ctest: the tiny sweep of tests/sweep_fixture.sh through `attack_sweep.sh --slurm` on a
# one-node Slurm cluster started here (munged, slurmctld and slurmd on localhost, with a
# generated slurm.conf, free ports, and every state, pid and log file in a temporary folder):
# the array job's CSV, collected with --collect, must equal a local run's row for row, every
# column but `seconds` (each attack's wall time, the only timing column). The daemons are
# stopped, and the folder removed, on every exit. Skipped (77), with the reason, where the
# cluster cannot run: no python3, Slurm or munge not installed (Debian's slurm-wlm and munge,
# which scripts/install_deps.sh installs), not root (slurmd runs jobs as their owners), or
# daemons that do not come up here.
set -eu
skip() { echo "skipped: $1"; exit 77; }
command -v python3 >/dev/null || skip "no python3"
PATH="$PATH:/usr/sbin:/sbin"  # where Debian puts the daemons
for b in munged slurmctld slurmd sbatch sinfo squeue scancel; do
  command -v "$b" >/dev/null || skip "no $b: install Slurm and munge (scripts/install_deps.sh: slurm-wlm munge)"
done
[ "$(id -u)" -eq 0 ] || skip "not root: slurmd starts each job as its owner and needs root"
BUILD_DIR=$1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d)
chmod 755 "$TMP"  # munged wants every directory above its socket searchable by all
C="$TMP/cluster"
mkdir -p "$C/state" "$C/spool"

PIDS=""
# stop: cancels what the cluster still runs, then stops the daemons (newest first) and waits for
# them; the temporary folder goes last.
stop() {
  if [ -n "${SLURM_CONF:-}" ] && [ -n "$PIDS" ]; then
    jobs=$(squeue -h -o %A 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      i=0
      while [ "$i" -lt 20 ] && [ -n "$(squeue -h -o %A 2>/dev/null || true)" ]; do sleep 0.5; i=$((i + 1)); done
    fi
  fi
  for p in $PIDS; do kill "$p" 2>/dev/null || true; done
  for p in $PIDS; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
logs() { for f in "$@"; do [ -f "$f" ] && { echo "--- $f"; tail -20 "$f"; }; done; return 0; }
fail() { echo "slurm_sweep test: $1"; logs "$TMP/log" "$C/slurmctld.log" "$C/slurmd.log"; exit 1; }
# The daemons that do not come up here: the reason and their logs, then skipped.
cannot_run() { echo "skipped: $1"; logs "$C/munged.log" "$C/slurmctld.log" "$C/slurmd.log" "$C/daemons.out"; exit 77; }
# started PID: PID is one of ours to stop.
started() { PIDS="$1 $PIDS"; }
# wait_for SECONDS COMMAND...: until COMMAND succeeds, at most SECONDS.
wait_for() {
  _n=$(($1 * 4)); shift
  while [ "$_n" -gt 0 ]; do "$@" && return 0; sleep 0.25; _n=$((_n - 1)); done
  return 1
}

# munged with a fresh key and its own socket.
dd if=/dev/urandom of="$C/munge.key" bs=1024 count=1 2>/dev/null
chmod 600 "$C/munge.key"
munged --foreground --socket="$C/munge.socket" --key-file="$C/munge.key" --pid-file="$C/munged.pid" \
  --log-file="$C/munged.log" --seed-file="$C/munged.seed" >>"$C/daemons.out" 2>&1 &
started $!
wait_for 10 test -S "$C/munge.socket" || cannot_run "munged did not start"

# slurm.conf: this host as controller and only node, no cgroups (processes tracked through
# /proc), no accounting, two free ports on the loopback.
NODE=$(uname -n)
NODE=${NODE%%.*}
CPUS=$(nproc 2>/dev/null || echo 1)
# shellcheck disable=SC2046
set -- $(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
cat >"$C/slurm.conf" <<EOF
ClusterName=sweeptest
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$1
SlurmdPort=$2
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$C/munge.socket
CredType=cred/munge
StateSaveLocation=$C/state
SlurmdSpoolDir=$C/spool
SlurmctldPidFile=$C/slurmctld.pid
SlurmdPidFile=$C/slurmd.pid
SlurmctldLogFile=$C/slurmctld.log
SlurmdLogFile=$C/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=sweep Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$C/slurm.conf"
slurmctld -D -i -f "$SLURM_CONF" >>"$C/daemons.out" 2>&1 &
started $!
slurmd -D -f "$SLURM_CONF" -N "$NODE" >>"$C/daemons.out" 2>&1 &
started $!
node_idle() { [ "$(sinfo -h -n "$NODE" -o %T 2>/dev/null)" = idle ]; }
wait_for 60 node_idle || cannot_run "the node did not become idle within 60 s (sinfo: $(sinfo -h -o '%T %E' 2>&1 | head -1))"
echo "cluster up: node $NODE ($CPUS CPUs), slurmctld on port $1, slurmd on port $2"

. "$ROOT/tests/sweep_fixture.sh"
sweep_fixture "$TMP" "$BUILD_DIR"
SWEEP="$ROOT/scripts/attack_sweep.sh"
set -- "$TMP/model.safetensors" "$TMP/owner.key" "$TMP/users.db" synthetic
"$SWEEP" "$@" "$TMP/local" >"$TMP/log" 2>&1 || fail "the local sweep failed"

# Through Slurm: three array tasks, the submission waits for the job's end (at most 5 minutes
# each task), then --collect.
timeout 600 "$SWEEP" --tasks 3 "$@" "$TMP/slurm" --slurm --wait --time=5 >"$TMP/log" 2>&1 \
  || fail "the sweep through Slurm failed"
cat "$TMP/log"
job=$(sed -n 's/^job \([0-9][0-9]*\): 3 array tasks over .*/\1/p' "$TMP/log")
[ -n "$job" ] || fail "no job id printed"
grep -q "^once the job has finished: .*--collect $TMP/slurm\$" "$TMP/log" || fail "no --collect command printed"
for i in 0 1 2; do
  out="$TMP/slurm/logs/slurm-${job}_$i.out"
  grep -q "^shard $i/3: " "$out" 2>/dev/null || { logs "$out"; fail "array task $i did not run its shard"; }
done
"$SWEEP" --collect "$TMP/slurm" >"$TMP/log" 2>&1 || fail "--collect failed"
same_rows "$TMP/local/attacks.csv" "$TMP/slurm/attacks.csv" >"$TMP/log" 2>&1 \
  || fail "the CSV through Slurm differs from the local one"
echo "slurm sweep: $(($(wc -l <"$TMP/slurm/attacks.csv") - 1)) attacks through 3 array tasks, the same rows as the local run: ok"
