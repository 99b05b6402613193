/* The default thread count: cgroup CPU quotas (v2 cpu.max, v1 cfs quota/period) read from
 * sample cgroup trees written here, the tightest on the way to the root, "max" and -1 as no
 * quota, malformed and missing files as no quota; and the process's own figures. */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cpus.h"
#include "test.h"
#include "util.h"

static const char *root;

/* Writes text to root/rel, making the folders on the way. */
static void put(const char *rel, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *s = path + strlen(root) + 1; (s = strchr(s, '/')); s++) {
        *s = 0;
        mkdir(path, 0755);
        *s = '/';
    }
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* The quota for a /proc/self/cgroup holding proc, against the tree under root/<tree>. */
static double quota(const char *tree, const char *proc)
{
    char rel[256], base[4096], path[4096];
    snprintf(rel, sizeof rel, "%s/proc-cgroup", tree);
    put(rel, proc);
    snprintf(path, sizeof path, "%s/%s", root, rel);
    snprintf(base, sizeof base, "%s/%s", root, tree);
    return cpus_cgroup_quota(path, base);
}

static void check_near(double got, double want, const char *what)
{
    CHECK(got > want - 1e-9 && got < want + 1e-9);
    if (!(got > want - 1e-9 && got < want + 1e-9)) printf("%s: %g, wanted %g\n", what, got, want);
}

int main(void)
{
    root = test_tmp_dir("cpus");

    /* v2: the parent's 1.5 CPUs bind a child without a quota; a tighter child wins */
    put("v2a/a/cpu.max", "150000 100000\n");
    put("v2a/a/b/cpu.max", "max 100000\n");
    check_near(quota("v2a", "0::/a/b\n"), 1.5, "v2 parent quota");
    put("v2b/a/cpu.max", "150000 100000\n");
    put("v2b/a/b/cpu.max", "50000 100000\n");
    check_near(quota("v2b", "0::/a/b\n"), 0.5, "v2 child quota");
    put("v2c/a/cpu.max", "max 100000\n");
    check_near(quota("v2c", "0::/a\n"), 0, "v2 max");
    /* a container with its own cgroup namespace: "/", the quota at the mount's root */
    put("v2d/cpu.max", "300000 100000\n");
    check_near(quota("v2d", "0::/\n"), 3, "v2 namespace root");
    /* a path the mount does not show (another namespace's): its visible ancestors still count */
    put("v2e/cpu.max", "200000 100000\n");
    check_near(quota("v2e", "0::/not/here\n"), 2, "v2 missing path");

    /* v1: the hierarchy holding the cpu controller; -1 is no quota */
    put("v1a/cpu,cpuacct/job/cpu.cfs_quota_us", "250000\n");
    put("v1a/cpu,cpuacct/job/cpu.cfs_period_us", "100000\n");
    put("v1a/memory/job/cpu.cfs_quota_us", "10000\n"); /* not the cpu hierarchy: ignored */
    put("v1a/memory/job/cpu.cfs_period_us", "100000\n");
    check_near(quota("v1a", "5:memory:/job\n4:cpu,cpuacct:/job\n1:name=systemd:/job\n"), 2.5, "v1 quota");
    put("v1b/cpu,cpuacct/job/cpu.cfs_quota_us", "-1\n");
    put("v1b/cpu,cpuacct/job/cpu.cfs_period_us", "100000\n");
    check_near(quota("v1b", "4:cpu,cpuacct:/job\n"), 0, "v1 -1");
    put("v1c/cpuacct,cpu/job/cpu.cfs_quota_us", "100000\n");
    put("v1c/cpuacct,cpu/job/cpu.cfs_period_us", "100000\n");
    check_near(quota("v1c", "4:cpuacct,cpu:/job\n"), 1, "v1 controllers in the other order");

    /* malformed, empty, missing: no quota, no crash */
    put("bad/a/cpu.max", "lots 100000\n");
    check_near(quota("bad", "0::/a\n"), 0, "cpu.max garbage");
    put("bad2/a/cpu.max", "150000 0\n");
    check_near(quota("bad2", "0::/a\n"), 0, "period 0");
    check_near(quota("empty", ""), 0, "empty /proc/self/cgroup");
    check_near(quota("junk", "no colons here\n::\n0:\n"), 0, "junk /proc/self/cgroup");
    check_near(cpus_cgroup_quota("/nonexistent/cgroup", "/nonexistent"), 0, "missing files");

    /* this process: the affinity mask's count, usable within it, at least 1 */
    cpu_set_t set;
    CHECK(sched_getaffinity(0, sizeof set, &set) == 0);
    const cpus_t c = cpus_usable();
    CHECK_INT_EQ(c.affinity, CPU_COUNT(&set));
    CHECK(c.usable >= 1 && c.usable <= c.affinity);
    char buf[128];
    printf("this process: %s (affinity %d, quota %.2f)\n", cpus_describe(&c, buf, sizeof buf), c.affinity, c.quota);
    const cpus_t q = { .affinity = 8, .quota = 1.5, .usable = 1 };
    CHECK(strstr(cpus_describe(&q, buf, sizeof buf), "1 thread (cgroup CPU quota 1.50 CPUs)") != NULL);
    return test_result("test_cpus");
}
