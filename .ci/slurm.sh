#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for the cluster tests (tests/test_slurm_*.py, `make test-cluster`).
# Debian's slurm-wlm and munge; slurmctld + slurmd on localhost, no cgroups (proctrack/linuxproc, task/none).
# Everything it starts lives in one folder ($CARDIO_SLURM_DIR, default /tmp/cardio-slurm): its own munged
# (socket, key), slurm.conf, state, spool, logs and pid files, so it touches no system-wide Slurm or munge set-up.
#
#   .ci/slurm.sh install          apt-get install slurm-wlm munge (a no-op when they are there)
#   .ci/slurm.sh start            start munged, slurmctld, slurmd; wait until the node is idle; print SLURM_CONF
#   .ci/slurm.sh stop             cancel every job, stop the three daemons by their pids, remove the folder
#   .ci/slurm.sh status           exit 0 when the cluster answers (sinfo), else 1
#   .ci/slurm.sh run CMD ARGS...  start, run CMD with SLURM_CONF exported, stop whatever happens (trap)
#
# Needs root (slurmd runs jobs as their submitter; munged runs as the `munge` user). The measured bring-up on
# the project's 2-core machine is in docs/cluster.md.
set -euo pipefail
DIR="${CARDIO_SLURM_DIR:-/tmp/cardio-slurm}"
CONF="$DIR/slurm.conf"
PARTITION="${CARDIO_SLURM_PARTITION:-debug}"

log() { echo "slurm.sh: $*" >&2; }

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo -n"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # the packages' post-install scripts try to start the system daemons through systemd; nothing here uses them
  $sudo apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

write_config() {
  local host cpus mem ctld_port slurmd_port
  host="$(hostname -s)"
  cpus="$(nproc)"
  # RealMemory a little below what is free, or slurmd reports the node as having less than configured (DRAIN)
  mem=$(($(free -m | awk '/^Mem:/ {print $2}') * 9 / 10))
  ctld_port="$(free_port)"
  slurmd_port="$(free_port)"
  cat >"$CONF" <<EOF
# written by .ci/slurm.sh: a one-node test cluster; see docs/cluster.md
ClusterName=cardio
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# jobs stay visible to scontrol/squeue for an hour after they end: without accounting (sacct) that is how their
# state is read (cardio/cluster/jobs.py)
MinJobAge=3600
KillWait=30
InactiveLimit=0
SlurmdTimeout=60
JobRequeue=1
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  mkdir -p "$DIR/munge"
  dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
  chown -R munge:munge "$DIR/munge"
  chmod 711 "$DIR/munge"  # munged: the socket dir must be searchable by every client
  chmod 400 "$DIR/munge/munge.key"
  runuser -u munge -- munged --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
    --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed"
}

wait_idle() {
  local state=""
  for _ in $(seq 1 120); do
    state="$(SLURM_CONF="$CONF" sinfo -h -o %T 2>/dev/null | head -1 || true)"
    if [ "$state" = idle ] || [ "$state" = mixed ] || [ "$state" = allocated ]; then
      return 0
    fi
    sleep 0.5
  done
  log "the node did not come up (state: '${state:-none}'); the logs:"
  tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
  return 1
}

start() {
  if [ -f "$DIR/slurmctld.pid" ] && SLURM_CONF="$CONF" sinfo >/dev/null 2>&1; then
    log "already running in $DIR"
    echo "export SLURM_CONF=$CONF"
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    log "start needs root (slurmd runs jobs as their submitter)"
    return 1
  fi
  local t0=$SECONDS
  rm -rf "$DIR"
  mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
  chmod 755 "$DIR"
  write_config
  start_munge
  SLURM_CONF="$CONF" slurmctld -f "$CONF"
  SLURM_CONF="$CONF" slurmd -f "$CONF"
  if ! wait_idle; then
    stop
    return 1
  fi
  log "one-node cluster up in $((SECONDS - t0)) s (partition $PARTITION, $(nproc) CPUs); stop it with .ci/slurm.sh stop"
  echo "export SLURM_CONF=$CONF"
}

stop_pid() {  # stop_pid NAME PIDFILE: SIGTERM the daemon named in PIDFILE, wait up to 20 s, then SIGKILL
  local name="$1" file="$2" pid
  [ -f "$file" ] || return 0
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name ($pid) did not stop: SIGKILL"
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
}

stop() {
  [ -d "$DIR" ] || return 0
  if [ -f "$CONF" ] && SLURM_CONF="$CONF" sinfo >/dev/null 2>&1; then
    local jobs
    jobs="$(SLURM_CONF="$CONF" squeue -h -o %A 2>/dev/null || true)"
    if [ -n "$jobs" ]; then
      # shellcheck disable=SC2086
      SLURM_CONF="$CONF" scancel $jobs 2>/dev/null || true
      for _ in $(seq 1 80); do
        [ -z "$(SLURM_CONF="$CONF" squeue -h -t all -o %A -t R,CG,PD 2>/dev/null || true)" ] && break
        sleep 0.5
      done
    fi
  fi
  stop_pid slurmd "$DIR/slurmd.pid"
  stop_pid slurmctld "$DIR/slurmctld.pid"
  stop_pid munged "$DIR/munge/munged.pid"
  if [ "${CARDIO_SLURM_KEEP:-0}" = 1 ]; then
    log "stopped; its files are kept in $DIR"
  else
    rm -rf "$DIR"
    log "stopped"
  fi
}

status() {
  [ -f "$CONF" ] && SLURM_CONF="$CONF" sinfo -h >/dev/null 2>&1
}

run() {
  start >/dev/null
  trap stop EXIT
  SLURM_CONF="$CONF" "$@"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 {install|start|stop|status|run CMD...}" >&2; exit 2 ;;
esac
