/* store/sqlite/memsub.c — statement journals in memory (memsub.h).
 *
 * Inside a write transaction every savepoint (one per write of a group
 * commit, one per item of a batch: store/db.c) copies each page it first
 * changes to the statement journal, so that ROLLBACK TO can put it back.
 * SQLite keeps that journal in memory up to 64 KiB, then moves it to a
 * temporary file, made and unlinked each transaction: two pwrite(2) calls
 * per page copied. A bulk write of 500 persons copies thousands of pages,
 * and those calls were most of the system calls of a node enrolling in
 * bulk. (Raising SQLite's own bound, SQLITE_CONFIG_STMTJRNL_SPILL, does
 * not work in 3.40: the spill then writes chunks of more than 128 KiB in
 * one call, which the unix VFS cuts short, and the write fails "disk
 * full".)
 *
 * This VFS is the default one with one change: a statement journal
 * (SQLITE_OPEN_SUBJOURNAL, no name) lives in memory up to MEM_MAX bytes,
 * and beyond that in the temporary file SQLite would have made, written in
 * pieces the unix VFS takes whole. It is only ever a scratch copy for a
 * rollback inside a transaction: nothing durable depends on it (a crash
 * loses the transaction, whose commit had not returned). Every other file
 * is the default VFS's own, its methods unwrapped. The memory is mapped
 * (from malloc, it stayed in the arenas of the threads that led commits),
 * and the mapping of a closed journal is kept for the next one (one is
 * open at a time per writer): a fresh mapping each transaction cost a
 * page fault every 4 KiB written. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "store/sqlite/memsub.h"

#define MEM_MAX (16 << 20) /* bytes of one statement journal in memory */
#define PIECE (64 << 10)   /* what one write to the spilled file carries */

typedef struct memsub {
    sqlite3_file base;
    sqlite3_vfs *parent;
    int flags;
    unsigned char *buf;
    sqlite3_int64 size, cap;
    sqlite3_file *real; /* spilled: every call goes there */
} memsub;

static sqlite3_vfs vfs;
static sqlite3_vfs *parent;

/* The kept mapping, the largest seen. */
static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char *spare;
static sqlite3_int64 spare_cap;

static void take_spare(memsub *m)
{
    pthread_mutex_lock(&spare_lock);
    m->buf = spare;
    m->cap = spare_cap;
    spare = NULL;
    spare_cap = 0;
    pthread_mutex_unlock(&spare_lock);
}

static void give_back(memsub *m)
{
    if (!m->buf)
        return;
    pthread_mutex_lock(&spare_lock);
    if (m->cap > spare_cap) { /* keep the larger */
        unsigned char *old = spare;
        sqlite3_int64 old_cap = spare_cap;
        spare = m->buf;
        spare_cap = m->cap;
        m->buf = old;
        m->cap = old_cap;
    }
    pthread_mutex_unlock(&spare_lock);
    if (m->buf)
        munmap(m->buf, (size_t)m->cap);
    m->buf = NULL;
    m->cap = 0;
}

static int ms_close(sqlite3_file *f)
{
    memsub *m = (memsub *)f;
    int rc = SQLITE_OK;
    if (m->real) {
        rc = m->real->pMethods ? m->real->pMethods->xClose(m->real) : SQLITE_OK;
        free(m->real);
    }
    give_back(m);
    m->real = NULL;
    return rc;
}

static int ms_read(sqlite3_file *f, void *out, int n, sqlite3_int64 off)
{
    memsub *m = (memsub *)f;
    if (m->real)
        return m->real->pMethods->xRead(m->real, out, n, off);
    if (off >= m->size) {
        memset(out, 0, (size_t)n);
        return SQLITE_IOERR_SHORT_READ;
    }
    sqlite3_int64 have = m->size - off;
    if (have < n) {
        memcpy(out, m->buf + off, (size_t)have);
        memset((unsigned char *)out + have, 0, (size_t)(n - have));
        return SQLITE_IOERR_SHORT_READ;
    }
    memcpy(out, m->buf + off, (size_t)n);
    return SQLITE_OK;
}

/* Moves the journal to a temporary file of the default VFS. */
static int spill(memsub *m)
{
    sqlite3_file *real = calloc(1, (size_t)m->parent->szOsFile);
    if (!real)
        return SQLITE_IOERR_NOMEM;
    int rc = m->parent->xOpen(m->parent, NULL, real, m->flags, NULL);
    for (sqlite3_int64 at = 0; rc == SQLITE_OK && at < m->size; at += PIECE) {
        int n = m->size - at < PIECE ? (int)(m->size - at) : PIECE;
        rc = real->pMethods->xWrite(real, m->buf + at, n, at);
    }
    if (rc != SQLITE_OK) {
        if (real->pMethods)
            real->pMethods->xClose(real);
        free(real);
        return rc;
    }
    give_back(m);
    m->real = real;
    return SQLITE_OK;
}

static int ms_write(sqlite3_file *f, const void *in, int n, sqlite3_int64 off)
{
    memsub *m = (memsub *)f;
    sqlite3_int64 end = off + n;
    if (!m->real && end > MEM_MAX) {
        int rc = spill(m);
        if (rc != SQLITE_OK)
            return rc;
    }
    if (m->real)
        return m->real->pMethods->xWrite(m->real, in, n, off);
    if (!m->buf)
        take_spare(m);
    if (end > m->cap) {
        sqlite3_int64 cap = m->cap ? m->cap : 64 << 10;
        while (cap < end)
            cap *= 2;
        if (cap > MEM_MAX)
            cap = MEM_MAX;
        void *grown = m->buf ? mremap(m->buf, (size_t)m->cap, (size_t)cap, MREMAP_MAYMOVE)
                             : mmap(NULL, (size_t)cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (grown == MAP_FAILED)
            return SQLITE_IOERR_NOMEM;
        m->buf = grown;
        m->cap = cap;
    }
    if (off > m->size)
        memset(m->buf + m->size, 0, (size_t)(off - m->size));
    memcpy(m->buf + off, in, (size_t)n);
    if (end > m->size)
        m->size = end;
    return SQLITE_OK;
}

static int ms_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    memsub *m = (memsub *)f;
    if (m->real)
        return m->real->pMethods->xTruncate(m->real, size);
    if (size < m->size)
        m->size = size;
    return SQLITE_OK;
}

static int ms_sync(sqlite3_file *f, int flags)
{
    memsub *m = (memsub *)f;
    return m->real ? m->real->pMethods->xSync(m->real, flags) : SQLITE_OK;
}

static int ms_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    memsub *m = (memsub *)f;
    if (m->real)
        return m->real->pMethods->xFileSize(m->real, size);
    *size = m->size;
    return SQLITE_OK;
}

static int ms_lock(sqlite3_file *f, int level) { (void)f; (void)level; return SQLITE_OK; }
static int ms_check_lock(sqlite3_file *f, int *out) { (void)f; *out = 0; return SQLITE_OK; }
static int ms_control(sqlite3_file *f, int op, void *arg) { (void)f; (void)op; (void)arg; return SQLITE_NOTFOUND; }
static int ms_sector(sqlite3_file *f) { (void)f; return 4096; }
static int ms_device(sqlite3_file *f) { (void)f; return 0; }

static const sqlite3_io_methods ms_methods = {
    .iVersion = 1,
    .xClose = ms_close,
    .xRead = ms_read,
    .xWrite = ms_write,
    .xTruncate = ms_truncate,
    .xSync = ms_sync,
    .xFileSize = ms_file_size,
    .xLock = ms_lock,
    .xUnlock = ms_lock,
    .xCheckReservedLock = ms_check_lock,
    .xFileControl = ms_control,
    .xSectorSize = ms_sector,
    .xDeviceCharacteristics = ms_device,
};

static int v_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    (void)v;
    if (!name && (flags & SQLITE_OPEN_SUBJOURNAL)) {
        memsub *m = (memsub *)f;
        memset(m, 0, sizeof *m);
        m->parent = parent;
        m->flags = flags;
        m->base.pMethods = &ms_methods;
        if (out_flags)
            *out_flags = flags;
        return SQLITE_OK;
    }
    return parent->xOpen(parent, name, f, flags, out_flags); /* its own methods from here on */
}

/* The rest is the default VFS's. */
static int v_delete(sqlite3_vfs *v, const char *n, int sync) { (void)v; return parent->xDelete(parent, n, sync); }
static int v_access(sqlite3_vfs *v, const char *n, int flags, int *out)
{
    (void)v;
    return parent->xAccess(parent, n, flags, out);
}
static int v_full(sqlite3_vfs *v, const char *n, int size, char *out)
{
    (void)v;
    return parent->xFullPathname(parent, n, size, out);
}
static void *v_dlopen(sqlite3_vfs *v, const char *n) { (void)v; return parent->xDlOpen(parent, n); }
static void v_dlerror(sqlite3_vfs *v, int n, char *out) { (void)v; parent->xDlError(parent, n, out); }
static void (*v_dlsym(sqlite3_vfs *v, void *h, const char *s))(void) { (void)v; return parent->xDlSym(parent, h, s); }
static void v_dlclose(sqlite3_vfs *v, void *h) { (void)v; parent->xDlClose(parent, h); }
static int v_random(sqlite3_vfs *v, int n, char *out) { (void)v; return parent->xRandomness(parent, n, out); }
static int v_sleep(sqlite3_vfs *v, int us) { (void)v; return parent->xSleep(parent, us); }
static int v_time(sqlite3_vfs *v, double *out) { (void)v; return parent->xCurrentTime(parent, out); }
static int v_last_error(sqlite3_vfs *v, int n, char *out) { (void)v; return parent->xGetLastError(parent, n, out); }
static int v_time64(sqlite3_vfs *v, sqlite3_int64 *out) { (void)v; return parent->xCurrentTimeInt64(parent, out); }
static int v_set_call(sqlite3_vfs *v, const char *n, sqlite3_syscall_ptr p)
{
    (void)v;
    return parent->xSetSystemCall(parent, n, p);
}
static sqlite3_syscall_ptr v_get_call(sqlite3_vfs *v, const char *n) { (void)v; return parent->xGetSystemCall(parent, n); }
static const char *v_next_call(sqlite3_vfs *v, const char *n) { (void)v; return parent->xNextSystemCall(parent, n); }

static int registered;

static void install(void)
{
    parent = sqlite3_vfs_find(NULL);
    if (!parent || parent->iVersion < 3)
        return; /* left as it is: the statement journal spills as SQLite does */
    vfs = (sqlite3_vfs){
        .iVersion = 3,
        .szOsFile = parent->szOsFile > (int)sizeof(memsub) ? parent->szOsFile : (int)sizeof(memsub),
        .mxPathname = parent->mxPathname,
        .zName = RK_SQLITE_VFS,
        .xOpen = v_open,
        .xDelete = v_delete,
        .xAccess = v_access,
        .xFullPathname = v_full,
        .xDlOpen = v_dlopen,
        .xDlError = v_dlerror,
        .xDlSym = v_dlsym,
        .xDlClose = v_dlclose,
        .xRandomness = v_random,
        .xSleep = v_sleep,
        .xCurrentTime = v_time,
        .xGetLastError = v_last_error,
        .xCurrentTimeInt64 = v_time64,
        .xSetSystemCall = v_set_call,
        .xGetSystemCall = v_get_call,
        .xNextSystemCall = v_next_call,
    };
    registered = sqlite3_vfs_register(&vfs, 0) == SQLITE_OK;
}

const char *rk_sqlite_memsub_vfs(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, install);
    return registered ? RK_SQLITE_VFS : NULL;
}
