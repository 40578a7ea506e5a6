/* procs.c — the processes under a bench: CPU seconds and peak RSS (VmHWM) of
 * this process's descendants, named by node, from /proc. */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "lib/util.h"
#include "tools/bench/bench.h"
#include "tools/toolkit.h"

/* Busy and total CPU seconds of the whole machine since boot. */
static void machine_cpu(double *busy_s, double *total_s)
{
    unsigned long long v[10] = {0};
    *busy_s = *total_s = 0;
    FILE *f = fopen("/proc/stat", "re");
    if (!f)
        return;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
                   &v[5], &v[6], &v[7], &v[8], &v[9]);
    fclose(f);
    if (n < 8)
        return;
    /* user nice system idle iowait irq softirq steal (guest is inside user) */
    unsigned long long total = 0;
    for (int i = 0; i < 8; i++)
        total += v[i];
    long tick = sysconf(_SC_CLK_TCK);
    double t = (double)(tick > 0 ? tick : 100);
    *total_s = (double)total / t;
    *busy_s = (double)(total - v[3] - v[4]) / t;
}

/* utime+stime in seconds and the parent of pid; -1 when it is gone. */
static int read_stat(pid_t pid, double *cpu_s, pid_t *ppid)
{
    char path[64], buf[1024];
    bench_fmt(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    char state;
    int pp;
    unsigned long long ut, st;
    if (sscanf(p + 2, "%c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &state, &pp, &ut, &st) != 4)
        return -1;
    static long tick;
    if (!tick)
        tick = sysconf(_SC_CLK_TCK);
    if (cpu_s)
        *cpu_s = (double)(ut + st) / (double)(tick > 0 ? tick : 100);
    if (ppid)
        *ppid = pp;
    return 0;
}

/* A readable name: the node id for a renkei node (from --config
 * DIR/nodes/<id>/node.conf), "nginx master"/"nginx worker", or the program. */
static void proc_name(pid_t pid, char *out, size_t outlen)
{
    char path[64], buf[4096];
    bench_fmt(out, outlen, "pid %d", (int)pid);
    bench_fmt(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    const char *args[16];
    int na = 0;
    for (char *p = buf; p < buf + n && na < 16; p += strlen(p) + 1)
        args[na++] = p;
    if (na == 0)
        return;
    if (strncmp(args[0], "nginx: master", 13) == 0) {
        bench_fmt(out, outlen, "nginx master");
        return;
    }
    if (strncmp(args[0], "nginx: worker", 13) == 0) {
        bench_fmt(out, outlen, "nginx worker");
        return;
    }
    for (int i = 0; i + 1 < na; i++) {
        if (strcmp(args[i], "--config") != 0)
            continue;
        char dir[TK_PATH_CAP];
        rk_dirname(args[i + 1], dir, sizeof dir);
        const char *slash = strrchr(dir, '/');
        bench_fmt(out, outlen, "%s", slash ? slash + 1 : dir);
        return;
    }
    const char *prog = args[0];
    const char *base = strrchr(prog, '/');
    base = base ? base + 1 : prog;
    if ((strcmp(base, "bash") == 0 || strcmp(base, "sh") == 0) && na > 1) {
        base = strrchr(args[1], '/');
        base = base ? base + 1 : args[1];
    }
    bench_fmt(out, outlen, "%s", base);
}

/* A process tree counted with the bench's own though it is not under it:
 * a PostgreSQL server that pg_ctl started as another user (fresh_net.c). */
static pid_t also_root;
static char also_name[64];

void bench_procs_also(pid_t root, const char *name)
{
    also_root = root;
    bench_fmt(also_name, sizeof also_name, "%s", name);
}

/* Every living descendant of root (children, grandchildren, …), with root
 * itself when with_root. */
static int list_tree(pid_t root, int with_root, pid_t *out, int cap)
{
    DIR *d = opendir("/proc");
    if (!d || cap < 1) {
        if (d)
            closedir(d);
        return 0;
    }
    static pid_t pids[65536], parents[65536];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 65536) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        pid_t pp;
        if (read_stat((pid_t)pid, NULL, &pp) == 0) {
            pids[n] = (pid_t)pid;
            parents[n++] = pp;
        }
    }
    closedir(d);
    int found = 0;
    out[found++] = root;
    for (int k = 0; k < found; k++) /* breadth first over the tree */
        for (int i = 0; i < n && found < cap; i++)
            if (parents[i] == out[k])
                out[found++] = pids[i];
    if (with_root)
        return found;
    for (int i = 1; i < found; i++)
        out[i - 1] = out[i];
    return found - 1;
}

/* Every living descendant of this process. */
static int list_descendants(pid_t *out, int cap)
{
    return list_tree(getpid(), 0, out, cap);
}

void bench_snap_take(bench_proc_snap *s)
{
    pid_t pids[BENCH_MAX_PROCS + 1];
    int n = list_descendants(pids, BENCH_MAX_PROCS + 1), mine = n;
    if (also_root > 0 && n < BENCH_MAX_PROCS)
        n += list_tree(also_root, 1, pids + n, BENCH_MAX_PROCS - n);
    s->n = 0;
    for (int i = 0; i < n && s->n < BENCH_MAX_PROCS; i++) {
        bench_proc_entry *p = &s->p[s->n];
        if (read_stat(pids[i], &p->cpu_s, NULL) != 0)
            continue;
        p->pid = pids[i];
        if (i < mine)
            proc_name(pids[i], p->name, sizeof p->name);
        else
            bench_fmt(p->name, sizeof p->name, "%s", also_name);
        s->n++;
    }
    read_stat(getpid(), &s->self_cpu_s, NULL);
    machine_cpu(&s->machine_busy_s, &s->machine_total_s);
    s->at = rk_mono_s();
}

typedef struct cpu_row {
    const char *name;
    double used;
} cpu_row;

static int cmp_row(const void *a, const void *b)
{
    double x = ((const cpu_row *)a)->used, y = ((const cpu_row *)b)->used;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* CPU seconds used between two snapshots, busiest first; with `ops` > 0
 * (the successes counted in the window) also the CPU per operation (`one`
 * names it), which is the cost of each hop (docs/bench.md). */
void bench_cpu_print(const bench_proc_snap *a, const bench_proc_snap *b, const char *title, uint64_t ops,
                     const char *one)
{
    cpu_row rows[BENCH_MAX_PROCS + 1];
    int n = 0;
    double wall = b->at - a->at, total = 0;
    for (int i = 0; i < b->n; i++) {
        double before = 0;
        for (int j = 0; j < a->n; j++)
            if (a->p[j].pid == b->p[i].pid)
                before = a->p[j].cpu_s;
        int same = -1; /* processes of one name (a server's backends) are one row */
        for (int k = 0; k < n && same < 0; k++)
            if (strcmp(rows[k].name, b->p[i].name) == 0)
                same = k;
        if (same >= 0)
            rows[same].used += b->p[i].cpu_s - before;
        else
            rows[n++] = (cpu_row){b->p[i].name, b->p[i].cpu_s - before};
    }
    rows[n++] = (cpu_row){"bench client (this process)", b->self_cpu_s - a->self_cpu_s};
    qsort(rows, (size_t)n, sizeof *rows, cmp_row);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    printf("  %s (%.2f s wall, %ld cores = %.2f CPU-s available):\n", title, wall, cores, wall * (double)cores);
    for (int i = 0; i < n; i++) {
        total += rows[i].used;
        if (rows[i].used < 0.005 && i > 0)
            continue;
        printf("    %-30s %7.2f s  %4.0f%% of one core", rows[i].name, rows[i].used,
               wall > 0 ? 100.0 * rows[i].used / wall : 0.0);
        if (ops > 0)
            printf("  %7.3f ms per %s", 1000.0 * rows[i].used / (double)ops, one);
        putchar('\n');
    }
    printf("    %-30s %7.2f s  %4.0f%% of the machine", "total, every process", total,
           wall > 0 && cores > 0 ? 100.0 * total / (wall * (double)cores) : 0.0);
    if (ops > 0)
        printf("  %7.3f ms per %s", 1000.0 * total / (double)ops, one);
    putchar('\n');
    double busy = b->machine_busy_s - a->machine_busy_s, all = b->machine_total_s - a->machine_total_s;
    if (all > 0) {
        double others = busy - total;
        printf("    %-30s %7.2f s  %4.0f%% of the machine busy in all (interrupts and other processes: %.2f s%s)\n",
               "machine (/proc/stat)", busy, 100.0 * busy / all, others > 0 ? others : 0.0,
               others > 0.1 * all ? " - the machine was not ours alone" : "");
    }
    fflush(stdout);
}

static long proc_hwm_kb(pid_t pid)
{
    char path[64], line[256];
    bench_fmt(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    long kb = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

void bench_rss_print(void)
{
    pid_t pids[BENCH_MAX_PROCS];
    int n = list_descendants(pids, BENCH_MAX_PROCS);
    printf("  peak RSS (VmHWM):\n");
    for (int i = 0; i < n; i++) {
        char name[64];
        long kb = proc_hwm_kb(pids[i]);
        if (kb < 0)
            continue;
        proc_name(pids[i], name, sizeof name);
        printf("    %-30s %8.1f MiB\n", name, (double)kb / 1024.0);
    }
    printf("    %-30s %8.1f MiB\n", "bench client (this process)", (double)proc_hwm_kb(getpid()) / 1024.0);
    fflush(stdout);
}
