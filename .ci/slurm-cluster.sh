#!/usr/bin/env bash
# A single-node SLURM cluster with one fake GPU, for CI and for trying profiles/slurm on one machine.
#
#   .ci/slurm-cluster.sh install   # Debian's slurm-wlm + munge (apt-get), if missing
#   .ci/slurm-cluster.sh start     # munged, slurmctld, slurmd
#   .ci/slurm-cluster.sh status
#   .ci/slurm-cluster.sh stop      # only the daemons `start` started, by their pid files
#
# Runs as root without systemd. Everything (config, state, logs, pid files, a private munge key
# and socket, non-default ports) lives in $DPO_SLURM_DIR; the only things outside it are links at
# SLURM's default config paths, which clients need (the plugin's job step drops SLURM_CONF before
# its `srun`). A machine with its own /etc/slurm/slurm.conf is left alone: start refuses.
set -euo pipefail

DIR=${DPO_SLURM_DIR:-/tmp/dpo-study-slurm}
CONF=$DIR/slurm.conf
CONF_LINKS=(/etc/slurm/slurm.conf /etc/slurm/gres.conf)
MUNGE_SOCKET=$DIR/munge/munge.socket
# pid file -> the process name it must belong to (a stale pid file never stops a stranger)
DAEMONS=("slurmd.pid:slurmd" "slurmctld.pid:slurmctld" "munge/munged.pid:munged")

say() { echo "slurm-cluster: $*" >&2; }
die() { say "$*"; exit 1; }

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
        return
    fi
    [[ $(id -u) == 0 ]] || die "installing needs root: apt-get install slurm-wlm munge"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

running_pid() {  # running_pid <pid file> <process name>: the pid, if that process is alive
    local pid
    [[ -s $DIR/$1 ]] || return 1
    pid=$(<"$DIR/$1")
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] && echo "$pid"
}

started() {  # started <pid file> <process name>: wait until the daemon has written its pid file
    for _ in $(seq 50); do
        running_pid "$1" "$2" >/dev/null && return
        sleep 0.2
    done
    say "$2 did not start; logs in $DIR"
    return 1
}

write_config() {
    # The node as slurmd sees this machine (name, CPUs, memory), plus one GPU backed by /dev/null.
    local node
    node=$(slurmd -C | head -1)
    cat >"$CONF" <<EOF
ClusterName=dpo-study
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# No cgroups and no systemd here: track job processes by parent id, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job that asks for no memory takes the whole node.
DefMemPerCPU=1000
GresTypes=gpu
# Finished jobs stay visible to squeue/scontrol for an hour (no slurmdbd, so no sacct).
MinJobAge=3600
ReturnToService=2
KillWait=5
MpiDefault=none
SwitchType=switch/none
$node NodeAddr=127.0.0.1 Gres=gpu:1 State=UNKNOWN
PartitionName=gpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$DIR/gres.conf" <<EOF
AutoDetect=off
Name=gpu File=/dev/null
EOF
}

start() {
    [[ $(id -u) == 0 ]] || die "start needs root"
    command -v slurmctld >/dev/null || die "SLURM is not installed: run '$0 install'"
    for link in "${CONF_LINKS[@]}"; do
        if [[ -e $link && $(readlink "$link") != "$DIR/${link##*/}" ]]; then
            die "$link exists and is not this script's: this machine has its own SLURM"
        fi
    done
    for daemon in "${DAEMONS[@]}"; do
        ! running_pid "${daemon%%:*}" "${daemon##*:}" >/dev/null || die "already running (see '$0 status')"
    done
    local started=$SECONDS link
    # a start that fails half-way stops what it had started
    trap 'say "start failed"; stop' EXIT
    # a fresh cluster each start: no jobs or node state from an earlier one
    rm -rf "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/munge"
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
    install -d -o munge -g munge -m 0755 "$DIR/munge"
    runuser -u munge -- mungekey --create --keyfile="$DIR/munge/munge.key"
    runuser -u munge -- munged --socket="$MUNGE_SOCKET" --key-file="$DIR/munge/munge.key" \
        --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed" \
        --num-threads=10
    started munge/munged.pid munged
    write_config
    for link in "${CONF_LINKS[@]}"; do
        mkdir -p "${link%/*}"
        ln -sfn "$DIR/${link##*/}" "$link"
    done
    slurmctld -i
    started slurmctld.pid slurmctld
    slurmd
    started slurmd.pid slurmd
    for _ in $(seq 60); do
        if [[ $(sinfo -h -o %T 2>/dev/null) == idle ]]; then
            say "up in $((SECONDS - started)) s: $(sinfo -h -o '%P %N %c CPUs %m MB %G %T')"
            trap - EXIT
            return
        fi
        sleep 1
    done
    say "the node did not become idle; logs in $DIR/log"
    false
}

stop() {
    local pid link
    # Cancel the jobs still on this cluster and let slurmd end their steps before it stops.
    if running_pid slurmctld.pid slurmctld >/dev/null; then
        scancel --quiet --user="$(id -un)" 2>/dev/null || true
        for _ in $(seq 30); do
            [[ -z $(squeue -h -t running,completing 2>/dev/null) ]] && break
            sleep 0.5
        done
    fi
    for daemon in "${DAEMONS[@]}"; do
        pid=$(running_pid "${daemon%%:*}" "${daemon##*:}") || continue
        kill "$pid"
        for _ in $(seq 50); do
            [[ -d /proc/$pid ]] || break
            sleep 0.2
        done
        [[ ! -d /proc/$pid ]] || kill -KILL "$pid"
        say "stopped ${daemon##*:} ($pid)"
    done
    for link in "${CONF_LINKS[@]}"; do
        if [[ $(readlink "$link" 2>/dev/null) == "$DIR/${link##*/}" ]]; then
            rm "$link"
        fi
    done
}

status() {
    local pid
    for daemon in "${DAEMONS[@]}"; do
        pid=$(running_pid "${daemon%%:*}" "${daemon##*:}") && say "${daemon##*:} running ($pid)" ||
            say "${daemon##*:} not running"
    done
    sinfo 2>/dev/null || true
}

case ${1:-} in
    install) install_packages ;;
    start | stop | status) "$1" ;;
    *) die "usage: $0 install|start|stop|status" ;;
esac
