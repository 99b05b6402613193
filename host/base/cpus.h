/* How many CPUs this process may really use: the default thread count. A machine's core count
 * is the wrong answer in a container or a Slurm job: the affinity mask (taskset, Slurm's
 * cpuset) names the CPUs the process may run on, and a cgroup CPU quota (cpu.max: docker
 * --cpus, Kubernetes limits, Slurm with cgroup CPU limits) caps the time it gets on them. */
#ifndef QASR_CPUS_H
#define QASR_CPUS_H

typedef struct {
    int affinity;     /* CPUs in the affinity mask */
    double quota;     /* the tightest cgroup CPU quota on the way to the root, in CPUs; 0: none */
    int usable;       /* min(affinity, floor(quota)), at least 1 */
} cpus_t;

/* The process's own: /proc/self/cgroup, /sys/fs/cgroup. */
cpus_t cpus_usable(void);

/* The quota in CPUs (0: none) for the cgroup named in proc_cgroup (a /proc/self/cgroup file)
 * under cgroup_root (where cgroup file systems are mounted): cgroup v2 cpu.max ("max 100000",
 * "150000 100000") and v1 cpu.cfs_quota_us / cpu.cfs_period_us, the smallest on the path from
 * the process's cgroup up to the root. Missing or malformed files count as no quota. */
double cpus_cgroup_quota(const char *proc_cgroup, const char *cgroup_root);

/* "2 threads" plus where the number comes from when it is not the machine's count, e.g.
 * " (cgroup quota 1.50 CPUs)"; for -v. Into buf, which it returns. */
const char *cpus_describe(const cpus_t *c, char *buf, int size);

#endif
