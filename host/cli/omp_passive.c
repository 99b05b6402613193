/* The commands' OpenMP threads wait passively at barriers unless the user chose otherwise
 * (OMP_WAIT_POLICY). libgomp's default spins ~300,000 times before sleeping: no faster when the
 * cores are ours, and when another process takes one of two cores, a spinning thread holds its
 * core while the thread it waits for is descheduled (measured: README, "Threads and shared cores"). libgomp reads
 * its environment once, in its constructor, before main; an executable's .preinit_array runs
 * before any shared library's constructor (ELF gABI, DT_PREINIT_ARRAY), so the default is set
 * there. Linked into qasr and qasr-batch only: a library cannot do this for its host. */
#include <stdlib.h>

static void omp_passive(int argc, char **argv, char **envp)
{
    (void)argc, (void)argv, (void)envp;
    setenv("OMP_WAIT_POLICY", "PASSIVE", 0); /* 0: the user's own setting stays */
}

__attribute__((section(".preinit_array"), used)) static void (*const omp_passive_entry)(int, char **, char **) =
    omp_passive;
