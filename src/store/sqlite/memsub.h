/* store/sqlite/memsub.h — the default VFS with statement journals kept in
 * memory (memsub.c says why). Registered once per process, not as the
 * default; returns its name for sqlite3_open_v2, or NULL when it could not
 * be (then the default VFS serves, which is only slower). */
#ifndef RK_STORE_SQLITE_MEMSUB_H
#define RK_STORE_SQLITE_MEMSUB_H

#define RK_SQLITE_VFS "renkei-memsub"

const char *rk_sqlite_memsub_vfs(void);

#endif
