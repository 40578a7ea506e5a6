/* records_internal.h — what the two files of `renkei records` share
 * (records_cmd.c: verify; records_archive.c: archive and the check of an
 * archive). For src/tools only. */
#ifndef RK_TOOLS_RECORDS_INTERNAL_H
#define RK_TOOLS_RECORDS_INTERNAL_H

#include <stddef.h>
#include "net/registry.h"

/* The store a node's node.conf names (nodes/<id>/node.db when it names
 * none); *retain_days, when not NULL, its [records] retain_days. */
void rk_records_node_store(const char *dir, const rk_peer_node *node, char *path, size_t size, int *retain_days);
/* One finding, "  NODE: …", counted. */
void finding(const char *node, int *count, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* network.json's log_vkey_history of a node as JSON text, malloc'ed (NULL
 * when it has none): the earlier log keys with their validity. */
char *log_vkey_history(const char *dir, const char *id);

/* `renkei records archive …` (argv[1] is "archive"). */
int rk_records_archive_cmd(int argc, char **argv);
/* `renkei records verify DIR --archive FILE`: 0 when the archive is the log's. */
int rk_records_verify_archive(const char *dir, const rk_registry *reg, const char *path);

#endif
