#!/bin/sh
# A single-node Slurm on this machine, for the tests of `reproduce --executor slurm`: one node, localhost, with
# all its CPUs, its state, spool and logs under DIR (default /tmp/verydeep-slurm). Needs root and Debian's
# slurmctld, slurmd and munge (apt-get install -y slurmctld slurmd munge slurm-client). Prints the slurm.conf
# path: export SLURM_CONF=<it> for sbatch, squeue and the like to find this cluster.
#
#     tools/slurm_localhost.sh [DIR]        # start (again, if it is running)
#     tools/slurm_localhost.sh --stop [DIR]
set -eu
if [ "${1:-}" = "--stop" ]; then
    dir=${2:-/tmp/verydeep-slurm}
    for d in slurmd slurmctld; do
        [ -f "$dir/$d.pid" ] && kill "$(cat "$dir/$d.pid")" 2>/dev/null || true
    done
    exit 0
fi
dir=${1:-/tmp/verydeep-slurm}
mkdir -p "$dir/state" "$dir/spool"
cpus=$(nproc)
memory=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
cat > "$dir/slurm.conf" <<CONF
ClusterName=verydeep
SlurmctldHost=localhost
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=600
NodeName=localhost CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$dir/slurm.conf"
mkdir -p /run/munge /var/log/munge /var/lib/munge
[ -f /etc/munge/munge.key ] || mungekey --create 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null
chmod 400 /etc/munge/munge.key
pgrep -x munged >/dev/null || munged --force
for d in slurmd slurmctld; do
    [ -f "$dir/$d.pid" ] && kill "$(cat "$dir/$d.pid")" 2>/dev/null || true
done
sleep 1
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
    if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
        echo "$SLURM_CONF"
        exit 0
    fi
    sleep 1
done
echo "slurm did not come up: see $dir/slurmctld.log and $dir/slurmd.log" >&2
exit 1
