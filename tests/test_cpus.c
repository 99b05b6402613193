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

    static const struct {
        const char *what, *tree, *files[3][2], *proc;
        double want;
    } cases[] = {
        { "v2: a parent's quota binds a child without one", "v2a",
          { { "a/cpu.max", "150000 100000\n" }, { "a/b/cpu.max", "max 100000\n" } }, "0::/a/b\n", 1.5 },
        { "v2: a tighter child wins", "v2b",
          { { "a/cpu.max", "150000 100000\n" }, { "a/b/cpu.max", "50000 100000\n" } }, "0::/a/b\n", 0.5 },
        { "v2: max is no quota", "v2c", { { "a/cpu.max", "max 100000\n" } }, "0::/a\n", 0 },
        { "v2: own cgroup namespace, the quota at the mount's root", "v2d",
          { { "cpu.max", "300000 100000\n" } }, "0::/\n", 3 },
        { "v2: a path the mount does not show, its visible ancestors count", "v2e",
          { { "cpu.max", "200000 100000\n" } }, "0::/not/here\n", 2 },
        { "v1: the cpu hierarchy's quota, not another's", "v1a",
          { { "cpu,cpuacct/job/cpu.cfs_quota_us", "250000\n" }, { "cpu,cpuacct/job/cpu.cfs_period_us", "100000\n" },
            { "memory/job/cpu.cfs_quota_us", "10000\n" } },
          "5:memory:/job\n4:cpu,cpuacct:/job\n1:name=systemd:/job\n", 2.5 },
        { "v1: -1 is no quota", "v1b",
          { { "cpu,cpuacct/job/cpu.cfs_quota_us", "-1\n" }, { "cpu,cpuacct/job/cpu.cfs_period_us", "100000\n" } },
          "4:cpu,cpuacct:/job\n", 0 },
        { "v1: controllers in the other order", "v1c",
          { { "cpuacct,cpu/job/cpu.cfs_quota_us", "100000\n" }, { "cpuacct,cpu/job/cpu.cfs_period_us", "100000\n" } },
          "4:cpuacct,cpu:/job\n", 1 },
        { "cpu.max garbage", "bad", { { "a/cpu.max", "lots 100000\n" } }, "0::/a\n", 0 },
        { "period 0", "bad2", { { "a/cpu.max", "150000 0\n" } }, "0::/a\n", 0 },
        { "empty /proc/self/cgroup", "empty", { { 0 } }, "", 0 },
        { "junk /proc/self/cgroup", "junk", { { 0 } }, "no colons here\n::\n0:\n", 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char rel[256];
        for (int f = 0; f < 3 && cases[i].files[f][0]; f++) {
            snprintf(rel, sizeof rel, "%s/%s", cases[i].tree, cases[i].files[f][0]);
            put(rel, cases[i].files[f][1]);
        }
        check_near(quota(cases[i].tree, cases[i].proc), cases[i].want, cases[i].what);
    }
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
