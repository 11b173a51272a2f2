#!/usr/bin/env bash
# Stop the daemons that slurm/start-test-cluster.sh started, by their pid
# files in $GANBENCH_SLURM_STATE, in reverse order; nothing else is touched.
# The configuration, job state and accounting database stay for the next start.
set -uo pipefail

STATE=${GANBENCH_SLURM_STATE:-/var/tmp/ganbench-slurm}

stop() {  # stop NAME: TERM the pid in $STATE/run/NAME.pid if it is that program, then KILL after 15 s
    local name=$1 pidfile="$STATE/run/$1.pid" pid comm
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
    if [ "$comm" != "$name" ]; then
        [ -n "$comm" ] && echo "stop-test-cluster: pid $pid of $pidfile is '$comm', not $name: left alone" >&2
        rm -f "$pidfile"
        return 0
    fi
    kill -TERM "$pid"
    for _ in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"
    fi
    rm -f "$pidfile"
    echo "stop-test-cluster: stopped $name (pid $pid)" >&2
}

for name in slurmd slurmctld slurmdbd mariadbd munged; do
    stop "$name"
done
