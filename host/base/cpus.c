#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "cpus.h"

#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The quota of one cgroup directory in CPUs, 0 when it has none (or says nothing readable). */
static double dir_quota(const char *dir, int v2)
{
    char path[4096 + 32];
    double quota = 0, period = 0;
    if (v2) {
        snprintf(path, sizeof path, "%s/cpu.max", dir);
        FILE *f = fopen(path, "r");
        if (!f) return 0;
        char q[32] = "";
        if (fscanf(f, "%31s %lf", q, &period) != 2 || !strcmp(q, "max") || sscanf(q, "%lf", &quota) != 1) quota = 0;
        fclose(f);
    } else {
        snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", dir);
        FILE *f = fopen(path, "r");
        if (!f) return 0;
        if (fscanf(f, "%lf", &quota) != 1) quota = 0;
        fclose(f);
        snprintf(path, sizeof path, "%s/cpu.cfs_period_us", dir);
        if (!(f = fopen(path, "r"))) return 0;
        if (fscanf(f, "%lf", &period) != 1) period = 0;
        fclose(f);
    }
    return quota > 0 && period > 0 ? quota / period : 0;
}

/* The smallest quota from base/rel up to base. */
static double path_quota(const char *base, const char *rel, int v2)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s%s", base, rel);
    const size_t base_len = strlen(base);
    double best = 0;
    for (;;) {
        const double q = dir_quota(dir, v2);
        if (q > 0 && (best == 0 || q < best)) best = q;
        char *slash = strrchr(dir, '/');
        if (!slash || (size_t)(slash - dir) < base_len) break;
        *slash = 0;
    }
    return best;
}

double cpus_cgroup_quota(const char *proc_cgroup, const char *cgroup_root)
{
    FILE *f = fopen(proc_cgroup, "r");
    if (!f) return 0;
    char line[4096];
    double best = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        /* "hierarchy-id:controllers:path"; v2 is "0::/path" */
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2 || c2[1] != '/') continue;
        const char *rel = strcmp(c2 + 1, "/") ? c2 + 1 : "";
        char base[4096];
        double q = 0;
        *c1 = *c2 = 0;
        const char *controllers = c1 + 1;
        if (!strcmp(line, "0") && !*controllers) {
            snprintf(base, sizeof base, "%s", cgroup_root);
            q = path_quota(base, rel, 1);
        } else {
            for (const char *name = controllers; name && *name;) { /* v1: the hierarchy with "cpu" */
                const size_t len = strcspn(name, ",");
                if (len == 3 && !strncmp(name, "cpu", 3)) {
                    snprintf(base, sizeof base, "%s/%s", cgroup_root, controllers);
                    q = path_quota(base, rel, 0);
                    break;
                }
                name = name[len] ? name + len + 1 : NULL;
            }
        }
        if (q > 0 && (best == 0 || q < best)) best = q;
    }
    fclose(f);
    return best;
}

cpus_t cpus_usable(void)
{
    cpus_t c = { 0 };
    cpu_set_t set;
    c.affinity = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
    if (c.affinity <= 0) c.affinity = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (c.affinity <= 0) c.affinity = 1;
    c.quota = cpus_cgroup_quota("/proc/self/cgroup", "/sys/fs/cgroup");
    c.usable = c.affinity;
    /* floor: 2 threads under a 1.5-CPU quota get throttled together in every period */
    if (c.quota > 0 && (int)floor(c.quota) < c.usable) c.usable = (int)floor(c.quota);
    if (c.usable < 1) c.usable = 1;
    return c;
}

const char *cpus_describe(const cpus_t *c, char *buf, int size)
{
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    int n = snprintf(buf, size, "%d thread%s", c->usable, c->usable == 1 ? "" : "s");
    if (c->quota > 0 && (int)floor(c->quota) < c->affinity)
        snprintf(buf + n, size - n, " (cgroup CPU quota %.2f CPUs)", c->quota);
    else if (c->affinity < online)
        snprintf(buf + n, size - n, " (affinity: %d of %ld CPUs)", c->affinity, online);
    return buf;
}
