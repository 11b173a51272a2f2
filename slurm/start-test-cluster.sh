#!/usr/bin/env bash
# Start a one-node SLURM test cluster on this machine, with accounting.
#
#   slurm/start-test-cluster.sh          # as root; ~25 s from a fresh machine, idempotent
#   ganbench sweep SWEEP --executor slurm --profile test
#   slurm/stop-test-cluster.sh           # as root; ends exactly the daemons this script started
#
# No systemd is needed: the script starts munged, mariadbd (unix socket only,
# no network), slurmdbd, slurmctld and slurmd itself and keeps their pid files
# in $GANBENCH_SLURM_STATE (default /var/tmp/ganbench-slurm). It installs the
# Debian packages with apt-get when they are missing, writes
# /etc/slurm/slurm.conf and /etc/slurm/slurmdbd.conf (refusing to overwrite
# files it did not write), and waits until the node accepts jobs.
# Accounting (slurmdbd) is not optional: without it, sacct cannot report a
# finished job's state and submitit waits forever on a cancelled job.
set -euo pipefail

STATE=${GANBENCH_SLURM_STATE:-/var/tmp/ganbench-slurm}
MARK="# written by ganbench slurm/start-test-cluster.sh"
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
CLUSTER=ganbench
PARTITION=debug

say() { echo "start-test-cluster: $*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts system daemons)"

install_packages() {
    local missing=()
    for bin in munged mariadbd slurmdbd slurmctld slurmd sbatch; do
        command -v "$bin" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
    done
    [ ${#missing[@]} = 0 ] && return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install ${PACKAGES[*]}"
    say "installing ${PACKAGES[*]} (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    # Another apt-get may hold the dpkg lock: wait for it rather than fail.
    local apt=(apt-get -q -o DPkg::Lock::Timeout=600)
    local try
    for try in 1 2 3; do  # retry: a lock held by another apt-get, a flaky mirror
        if "${apt[@]}" update >"$STATE/log/apt.log" 2>&1 \
            && "${apt[@]}" install -y --no-install-recommends "${PACKAGES[@]}" >>"$STATE/log/apt.log" 2>&1; then
            return 0
        fi
        say "apt-get failed (try $try), retrying in 15 s; see $STATE/log/apt.log"
        sleep 15
    done
    die "apt-get could not install ${PACKAGES[*]}, see $STATE/log/apt.log"
}

alive() {  # alive PIDFILE: the pid in PIDFILE names a running process
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

wait_for() {  # wait_for SECONDS WHAT COMMAND...
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.5
    done
}

write_conf() {  # write_conf PATH MODE OWNER: stdin -> PATH, unless a foreign file is there
    local path=$1 mode=$2 owner=$3 tmp
    if [ -e "$path" ] && ! grep -qxF "$MARK" "$path"; then
        die "$path exists and was not written by this script; move it away to use the test cluster"
    fi
    tmp=$(mktemp "$path.XXXXXX")
    { echo "$MARK"; cat; } >"$tmp"
    chmod "$mode" "$tmp"
    chown "$owner" "$tmp"
    mv -f "$tmp" "$path"
}

export PATH=$PATH:/usr/sbin:/sbin
mkdir -p "$STATE"/{run,log,ctld,slurmd,mysql}
install_packages

NODE=$(hostname -s)
# The node line comes from slurmd -C: giving CPUs alone makes slurmd refuse
# to register (its topology would not match).
NODE_LINE=$(slurmd -C | head -n1 | sed -e "s/^NodeName=[^ ]*/NodeName=$NODE/")
chown slurm:slurm "$STATE/ctld" "$STATE/log"
chown mysql:mysql "$STATE/mysql"

mkdir -p /etc/slurm
write_conf /etc/slurm/slurm.conf 644 root:root <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
# Short credential lifetime: a requeued job may start again after 5 s, not 2 min.
AuthInfo=cred_expire=5
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# No cgroups needed.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=2
MpiDefault=none
ReturnToService=2
KillWait=5
JobRequeue=1
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
$NODE_LINE NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

write_conf /etc/slurm/slurmdbd.conf 600 slurm:slurm <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StorageLoc=slurm_acct_db
EOF

# 1. munge: every SLURM message is signed with it.
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "munged already running"
else
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 0755 /run/munge
    [ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key; chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key; }
    runuser -u munge -- munged --pid-file=/run/munge/munged.pid --log-file=/var/log/munge/munged.log
    wait_for 10 munge sh -c 'munge -n | unmunge' || die "munged did not start, see /var/log/munge/munged.log"
    # munged (user munge) cannot write into root's state folder: copy its pid file there.
    cp /run/munge/munged.pid "$STATE/run/munged.pid"
fi

# 2. mariadb for accounting: unix socket only, slurm logs in by socket (no password).
SOCK=/run/mysqld/mysqld.sock
if alive "$STATE/run/mariadbd.pid"; then
    say "mariadbd already running"
else
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    if [ ! -d "$STATE/mysql/mysql" ]; then
        mariadb-install-db --user=mysql --datadir="$STATE/mysql" --auth-root-authentication-method=socket \
            --skip-test-db >"$STATE/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed, see $STATE/log/mariadb-install.log"
    fi
    # mariadbd runs as user mysql: its pid file and log live in folders it owns.
    setsid mariadbd --user=mysql --datadir="$STATE/mysql" --skip-networking --socket="$SOCK" \
        --pid-file=/run/mysqld/mariadbd.pid --log-error="$STATE/mysql/mariadbd.log" </dev/null >/dev/null 2>&1 &
    wait_for 30 mariadb mariadb --socket="$SOCK" -e 'select 1' || die "mariadbd did not start, see $STATE/mysql/mariadbd.log"
    cp /run/mysqld/mariadbd.pid "$STATE/run/mariadbd.pid"
    mariadb --socket="$SOCK" <<'SQL'
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED VIA unix_socket;
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL
fi

# 3. slurmdbd, 4. slurmctld, 5. slurmd (each writes its own pid file).
if alive "$STATE/run/slurmdbd.pid"; then
    say "slurmdbd already running"
else
    slurmdbd
    wait_for 30 slurmdbd sacctmgr -n list cluster || die "slurmdbd did not start, see $STATE/log/slurmdbd.log"
fi
if alive "$STATE/run/slurmctld.pid"; then
    say "slurmctld already running"
else
    slurmctld
    wait_for 30 slurmctld scontrol ping || die "slurmctld did not start, see $STATE/log/slurmctld.log"
fi
if alive "$STATE/run/slurmd.pid"; then
    say "slurmd already running"
else
    slurmd
fi

node_ready() {
    local s
    s=$(sinfo -h -n "$NODE" -o %T 2>/dev/null) || return 1
    case $s in idle* | mixed* | allocated* | completing*) return 0 ;; *) return 1 ;; esac
}
if ! wait_for 30 node node_ready; then
    scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
    wait_for 15 node node_ready || die "node $NODE is $(sinfo -h -n "$NODE" -o %T) (see $STATE/log/slurmd.log, $STATE/log/slurmctld.log)"
fi
wait_for 30 accounting sh -c "sacctmgr -n -P list cluster format=cluster | grep -qx $CLUSTER" \
    || die "cluster $CLUSTER not registered in accounting, see $STATE/log/slurmdbd.log"
say "cluster $CLUSTER up: node $NODE ($(sinfo -h -n "$NODE" -o '%c CPUs, %T')), partition $PARTITION; logs in $STATE/log"
