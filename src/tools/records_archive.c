/* records_archive.c — retention of the 法23条 records (DESIGN §4.1, §5):
 *
 *   renkei records archive DIR --node ID --out FILE [--before YYYY-MM-DD]
 *       writes the records of node ID requested before the cutoff (default:
 *       now − its [records] retain_days), a prefix of its log that signed,
 *       tiled heads cover, to FILE; checks every written leaf against the
 *       node's stored tiles; fsyncs; and only then prunes them from the
 *       node's store, noting the file's SHA-256. The tiles stay, so the tree
 *       and every proof of a later record stay valid (tlog-tiles' pruning).
 *   renkei records verify DIR --archive FILE
 *       checks an archive against the log it came from: its checkpoint with
 *       the log key of network.json valid when the log signed it (log_vkey,
 *       or one of log_vkey_history after a rotation; the time is the log's
 *       own head of that checkpoint), and each leaf against the stored tile
 *       at its position.
 *
 * The file (mode 0600: records name persons) is JSON lines: a header
 * {"renkei_records_archive":1,"node","log_origin","from","upto","before",
 * "checkpoint"}, then {"seq":N,"leaf":"<the leaf's exact bytes>"} for each
 * record from..upto. No SQL here: the records module does the store's part. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/ids.h"
#include "lib/util.h"
#include "net/registry.h"
#include "records/checkpoint.h"
#include "records/merkle.h"
#include "records/records.h"
#include "records/records_log.h"
#include "records/tiles.h"
#include "tools/net/net.h"
#include "tools/records_internal.h"
#include "tools/toolkit.h"

/* a leaf is under 1 KiB; the header holds a checkpoint with its cosignatures,
 * each newline of it escaped in JSON */
#define ARCHIVE_LINE_MAX (2 * RK_CHECKPOINT_MAX + 1024)

/* ---------- the log's own state: its last signed head and tiles ---------- */

typedef struct last_head {
    int64_t size;
    char *checkpoint;
} last_head;

static rk_rc take_head(void *arg, const rk_tree_head_row *row)
{
    last_head *h = arg;
    h->size = row->size;
    free(h->checkpoint);
    h->checkpoint = row->checkpoint ? strdup(row->checkpoint) : NULL;
    return RK_OK;
}

/* ---------- writing ---------- */

typedef struct writer {
    FILE *f;
    rk_db *tiles_db;
    rk_hash tile[RK_TILE_WIDTH];
    int tile_width;
    uint64_t tile_index;
    int tile_loaded;
    int64_t next;        /* the seq expected next */
    char problem[256];   /* why the archive cannot be trusted: nothing is pruned */
} writer;

/* The stored level-0 hash at position pos, from a cache of one tile. */
static int tile_leaf(rk_db *db, rk_hash cache[RK_TILE_WIDTH], int *width, uint64_t *index, int *loaded, uint64_t pos,
                     rk_hash out)
{
    if (!*loaded || *index != pos / RK_TILE_WIDTH) {
        *loaded = 1;
        *index = pos / RK_TILE_WIDTH;
        if (rk_tile_read(db, 0, *index, cache, width) != RK_OK)
            *width = 0;
    }
    if ((int)(pos % RK_TILE_WIDTH) >= *width)
        return 0;
    memcpy(out, cache[pos % RK_TILE_WIDTH], sizeof(rk_hash));
    return 1;
}

static rk_rc write_record(void *arg, int64_t seq, const rk_record *r)
{
    writer *w = arg;
    if (w->problem[0])
        return RK_OK;
    char *leaf = rk_record_leaf_text(r);
    if (!leaf)
        return RK_ERR_NOMEM;
    rk_hash h, stored;
    rk_merkle_leaf_hash(leaf, strlen(leaf), h);
    if (seq != w->next)
        snprintf(w->problem, sizeof w->problem, "record seq %lld is missing", (long long)w->next);
    else if (!tile_leaf(w->tiles_db, w->tile, &w->tile_width, &w->tile_index, &w->tile_loaded, (uint64_t)seq - 1,
                        stored) ||
             memcmp(stored, h, sizeof h) != 0)
        snprintf(w->problem, sizeof w->problem, "record seq %lld is not the leaf its tile signed", (long long)seq);
    w->next = seq + 1;
    json_t *line = json_pack("{s:I,s:s}", "seq", (json_int_t)seq, "leaf", leaf);
    char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;
    rk_rc rc = text && fprintf(w->f, "%s\n", text) > 0 ? RK_OK : RK_ERR_IO;
    free(text);
    json_decref(line);
    free(leaf);
    return rc;
}

static rk_rc file_sha256(const char *path, char hex[65])
{
    char *text = NULL;
    size_t len = 0;
    rk_rc rc = rk_read_file(path, 1L << 40, &text, &len);
    if (rc != RK_OK)
        return rc;
    unsigned char md[32];
    unsigned int n = 0;
    EVP_Digest(text, len, md, &n, EVP_sha256(), NULL);
    rk_hex(md, 32, hex);
    free(text);
    return RK_OK;
}

/* Midnight UTC of a date, in ms. */
static int64_t date_ms(const char *date)
{
    struct tm tm = {0};
    tm.tm_year = atoi(date) - 1900;
    tm.tm_mon = atoi(date + 5) - 1;
    tm.tm_mday = atoi(date + 8);
    return (int64_t)timegm(&tm) * 1000;
}

static int archive_usage(FILE *out, int code)
{
    fprintf(out, "usage: renkei records archive DIR --node ID --out FILE [--before YYYY-MM-DD]\n"
                 "\n"
                 "Writes the records of node ID (the core or an agency node) requested before the\n"
                 "cutoff to FILE (created, mode 0600), a prefix of its log that signed heads cover;\n"
                 "checks each against the node's stored tiles; and only then prunes them from the\n"
                 "node's store. The tiles stay: the tree and every proof of a later record stay\n"
                 "valid. renkei records verify checks an archive against the log (see its help).\n"
                 "\n"
                 "  --node ID            the node whose records are archived\n"
                 "  --out FILE           the archive to write (refused when it exists)\n"
                 "  --before YYYY-MM-DD  the cutoff, midnight UTC (default: now minus the node's\n"
                 "                       [records] retain_days, 7 years)\n");
    return code;
}

int rk_records_archive_cmd(int argc, char **argv)
{
    static const struct option opts[] = {{"node", required_argument, NULL, 'n'},
                                          {"out", required_argument, NULL, 'o'},
                                          {"before", required_argument, NULL, 'b'},
                                          {"help", no_argument, NULL, 'h'},
                                          {0}};
    const char *node_id = NULL, *out = NULL, *before = NULL;
    int c;
    tk_getopt_reset();
    while ((c = getopt_long(argc - 1, argv + 1, "", opts, NULL)) != -1) {
        if (c == 'h')
            return archive_usage(stdout, 0);
        if (c == 'n')
            node_id = optarg;
        else if (c == 'o')
            out = optarg;
        else if (c == 'b')
            before = optarg;
        else
            return tk_option_error("records", c, argv + 1);
    }
    if (optind != argc - 2)
        return tk_usage_error("records", "archive takes one network folder");
    if (!node_id || !out)
        return tk_usage_error("records", "archive needs --node ID and --out FILE");
    if (before && !rk_date_valid(before))
        return tk_usage_error("records", "--before must be a date, YYYY-MM-DD");
    const char *dir = argv[1 + optind];
    char err[512] = "", target[TK_PATH_CAP];
    rk_registry *reg = NULL;
    if (tk_registry_load(dir, &reg, err, sizeof err) != RK_OK)
        return tk_failure("records", "%s", err);
    const rk_peer_node *node = rk_registry_by_id(reg, node_id);
    int retain_days = 0;
    int rc = 1;
    rk_db *db = NULL, *tiles_db = NULL;
    last_head head = {0};
    writer w = {.next = 0};
    int pg_started = 0, made = 0;
    if (!node || (node->role != RK_ROLE_CORE && node->role != RK_ROLE_AGENCY)) {
        tk_failure("records", "%s: no node of network.json keeps records under that id (the core or an agency node)",
                   node_id);
        goto done;
    }
    rk_records_node_store(dir, node, target, sizeof target, &retain_days);
    int64_t cutoff = before ? date_ms(before) : rk_now_ms() - (int64_t)retain_days * 86400000;
    if (rk_net_pg_start(dir, &pg_started, err, sizeof err) != RK_OK) {
        tk_failure("records", "%s", err);
        goto done;
    }
    if (rk_db_open(target, 0, &db) != RK_OK || rk_records_migrate(db) != RK_OK ||
        rk_db_open(target, RK_DB_READONLY, &tiles_db) != RK_OK) {
        tk_failure("records", "%s: cannot open its store", node_id);
        goto done;
    }
    int64_t done_upto = 0, upto = 0;
    rk_tile_builder state;
    rk_tile_builder_init(&state);
    rk_rc st = rk_tiles_load(tiles_db, &state);
    int64_t tiled = (int64_t)state.frontier.size;
    rk_tile_builder_free(&state);
    if (st == RK_OK)
        st = rk_tree_heads_each(db, take_head, &head);
    if (st == RK_OK)
        st = rk_records_archived_upto(db, &done_upto);
    if (st == RK_OK)
        st = rk_records_archive_due(db, cutoff, head.size < tiled ? head.size : tiled, &upto);
    if (st != RK_OK) {
        tk_failure("records", "%s: cannot read its log: %s", node_id, rk_strerror(st));
        goto done;
    }
    if (upto <= done_upto) {
        printf("records archive: nothing of %s to archive (archived up to seq %lld; the first record kept is not"
               " older than the cutoff, or not yet in a signed head)\n",
               node_id, (long long)done_upto);
        rc = 0;
        goto done;
    }
    int fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || !(w.f = fdopen(fd, "w"))) {
        if (fd >= 0)
            close(fd);
        tk_failure("records", "%s: cannot create: %s", out, strerror(errno));
        goto done;
    }
    made = 1;
    char cut[32];
    rk_format_time(cutoff, cut, sizeof cut);
    json_t *hdr = json_pack("{s:i,s:s,s:s,s:I,s:I,s:s,s:s?}", "renkei_records_archive", 1, "node", node_id,
                            "log_origin", node->log_origin, "from", (json_int_t)(done_upto + 1), "upto",
                            (json_int_t)upto, "before", cut, "checkpoint", head.checkpoint);
    char *hdr_text = hdr ? json_dumps(hdr, JSON_COMPACT) : NULL;
    json_decref(hdr);
    st = hdr_text && fprintf(w.f, "%s\n", hdr_text) > 0 ? RK_OK : RK_ERR_IO;
    free(hdr_text);
    w.tiles_db = tiles_db;
    w.next = done_upto + 1;
    if (st == RK_OK)
        st = rk_records_range(db, done_upto + 1, upto, write_record, &w);
    if (st == RK_OK && !w.problem[0] && w.next != upto + 1)
        snprintf(w.problem, sizeof w.problem, "records %lld..%lld are missing", (long long)w.next, (long long)upto);
    if (st == RK_OK && (fflush(w.f) != 0 || fsync(fileno(w.f)) != 0))
        st = RK_ERR_IO;
    if (fclose(w.f) != 0 && st == RK_OK)
        st = RK_ERR_IO;
    w.f = NULL;
    if (st != RK_OK || w.problem[0]) {
        tk_failure("records", "%s: not archived, nothing pruned: %s", node_id,
                   w.problem[0] ? w.problem : rk_strerror(st));
        goto done;
    }
    char sha[65];
    if ((st = file_sha256(out, sha)) != RK_OK ||
        (st = rk_records_prune(db, done_upto + 1, upto, sha, rk_now_ms())) != RK_OK) {
        tk_failure("records", "%s: written to %s but not pruned: %s", node_id, out,
                   st == RK_ERR_CONFLICT ? "another archive ran meanwhile" : rk_strerror(st));
        made = 0; /* the file is whole: keep it */
        goto done;
    }
    made = 0;
    printf("records archive: %lld records of %s (seq %lld..%lld, requested before %s) written to %s and pruned;"
           " sha256 %s\n",
           (long long)(upto - done_upto), node_id, (long long)(done_upto + 1), (long long)upto, cut, out, sha);
    rc = 0;
done:
    if (w.f)
        fclose(w.f);
    if (made)
        unlink(out); /* a half-written or untrusted archive goes */
    free(head.checkpoint);
    rk_db_close(db);
    rk_db_close(tiles_db);
    rk_registry_free(reg);
    if (pg_started && rk_net_pg_stop(dir) != RK_OK)
        fprintf(stderr, "renkei records: the PostgreSQL server of %s/pg did not stop\n", dir);
    return rc;
}

/* ---------- checking an archive ---------- */

/* The time of the log's head whose checkpoint is note (-1: none). */
typedef struct head_at {
    const char *note;
    int64_t time_ms;
} head_at;

static rk_rc find_head(void *arg, const rk_tree_head_row *row)
{
    head_at *h = arg;
    if (row->checkpoint && strcmp(row->checkpoint, h->note) == 0)
        h->time_ms = row->time_ms;
    return RK_OK;
}

int rk_records_verify_archive(const char *dir, const rk_registry *reg, const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return tk_failure("records", "%s: cannot read: %s", path, strerror(errno));
    char *line = malloc(ARCHIVE_LINE_MAX);
    json_t *hdr = NULL;
    rk_db *db = NULL;
    int findings = 0, pg_started = 0, rc = 1;
    const rk_peer_node *node = NULL;
    if (!line || !fgets(line, ARCHIVE_LINE_MAX, f) || !(hdr = json_loads(line, 0, NULL)) ||
        json_integer_value(json_object_get(hdr, "renkei_records_archive")) != 1) {
        tk_failure("records", "%s: not a records archive (its first line is not the header)", path);
        goto done;
    }
    const char *node_id = json_string_value(json_object_get(hdr, "node"));
    const char *note = json_string_value(json_object_get(hdr, "checkpoint"));
    int64_t from = json_integer_value(json_object_get(hdr, "from")), upto = json_integer_value(json_object_get(hdr, "upto"));
    node = node_id ? rk_registry_by_id(reg, node_id) : NULL;
    if (!node || from < 1 || upto < from) {
        tk_failure("records", "%s: its header names no node of network.json, or no range", path);
        goto done;
    }
    printf("archive %s of %s (seq %lld..%lld):\n", path, node_id, (long long)from, (long long)upto);
    char target[TK_PATH_CAP], err[512] = "";
    rk_records_node_store(dir, node, target, sizeof target, NULL);
    if (rk_net_pg_start(dir, &pg_started, err, sizeof err) != RK_OK || rk_db_open(target, RK_DB_READONLY, &db) != RK_OK) {
        tk_failure("records", "%s: cannot open its store%s%s", node_id, err[0] ? ": " : "", err);
        goto done;
    }
    /* the checkpoint is checked with the log key valid when it was signed
     * (log_vkey and log_vkey_history: a rotated key's archives still
     * verify, DESIGN §4.1), that time being the log's own head of it */
    rk_log_keys keys;
    char *history = log_vkey_history(dir, node_id);
    int keys_ok = node->log_vkey[0] && rk_log_keys_parse(node->log_vkey, history, &keys) == RK_OK;
    free(history);
    head_at at = {.note = note, .time_ms = -1};
    if (note && rk_tree_heads_each(db, find_head, &at) != RK_OK)
        at.time_ms = -1;
    const rk_vkey *vkey = keys_ok && at.time_ms >= 0 ? rk_log_keys_at(&keys, at.time_ms) : NULL;
    uint64_t csize = 0;
    rk_hash croot;
    if (!note || !keys_ok)
        finding(node_id, &findings, "it has no checkpoint, or network.json no valid log_vkey for %s", node_id);
    else if (at.time_ms < 0)
        finding(node_id, &findings, "its checkpoint is not one of the heads the log signed");
    else if (!vkey)
        finding(node_id, &findings, "no log key of network.json was valid when its checkpoint was signed");
    else if (rk_checkpoint_open(note, strlen(note), vkey, &csize, croot) != RK_OK || csize < (uint64_t)upto)
        finding(node_id, &findings, "its checkpoint does not verify with the log key valid at its time, or does not"
                                    " cover the archive");
    rk_hash tile[RK_TILE_WIDTH], stored, h;
    int width = 0, loaded = 0;
    uint64_t index = 0;
    int64_t next = from;
    while (fgets(line, ARCHIVE_LINE_MAX, f)) {
        json_t *j = json_loads(line, 0, NULL);
        int64_t seq = json_integer_value(json_object_get(j, "seq"));
        const char *leaf = json_string_value(json_object_get(j, "leaf"));
        if (!leaf || seq != next) {
            finding(node_id, &findings, "line of seq %lld: %s", (long long)next,
                    leaf ? "out of order, or a record is missing" : "not a record line");
        } else {
            rk_merkle_leaf_hash(leaf, strlen(leaf), h);
            if (!tile_leaf(db, tile, &width, &index, &loaded, (uint64_t)seq - 1, stored))
                finding(node_id, &findings, "record seq %lld: the log has no tile for it", (long long)seq);
            else if (memcmp(stored, h, sizeof h) != 0)
                finding(node_id, &findings, "record seq %lld was altered: it is not the leaf the log signed",
                        (long long)seq);
        }
        next = seq + 1;
        json_decref(j);
        if (findings > 20)
            break;
    }
    if (!findings && next != upto + 1)
        finding(node_id, &findings, "records %lld..%lld are missing from the archive", (long long)next, (long long)upto);
    if (findings) {
        printf("records verify: %d finding(s) in the archive\n", findings);
        goto done;
    }
    printf("  %-28s ok: %lld records, each the leaf the log signed\n", node_id, (long long)(upto - from + 1));
    printf("records verify: the archive is intact\n");
    rc = 0;
done:
    free(line);
    json_decref(hdr);
    fclose(f);
    rk_db_close(db);
    if (pg_started && rk_net_pg_stop(dir) != RK_OK)
        fprintf(stderr, "renkei records: the PostgreSQL server of %s/pg did not stop\n", dir);
    return rc;
}
