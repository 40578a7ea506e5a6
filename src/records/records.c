/* records.c — the 法23条 records: their tables, append, find, list, count,
 * later steps, and each record's leaf in the records log. */
#include "records/records.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "records/merkle.h"
#include "lib/util.h"

/* Step 9 (see below): PAYLOAD is the view's hex of the digest. */
#define PAYLOAD_HEX_SQLITE "lower(hex(r.payload))"
#define PAYLOAD_HEX_PG "encode(r.payload, 'hex')"
#define NAME_OF(col) "(SELECT name FROM record_names WHERE id = r." col ")"
#define ID_OF(expr) "(SELECT id FROM record_names WHERE name = " expr ")"
#define RECORDS_STEP9(PAYLOAD) \
    "CREATE TABLE record_names (id {id}, name TEXT NOT NULL UNIQUE);" \
    "INSERT INTO record_names(name) SELECT n FROM (SELECT side AS n FROM records UNION SELECT requester FROM records" \
    "  UNION SELECT provider FROM records UNION SELECT business FROM records UNION SELECT item FROM records" \
    "  UNION SELECT operator FROM records UNION SELECT outcome FROM records) AS t ORDER BY n;" \
    "CREATE TABLE record_rows (seq {id}, exchange_id TEXT NOT NULL, side_id BIGINT NOT NULL," \
    "  requester_id BIGINT NOT NULL, provider_id BIGINT NOT NULL, business_id BIGINT NOT NULL," \
    "  item_id BIGINT NOT NULL, operator_id BIGINT NOT NULL, subject TEXT NOT NULL, requested_ms BIGINT NOT NULL," \
    "  provided_ms BIGINT, outcome_id BIGINT NOT NULL, reason TEXT NOT NULL, payload {blob}, payload_text TEXT," \
    "  condition TEXT NOT NULL, catalog_version BIGINT NOT NULL, UNIQUE (exchange_id, side_id, outcome_id));" \
    "INSERT INTO record_rows(seq, exchange_id, side_id, requester_id, provider_id, business_id, item_id, operator_id," \
    "  subject, requested_ms, provided_ms, outcome_id, reason, payload, payload_text, condition, catalog_version)" \
    "  SELECT o.seq, o.exchange_id, " ID_OF("o.side") ", " ID_OF("o.requester") ", " ID_OF("o.provider") ", " \
    ID_OF("o.business") ", " ID_OF("o.item") ", " ID_OF("o.operator") ", o.subject, o.requested_ms," \
    "  o.provided_ms, " ID_OF("o.outcome") ", o.reason, NULL, NULLIF(o.payload_sha256, ''), o.condition," \
    "  o.catalog_version FROM records AS o ORDER BY o.seq;" \
    "DROP TABLE records;" \
    "CREATE INDEX records_subject ON record_rows(subject);" \
    "CREATE INDEX record_rows_text ON record_rows(seq) WHERE payload_text IS NOT NULL;" \
    "CREATE VIEW records AS SELECT r.seq AS seq, r.exchange_id AS exchange_id, " NAME_OF("side_id") " AS side, " \
    NAME_OF("requester_id") " AS requester, " NAME_OF("provider_id") " AS provider, " NAME_OF("business_id") \
    " AS business, " NAME_OF("item_id") " AS item, " NAME_OF("operator_id") " AS operator," \
    "  r.subject AS subject, r.requested_ms AS requested_ms, r.provided_ms AS provided_ms, " NAME_OF("outcome_id") \
    " AS outcome, r.reason AS reason, CASE WHEN r.payload IS NOT NULL THEN " PAYLOAD " ELSE" \
    "  COALESCE(r.payload_text, '') END AS payload_sha256, r.condition AS condition," \
    "  r.catalog_version AS catalog_version FROM record_rows AS r;"

/* Step 10: an operator's INSERT, UPDATE or DELETE on the view `records`
 * changes record_rows (a digest given as text is kept as text). */
#define NEW_NAMES "NEW.side, NEW.requester, NEW.provider, NEW.business, NEW.item, NEW.operator, NEW.outcome"
#define ROW_VALUES \
    "NEW.exchange_id, " ID_OF("NEW.side") ", " ID_OF("NEW.requester") ", " ID_OF("NEW.provider") ", " \
    ID_OF("NEW.business") ", " ID_OF("NEW.item") ", " ID_OF("NEW.operator") ", NEW.subject, NEW.requested_ms," \
    " NEW.provided_ms, " ID_OF("NEW.outcome") ", NEW.reason, CAST(NULL AS {blob}), NULLIF(NEW.payload_sha256, '')," \
    " COALESCE(NEW.condition, ''), COALESCE(NEW.catalog_version, 0)"
#define ROW_COLUMNS \
    "exchange_id, side_id, requester_id, provider_id, business_id, item_id, operator_id, subject, requested_ms," \
    " provided_ms, outcome_id, reason, payload, payload_text, condition, catalog_version"
#define RECORDS_STEP10_SQLITE \
    "CREATE TRIGGER records_insert INSTEAD OF INSERT ON records BEGIN" \
    "  INSERT INTO record_names(name) SELECT n FROM (SELECT NEW.side AS n UNION SELECT NEW.requester" \
    "   UNION SELECT NEW.provider UNION SELECT NEW.business UNION SELECT NEW.item UNION SELECT NEW.operator" \
    "   UNION SELECT NEW.outcome) WHERE n NOT IN (SELECT name FROM record_names);" \
    "  INSERT INTO record_rows(seq, " ROW_COLUMNS ") VALUES (NEW.seq, " ROW_VALUES ");" \
    " END;" \
    "CREATE TRIGGER records_update INSTEAD OF UPDATE ON records BEGIN" \
    "  INSERT INTO record_names(name) SELECT n FROM (SELECT NEW.side AS n UNION SELECT NEW.requester" \
    "   UNION SELECT NEW.provider UNION SELECT NEW.business UNION SELECT NEW.item UNION SELECT NEW.operator" \
    "   UNION SELECT NEW.outcome) WHERE n NOT IN (SELECT name FROM record_names);" \
    "  UPDATE record_rows SET (seq, " ROW_COLUMNS ") = (SELECT NEW.seq, " ROW_VALUES ") WHERE seq = OLD.seq;" \
    " END;" \
    "CREATE TRIGGER records_delete INSTEAD OF DELETE ON records BEGIN" \
    "  DELETE FROM record_rows WHERE seq = OLD.seq;" \
    " END;"
#define RECORDS_STEP10_PG \
    "CREATE FUNCTION records_write() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN" \
    "  IF TG_OP = 'DELETE' THEN DELETE FROM record_rows WHERE seq = OLD.seq; RETURN OLD; END IF;" \
    "  INSERT INTO record_names(name) SELECT DISTINCT n FROM unnest(ARRAY[" NEW_NAMES "]) AS t(n)" \
    "   ON CONFLICT (name) DO NOTHING;" \
    "  IF TG_OP = 'INSERT' THEN" \
    "   INSERT INTO record_rows(seq, " ROW_COLUMNS ") VALUES (NEW.seq, " ROW_VALUES ");" \
    "  ELSE" \
    "   UPDATE record_rows SET (seq, " ROW_COLUMNS ") = (SELECT NEW.seq, " ROW_VALUES ") WHERE seq = OLD.seq;" \
    "  END IF;" \
    "  RETURN NEW; END $f$;" \
    "CREATE TRIGGER records_write INSTEAD OF INSERT OR UPDATE OR DELETE ON records" \
    "  FOR EACH ROW EXECUTE FUNCTION records_write();"

/* Step 1 is today's tables: IF NOT EXISTS, so that a database made before
 * the migrations opens unchanged (it gets version 1). */
static const char *const records_steps[] = {
    "CREATE TABLE IF NOT EXISTS records ("
    "  seq {id}, exchange_id TEXT NOT NULL, side TEXT NOT NULL,"
    "  requester TEXT NOT NULL, provider TEXT NOT NULL, business TEXT NOT NULL, item TEXT NOT NULL,"
    "  operator TEXT NOT NULL, subject TEXT NOT NULL, requested_ms BIGINT NOT NULL, provided_ms BIGINT,"
    "  outcome TEXT NOT NULL, reason TEXT NOT NULL, payload_sha256 TEXT NOT NULL, leaf_hash TEXT NOT NULL,"
    "  UNIQUE (exchange_id, side, outcome));"
    "CREATE TABLE IF NOT EXISTS tree_heads ("
    "  size BIGINT PRIMARY KEY, root TEXT NOT NULL, time_ms BIGINT NOT NULL, signature TEXT NOT NULL)"
    "{without_rowid};"
    "CREATE INDEX IF NOT EXISTS records_subject ON records(subject);"
    /* Kept answers are large and keyed by random ids: rows in arrival order
     * and a small unique index cost a third of a B-tree ordered by the key
     * with the bodies in it (and overflow pages moved on every split). */
    "CREATE TABLE IF NOT EXISTS answers ("
    "  id {id}, key TEXT NOT NULL, side TEXT NOT NULL, request_hash TEXT NOT NULL,"
    "  status BIGINT NOT NULL, body TEXT NOT NULL, at_ms BIGINT NOT NULL, UNIQUE (key, side));",
    /* Step 2: the tree as C2SP tlog-tiles (records/tiles.h) and each head's
     * C2SP checkpoint (DESIGN §4.1). */
    "CREATE TABLE log_tiles (level BIGINT NOT NULL, idx BIGINT NOT NULL, hashes {blob} NOT NULL,"
    "  PRIMARY KEY (level, idx));"
    "CREATE TABLE log_state (id BIGINT PRIMARY KEY, size BIGINT NOT NULL, frontier {blob} NOT NULL);"
    "ALTER TABLE tree_heads ADD COLUMN checkpoint TEXT;",
    /* Step 3: the instance that signed a head (several core instances
     * share one log, DESIGN §6); NULL for the heads before: the node's own. */
    "ALTER TABLE tree_heads ADD COLUMN signer TEXT;",
    /* Step 4: a query's condition (lib/condition.h); "" for none, as every
     * record before. */
    "ALTER TABLE records ADD COLUMN condition TEXT NOT NULL DEFAULT '';",
    /* Step 5: retention (DESIGN §4.1): each prefix of the log written out by
     * `records archive` and then pruned; the tree's tiles stay. */
    ("CREATE TABLE records_archived (upto BIGINT PRIMARY KEY, count BIGINT NOT NULL, archived_ms BIGINT NOT NULL,"
     "  file_sha256 TEXT NOT NULL);"),
    /* Step 6: the witnesses' cosignature lines of a head's checkpoint (C2SP
     * tlog-cosignature), served after it. */
    "ALTER TABLE tree_heads ADD COLUMN cosignatures TEXT;",
    /* Step 7: no stored leaf hash: the level-0 tiles hold every leaf hash
     * the log signed, and a record's leaf is computed from its fields (65
     * bytes a record fewer). */
    "ALTER TABLE records DROP COLUMN leaf_hash;",
    /* Step 8: the catalogue version that allowed or refused the exchange
     * (DESIGN §2.3); 0 for none, as every record before. */
    "ALTER TABLE records ADD COLUMN catalog_version BIGINT NOT NULL DEFAULT 0;",
    /* Step 9: compact rows (about 100 bytes a record fewer): the names that
     * repeat (side, agencies, business, item, operator, outcome) as ids into
     * record_names, and the payload digest as 32 bytes — rows converted by
     * rk_records_migrate after the step, as SQLite has no unhex(). `records`
     * becomes a view with the columns and values it always had, so that
     * reads (and an operator's SQL) see the same records and leaves. The
     * view's triggers (step 10) let an operator's SQL write through it. */
    RECORDS_STEP9(PAYLOAD_HEX_SQLITE),
    RECORDS_STEP10_SQLITE,
};

/* The same steps on PostgreSQL: the view's hex and its write triggers are
 * the only SQL that differs between the engines. */
#define N_STEPS ((int)(sizeof records_steps / sizeof records_steps[0]))
static const char *const records_steps_pg[N_STEPS] = {
    [8] = RECORDS_STEP9(PAYLOAD_HEX_PG), /* NULL: the step above */
    [9] = RECORDS_STEP10_PG,
};

/* Step 9 keeps each old row's digest as text; here each canonical one
 * becomes 32 bytes, a chunk a write (resumable: a row is converted or not,
 * and reads both). The partial index holds only rows left as text. */
typedef struct convert_args {
    int64_t after;
    int done;
} convert_args;

static int canonical_hex(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return 0;
    return n == 64;
}

static void unhex32(const char *s, uint8_t out[32])
{
    for (int i = 0; i < 32; i++) {
        int hi = s[2 * i] <= '9' ? s[2 * i] - '0' : s[2 * i] - 'a' + 10;
        int lo = s[2 * i + 1] <= '9' ? s[2 * i + 1] - '0' : s[2 * i + 1] - 'a' + 10;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
}

#define CONVERT_CHUNK 10000

static rk_rc convert_fn(rk_db *db, void *arg)
{
    convert_args *a = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT seq, payload_text FROM record_rows WHERE payload_text IS NOT NULL AND seq > ?"
                                " ORDER BY seq LIMIT 10000");
    rk_bind_int(q, 1, a->after);
    int64_t seqs[256];
    char texts[256][65];
    int n = 0, rows = 0;
    rk_rc rc;
    a->done = 1;
    /* read a batch, then write it: a statement is not stepped while another writes */
    while ((rc = rk_stmt_next(q)) == RK_OK) {
        rows++;
        a->after = rk_col_int(q, 0);
        const char *t = rk_col_text(q, 1);
        if (t && canonical_hex(t)) {
            seqs[n] = a->after;
            memcpy(texts[n], t, 65);
            n++;
        }
        if (n == 256 || rows == CONVERT_CHUNK) {
            a->done = 0;
            break;
        }
    }
    if (rc != RK_OK && rc != RK_ERR_NOT_FOUND)
        return rc;
    for (int i = 0; i < n; i++) {
        uint8_t d[32];
        unhex32(texts[i], d);
        rk_stmt *u = rk_db_stmt(db, "UPDATE record_rows SET payload = ?, payload_text = NULL WHERE seq = ?");
        rk_bind_blob(u, 1, d, sizeof d);
        rk_bind_int(u, 2, seqs[i]);
        if ((rc = rk_stmt_exec(u)) != RK_OK)
            return rc;
    }
    return RK_OK;
}

rk_rc rk_records_migrate_to(rk_db *db, int version)
{
    const char *steps[N_STEPS];
    int pg = strcmp(rk_db_engine(db), "sqlite") != 0;
    if (version < 1 || version > N_STEPS)
        return RK_ERR_INVALID;
    for (int i = 0; i < N_STEPS; i++)
        steps[i] = pg && records_steps_pg[i] ? records_steps_pg[i] : records_steps[i];
    rk_rc rc = rk_db_migrate(db, "records", steps, version);
    convert_args a = {0, 0};
    while (rc == RK_OK && version >= 9 && !a.done)
        rc = rk_db_write(db, convert_fn, &a);
    return rc;
}

rk_rc rk_records_migrate(rk_db *db)
{
    return rk_records_migrate_to(db, N_STEPS);
}

/* A writer of the leaf's bytes: fails (ok 0) on a string JSON would not
 * write as it is (plain: printable ASCII without '"' or '\\') or on no room. */
typedef struct leaf_buf {
    char *p, *end;
    int ok;
} leaf_buf;

static void put(leaf_buf *b, const char *s, size_t n)
{
    if ((size_t)(b->end - b->p) <= n) {
        b->ok = 0;
        return;
    }
    memcpy(b->p, s, n);
    b->p += n;
}

#define PUT_LIT(b, lit) put((b), (lit), sizeof(lit) - 1)

static void put_plain(leaf_buf *b, const char *s)
{
    size_t n = strlen(s);
    const unsigned char *u = (const unsigned char *)s;
    unsigned bad = 0; /* no branch per byte: the loop vectorises */
    for (size_t i = 0; i < n; i++)
        bad |= (unsigned)(u[i] < 0x20) | (unsigned)(u[i] > 0x7e) | (unsigned)(u[i] == '"') | (unsigned)(u[i] == '\\');
    if (bad)
        b->ok = 0;
    put(b, s, n);
}

static void put_int(leaf_buf *b, int64_t v)
{
    char d[24], *q = d + sizeof d;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do
        *--q = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--q = '-';
    put(b, q, (size_t)(d + sizeof d - q));
}

/* The canonical JSON of a record whose strings are all plain, written
 * directly: the bytes jansson writes for it (keys sorted, compact), at a
 * fraction of the cost — every record is hashed when appended and again by
 * `records verify`. 0 when a string is not plain or it does not fit. */
static int plain_leaf_text(const rk_record *r, char *out, size_t outlen)
{
    leaf_buf b = {out, out + outlen, 1};
    PUT_LIT(&b, "{\"business\":\"");
    put_plain(&b, r->business);
    PUT_LIT(&b, "\",");
    if (r->catalog_version) { /* only when set: a record without one keeps the leaf it always had */
        PUT_LIT(&b, "\"catalog_version\":");
        put_int(&b, r->catalog_version);
        PUT_LIT(&b, ",");
    }
    if (r->condition[0]) { /* the same */
        PUT_LIT(&b, "\"condition\":\"");
        put_plain(&b, r->condition);
        PUT_LIT(&b, "\",");
    }
    PUT_LIT(&b, "\"exchange_id\":\"");
    put_plain(&b, r->exchange_id);
    PUT_LIT(&b, "\",\"item\":\"");
    put_plain(&b, r->item);
    PUT_LIT(&b, "\",\"operator\":\"");
    put_plain(&b, r->operator_id);
    PUT_LIT(&b, "\",\"outcome\":\"");
    put_plain(&b, r->outcome);
    PUT_LIT(&b, "\",\"payload_sha256\":\"");
    put_plain(&b, r->payload_sha256);
    PUT_LIT(&b, "\",\"provided_ms\":");
    if (r->provided_ms)
        put_int(&b, r->provided_ms);
    else
        PUT_LIT(&b, "null");
    PUT_LIT(&b, ",\"provider\":\"");
    put_plain(&b, r->provider);
    PUT_LIT(&b, "\",\"reason\":\"");
    put_plain(&b, r->reason);
    PUT_LIT(&b, "\",\"requested_ms\":");
    put_int(&b, r->requested_ms);
    PUT_LIT(&b, ",\"requester\":\"");
    put_plain(&b, r->requester);
    PUT_LIT(&b, "\",\"side\":\"");
    put_plain(&b, r->side);
    PUT_LIT(&b, "\",\"subject\":\"");
    put_plain(&b, r->subject);
    PUT_LIT(&b, "\"}");
    if (!b.ok)
        return 0;
    *b.p = '\0';
    return (int)(b.p - out);
}

/* The canonical JSON as jansson writes it (the slow path of the leaf). */
static char *json_leaf_text(const rk_record *r)
{
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:o,s:s,s:s,s:s}", "exchange_id", r->exchange_id,
                          "side", r->side, "requester", r->requester, "provider", r->provider, "business",
                          r->business, "item", r->item, "operator", r->operator_id, "subject", r->subject,
                          "requested_ms", (json_int_t)r->requested_ms, "provided_ms",
                          r->provided_ms ? json_integer(r->provided_ms) : json_null(), "outcome", r->outcome,
                          "reason", r->reason, "payload_sha256", r->payload_sha256);
    if (j && r->condition[0])
        json_object_set_new(j, "condition", json_string(r->condition));
    if (j && r->catalog_version)
        json_object_set_new(j, "catalog_version", json_integer((json_int_t)r->catalog_version));
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    return text;
}

char *rk_record_leaf_text(const rk_record *r)
{
    char fast[1024];
    int n = plain_leaf_text(r, fast, sizeof fast);
    return n > 0 ? strdup(fast) : json_leaf_text(r);
}

/* The leaf of the records log (RFC 9162 leaf hash over the canonical JSON
 * of the record: sorted keys, compact; seq is the leaf's position). */
void rk_record_leaf(const rk_record *r, uint8_t out[32])
{
    char fast[1024];
    int n = plain_leaf_text(r, fast, sizeof fast);
    if (n > 0) {
        rk_merkle_leaf_hash(fast, (size_t)n, out);
        return;
    }
    char *text = json_leaf_text(r);
    rk_merkle_leaf_hash(text ? text : "", text ? strlen(text) : 0, out);
    free(text);
}

/* The digest's two columns: 32 bytes when it is canonical hex; else its
 * text ("" none). d holds the bytes until the statement ran. */
static void bind_payload(rk_stmt *st, int col, const rk_record *r, uint8_t d[32])
{
    if (canonical_hex(r->payload_sha256)) {
        unhex32(r->payload_sha256, d);
        rk_bind_blob(st, col, d, 32);
        rk_bind_null(st, col + 1);
    } else {
        rk_bind_null(st, col);
        if (r->payload_sha256[0])
            rk_bind_text(st, col + 1, r->payload_sha256);
        else
            rk_bind_null(st, col + 1);
    }
}

/* PostgreSQL: one statement (one round trip) adds the names not seen
 * before and inserts the row; a name's id comes from the names added by the
 * statement or from those before it. */
#define PG_ID "COALESCE((SELECT id FROM added WHERE name = ?), (SELECT id FROM record_names WHERE name = ?))"
static rk_rc append_pg(rk_db *db, const rk_record *r, const char *const names[7])
{
    rk_stmt *st = rk_db_stmt(db,
        "WITH n(name) AS (VALUES (CAST(? AS TEXT)), (CAST(? AS TEXT)), (CAST(? AS TEXT)), (CAST(? AS TEXT)),"
        " (CAST(? AS TEXT)), (CAST(? AS TEXT)), (CAST(? AS TEXT))),"
        " added AS (INSERT INTO record_names(name) SELECT DISTINCT n.name FROM n"
        " WHERE NOT EXISTS (SELECT 1 FROM record_names AS k WHERE k.name = n.name)"
        " ON CONFLICT (name) DO NOTHING RETURNING id, name)"
        " INSERT INTO record_rows(seq, exchange_id, side_id, requester_id, provider_id, business_id, item_id,"
        " operator_id, subject, requested_ms, provided_ms, outcome_id, reason, payload, payload_text, condition,"
        " catalog_version)"
        " VALUES ((SELECT COALESCE(MAX(seq), (SELECT COALESCE(MAX(upto), 0) FROM records_archived)) + 1"
        " FROM record_rows), ?, " PG_ID ", " PG_ID ", " PG_ID ", " PG_ID ", " PG_ID ", " PG_ID ", ?, ?, ?, "
        PG_ID ", ?, ?, ?, ?, ?)");
    int i = 1;
    for (int k = 0; k < 7; k++)
        rk_bind_text(st, i++, names[k]);
    rk_bind_text(st, i++, r->exchange_id);
    for (int k = 0; k < 6; k++) {
        rk_bind_text(st, i++, names[k]);
        rk_bind_text(st, i++, names[k]);
    }
    rk_bind_text(st, i++, r->subject);
    rk_bind_int(st, i++, r->requested_ms);
    if (r->provided_ms)
        rk_bind_int(st, i++, r->provided_ms);
    else
        rk_bind_null(st, i++);
    rk_bind_text(st, i++, names[6]);
    rk_bind_text(st, i++, names[6]);
    rk_bind_text(st, i++, r->reason);
    uint8_t d[32];
    bind_payload(st, i, r, d);
    i += 2;
    rk_bind_text(st, i++, r->condition);
    rk_bind_int(st, i++, r->catalog_version);
    return rk_stmt_exec(st);
}

rk_rc rk_record_append(rk_db *db, const rk_record *r)
{
    /* seq is the leaf's position + 1: it counts from 1 without gaps, so it is
     * given here rather than left to the engine (a sequence may skip values
     * after a rollback), after the last record kept or archived. The writers
     * of every instance over the database take turns for it, until their
     * commit (DESIGN §6); under the same turn, a name not seen before gets
     * its id in record_names. */
    rk_rc rc = rk_db_lock(db, RK_RECORDS_SEQUENCE_LOCK);
    if (rc != RK_OK)
        return rc;
    const char *const names[] = {r->side, r->requester, r->provider, r->business, r->item, r->operator_id, r->outcome};
    if (strcmp(rk_db_engine(db), "sqlite") != 0)
        return append_pg(db, r, names);
    /* the names' ids, read in the same transaction as the insert (no cache
     * that a rollback could leave wrong); a name not seen before is added */
    int64_t ids[7];
    for (int pass = 0;; pass++) {
        rk_stmt *q = rk_db_stmt(db, "SELECT " ID_OF("?") ", " ID_OF("?") ", " ID_OF("?") ", " ID_OF("?") ", "
                                    ID_OF("?") ", " ID_OF("?") ", " ID_OF("?"));
        for (int i = 0; i < 7; i++)
            rk_bind_text(q, i + 1, names[i]);
        if ((rc = rk_stmt_next(q)) != RK_OK)
            return rc == RK_ERR_NOT_FOUND ? RK_ERR_STORE : rc;
        int missing = 0, absent[7];
        for (int i = 0; i < 7; i++) {
            missing |= absent[i] = rk_col_is_null(q, i);
            ids[i] = absent[i] ? 0 : rk_col_int(q, i);
        }
        if (!missing)
            break;
        if (pass)
            return RK_ERR_STORE;
        for (int i = 0; i < 7; i++) {
            if (!absent[i])
                continue;
            rk_stmt *add = rk_db_stmt(db, "INSERT INTO record_names(name) VALUES (?) ON CONFLICT (name) DO NOTHING");
            rk_bind_text(add, 1, names[i]);
            if ((rc = rk_stmt_exec(add)) != RK_OK)
                return rc;
        }
    }
    rk_stmt *st = rk_db_stmt(db,
        "INSERT INTO record_rows(seq, exchange_id, side_id, requester_id, provider_id, business_id, item_id,"
        " operator_id, subject, requested_ms, provided_ms, outcome_id, reason, payload, payload_text, condition,"
        " catalog_version)"
        " VALUES ((SELECT COALESCE(MAX(seq), (SELECT COALESCE(MAX(upto), 0) FROM records_archived)) + 1"
        " FROM record_rows), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    rk_bind_text(st, 1, r->exchange_id);
    for (int i = 0; i < 6; i++)
        rk_bind_int(st, 2 + i, ids[i]);
    rk_bind_text(st, 8, r->subject);
    rk_bind_int(st, 9, r->requested_ms);
    if (r->provided_ms)
        rk_bind_int(st, 10, r->provided_ms);
    else
        rk_bind_null(st, 10);
    rk_bind_int(st, 11, ids[6]);
    rk_bind_text(st, 12, r->reason);
    uint8_t d[32];
    bind_payload(st, 13, r, d);
    rk_bind_text(st, 15, r->condition);
    rk_bind_int(st, 16, r->catalog_version);
    return rk_stmt_exec(st);
}

void rk_record_from_row(rk_stmt *q, int col, rk_record *r)
{
    memset(r, 0, sizeof *r);
    rk_col_copy(q, col + 0, r->exchange_id, sizeof r->exchange_id);
    rk_col_copy(q, col + 1, r->side, sizeof r->side);
    rk_col_copy(q, col + 2, r->requester, sizeof r->requester);
    rk_col_copy(q, col + 3, r->provider, sizeof r->provider);
    rk_col_copy(q, col + 4, r->business, sizeof r->business);
    rk_col_copy(q, col + 5, r->item, sizeof r->item);
    rk_col_copy(q, col + 6, r->operator_id, sizeof r->operator_id);
    rk_col_copy(q, col + 7, r->subject, sizeof r->subject);
    r->requested_ms = rk_col_int(q, col + 8);
    r->provided_ms = rk_col_is_null(q, col + 9) ? 0 : rk_col_int(q, col + 9);
    rk_col_copy(q, col + 10, r->outcome, sizeof r->outcome);
    rk_col_copy(q, col + 11, r->reason, sizeof r->reason);
    rk_col_copy(q, col + 12, r->payload_sha256, sizeof r->payload_sha256);
    rk_col_copy(q, col + 13, r->condition, sizeof r->condition);
    r->catalog_version = rk_col_int(q, col + 14);
}

rk_rc rk_records_compact(rk_db *db)
{
    rk_stmt *q = rk_db_stmt(db, "SELECT version FROM schema_versions WHERE module = 'records'");
    rk_rc rc = rk_stmt_next(q);
    if (rc != RK_OK)
        return rc;
    return rk_col_int(q, 0) >= 9 ? RK_OK : RK_ERR_NOT_FOUND;
}

struct rk_record_names {
    int64_t n;    /* ids 0..n-1 */
    char **name;  /* NULL: no such id */
};

void rk_record_names_free(rk_record_names *n)
{
    if (!n)
        return;
    for (int64_t i = 0; i < n->n; i++)
        free(n->name[i]);
    free(n->name);
    free(n);
}

rk_rc rk_record_names_load(rk_db *db, rk_record_names **out)
{
    *out = NULL;
    rk_record_names *n = calloc(1, sizeof *n);
    if (!n)
        return RK_ERR_NOMEM;
    rk_stmt *q = rk_db_stmt(db, "SELECT id, name FROM record_names ORDER BY id");
    rk_rc rc;
    int64_t cap = 0;
    while ((rc = rk_stmt_next(q)) == RK_OK) {
        int64_t id = rk_col_int(q, 0);
        const char *t = rk_col_text(q, 1);
        if (id < 0 || id > 100000000) { /* ids count from 1; a table this large is not names */
            rc = RK_ERR_STORE;
            break;
        }
        if (id >= cap) {
            int64_t ncap = cap ? cap : 64;
            while (ncap <= id)
                ncap *= 2;
            char **grown = realloc(n->name, (size_t)ncap * sizeof *grown);
            if (!grown) {
                rc = RK_ERR_NOMEM;
                break;
            }
            memset(grown + cap, 0, (size_t)(ncap - cap) * sizeof *grown);
            n->name = grown;
            cap = ncap;
        }
        if (!(n->name[id] = strdup(t ? t : ""))) {
            rc = RK_ERR_NOMEM;
            break;
        }
        if (id >= n->n)
            n->n = id + 1;
    }
    if (rc != RK_ERR_NOT_FOUND) {
        rk_record_names_free(n);
        return rc == RK_OK ? RK_ERR_STORE : rc;
    }
    *out = n;
    return RK_OK;
}

/* snprintf's "%s" without its cost (a scan copies eleven strings a record). */
static void copy_text(char *out, size_t size, const char *t)
{
    size_t n = t ? strnlen(t, size - 1) : 0;
    memcpy(out, t ? t : "", n);
    out[n] = '\0';
}

static int copy_name(const rk_record_names *n, int64_t id, char *out, size_t size)
{
    if (id < 0 || id >= n->n || !n->name[id])
        return 0;
    copy_text(out, size, n->name[id]);
    return 1;
}

rk_rc rk_record_from_stored(rk_stmt *q, int col, const rk_record_names *n, rk_record *r)
{
    memset(r, 0, sizeof *r);
    copy_text(r->exchange_id, sizeof r->exchange_id, rk_col_text(q, col + 0));
    if (!copy_name(n, rk_col_int(q, col + 1), r->side, sizeof r->side) ||
        !copy_name(n, rk_col_int(q, col + 2), r->requester, sizeof r->requester) ||
        !copy_name(n, rk_col_int(q, col + 3), r->provider, sizeof r->provider) ||
        !copy_name(n, rk_col_int(q, col + 4), r->business, sizeof r->business) ||
        !copy_name(n, rk_col_int(q, col + 5), r->item, sizeof r->item) ||
        !copy_name(n, rk_col_int(q, col + 6), r->operator_id, sizeof r->operator_id) ||
        !copy_name(n, rk_col_int(q, col + 10), r->outcome, sizeof r->outcome))
        return RK_ERR_NOT_FOUND;
    copy_text(r->subject, sizeof r->subject, rk_col_text(q, col + 7));
    r->requested_ms = rk_col_int(q, col + 8);
    r->provided_ms = rk_col_is_null(q, col + 9) ? 0 : rk_col_int(q, col + 9);
    copy_text(r->reason, sizeof r->reason, rk_col_text(q, col + 11));
    size_t len = 0;
    const uint8_t *d = rk_col_is_null(q, col + 12) ? NULL : rk_col_blob(q, col + 12, &len);
    if (d && len == 32)
        rk_hex(d, 32, r->payload_sha256);
    else
        copy_text(r->payload_sha256, sizeof r->payload_sha256, rk_col_text(q, col + 13));
    copy_text(r->condition, sizeof r->condition, rk_col_text(q, col + 14));
    r->catalog_version = rk_col_int(q, col + 15);
    return RK_OK;
}

/* A row of "seq, " RK_RECORD_COLUMNS as the JSON of GET /v1/records. */
static json_t *row_to_json(rk_stmt *q)
{
    rk_record r;
    char req[32] = "", prov[32] = "";
    rk_record_from_row(q, 1, &r);
    rk_format_time(r.requested_ms, req, sizeof req);
    if (!rk_col_is_null(q, 10))
        rk_format_time(r.provided_ms, prov, sizeof prov);
    json_t *j = json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s?,s:s,s:s,s:s}",
                          "seq", (json_int_t)rk_col_int(q, 0), "exchange_id", r.exchange_id, "side", r.side,
                          "requester", r.requester, "provider", r.provider, "business", r.business, "item", r.item,
                          "operator", r.operator_id, "subject", r.subject, "requested_at", req, "provided_at",
                          prov[0] ? prov : NULL, "outcome", r.outcome, "reason", r.reason, "payload_sha256",
                          r.payload_sha256);
    if (j && r.condition[0])
        json_object_set_new(j, "condition", json_string(r.condition));
    if (j && r.catalog_version)
        json_object_set_new(j, "catalog_version", json_integer((json_int_t)r.catalog_version));
    return j;
}

typedef struct list_args {
    const rk_records_query *q;
    json_t *arr;
    int64_t *next_before;
} list_args;

static rk_rc list_fn(rk_db *db, void *arg)
{
    list_args *a = arg;
    const rk_records_query *q = a->q;
    /* A filter no index serves reads a window of seq below before_seq, at
     * most RK_RECORDS_SEARCH_WINDOW records (see records.h). */
    int windowed = q->agency || q->outcome || q->since_ms || q->until_ms;
    int64_t floor_seq = 0;
    if (windowed) {
        int64_t top = q->before_seq;
        if (!top) {
            rk_stmt *m = rk_db_stmt(db, "SELECT COALESCE(MAX(seq), 0) FROM record_rows");
            rk_rc rc = m ? rk_stmt_next(m) : RK_ERR_STORE;
            if (rc != RK_OK)
                return rc == RK_ERR_NOT_FOUND ? RK_ERR_STORE : rc;
            top = rk_col_int(m, 0) + 1;
        }
        floor_seq = top > RK_RECORDS_SEARCH_WINDOW ? top - RK_RECORDS_SEARCH_WINDOW : 0;
    }
    /* Each filter is bound twice, as plain `?` are numbered in order; the
     * CAST gives the parameter a type where it is only tested for NULL. */
    rk_stmt *st = rk_db_stmt(db,
        "SELECT seq, " RK_RECORD_COLUMNS " FROM records"
        " WHERE (CAST(? AS TEXT) IS NULL OR exchange_id = ?) AND (CAST(? AS TEXT) IS NULL OR subject = ?)"
        " AND (CAST(? AS TEXT) IS NULL OR requester = ? OR provider = ?) AND (CAST(? AS TEXT) IS NULL OR outcome = ?)"
        " AND (CAST(? AS BIGINT) = 0 OR requested_ms >= ?) AND (CAST(? AS BIGINT) = 0 OR requested_ms < ?)"
        " AND (CAST(? AS BIGINT) = 0 OR seq < ?) AND seq > ? ORDER BY seq DESC LIMIT ?");
    int i = 1;
    rk_bind_text(st, i++, q->exchange_id);
    rk_bind_text(st, i++, q->exchange_id);
    rk_bind_text(st, i++, q->subject);
    rk_bind_text(st, i++, q->subject);
    rk_bind_text(st, i++, q->agency);
    rk_bind_text(st, i++, q->agency);
    rk_bind_text(st, i++, q->agency);
    rk_bind_text(st, i++, q->outcome);
    rk_bind_text(st, i++, q->outcome);
    rk_bind_int(st, i++, q->since_ms);
    rk_bind_int(st, i++, q->since_ms);
    rk_bind_int(st, i++, q->until_ms);
    rk_bind_int(st, i++, q->until_ms);
    rk_bind_int(st, i++, q->before_seq);
    rk_bind_int(st, i++, q->before_seq);
    rk_bind_int(st, i++, floor_seq);
    rk_bind_int(st, i++, (int64_t)q->limit + 1);
    rk_rc rc;
    int n = 0;
    while ((rc = rk_stmt_next(st)) == RK_OK) {
        if (n++ == q->limit) {
            *a->next_before = json_integer_value(json_object_get(json_array_get(a->arr, (size_t)q->limit - 1), "seq"));
            break;
        }
        json_array_append_new(a->arr, row_to_json(st));
    }
    /* a short page of a window that did not reach the first record: go on below it */
    if (rc == RK_ERR_NOT_FOUND && windowed && n <= q->limit && floor_seq > 0)
        *a->next_before = floor_seq + 1;
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

rk_rc rk_records_list(rk_db *db, const rk_records_query *q, json_t **out, int64_t *next_before)
{
    json_t *arr = json_array();
    if (!arr)
        return RK_ERR_NOMEM;
    *next_before = 0;
    list_args a = {q, arr, next_before};
    rk_rc rc = rk_db_scan(db, list_fn, &a);
    *out = arr;
    return rc;
}

static rk_rc count_fn(rk_db *db, void *arg)
{
    rk_stmt *q = rk_db_stmt(db, "SELECT COUNT(*) FROM record_rows");
    rk_rc rc = q ? rk_stmt_next(q) : RK_ERR_STORE;
    if (rc == RK_OK)
        *(int64_t *)arg = rk_col_int(q, 0);
    return rc;
}

int64_t rk_records_count(rk_db *db)
{
    int64_t n = 0;
    return rk_db_scan(db, count_fn, &n) == RK_OK ? n : 0;
}

rk_rc rk_records_each(rk_db *db, rk_record_fn fn, void *arg)
{
    return rk_records_range(db, 1, INT64_MAX, fn, arg);
}

typedef struct find_args {
    const char *exchange_id, *side, *outcome;
    rk_record *out;
} find_args;

static rk_rc find_fn(rk_db *db, void *arg)
{
    find_args *a = arg;
    rk_stmt *q = rk_db_stmt(db, "SELECT " RK_RECORD_COLUMNS " FROM records WHERE exchange_id = ? AND side = ?"
                                " AND (CAST(? AS TEXT) IS NULL OR outcome = ?) ORDER BY seq LIMIT 1");
    rk_bind_text(q, 1, a->exchange_id);
    rk_bind_text(q, 2, a->side);
    rk_bind_text(q, 3, a->outcome);
    rk_bind_text(q, 4, a->outcome);
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK)
        rk_record_from_row(q, 0, a->out);
    return rc;
}

rk_rc rk_records_find(rk_db *db, const char *exchange_id, const char *side, const char *outcome, rk_record *out)
{
    find_args a = {exchange_id, side, outcome, out};
    return rk_db_read(db, find_fn, &a);
}

/* ---------- retention ---------- */

static rk_rc archived_upto_fn(rk_db *db, void *arg)
{
    rk_stmt *q = rk_db_stmt(db, "SELECT COALESCE(MAX(upto), 0) FROM records_archived");
    rk_rc rc = rk_stmt_next(q);
    if (rc == RK_OK)
        *(int64_t *)arg = rk_col_int(q, 0);
    return rc == RK_ERR_NOT_FOUND ? RK_ERR_STORE : rc;
}

rk_rc rk_records_archived_upto(rk_db *db, int64_t *upto)
{
    *upto = 0;
    return rk_db_read(db, archived_upto_fn, upto);
}

typedef struct due_args {
    int64_t before_ms, limit, *upto;
} due_args;

static rk_rc archive_due_fn(rk_db *db, void *arg)
{
    due_args *a = arg;
    /* the first record still kept: below it, everything is older than the cutoff */
    rk_stmt *q = rk_db_stmt(db, "SELECT MIN(seq) FROM record_rows WHERE requested_ms >= ?");
    rk_bind_int(q, 1, a->before_ms);
    rk_rc rc = rk_stmt_next(q);
    if (rc != RK_OK)
        return rc == RK_ERR_NOT_FOUND ? RK_ERR_STORE : rc;
    int64_t young = rk_col_is_null(q, 0) ? INT64_MAX : rk_col_int(q, 0);
    q = rk_db_stmt(db, "SELECT COALESCE(MAX(seq), 0) FROM record_rows");
    if ((rc = rk_stmt_next(q)) != RK_OK)
        return rc == RK_ERR_NOT_FOUND ? RK_ERR_STORE : rc;
    int64_t last = rk_col_int(q, 0);
    *a->upto = young == INT64_MAX ? last : young - 1;
    if (*a->upto > a->limit)
        *a->upto = a->limit;
    return RK_OK;
}

rk_rc rk_records_archive_due(rk_db *db, int64_t before_ms, int64_t limit, int64_t *upto)
{
    due_args a = {before_ms, limit, upto};
    *upto = 0;
    return rk_db_read(db, archive_due_fn, &a);
}

typedef struct range_args {
    int64_t from, upto;
    rk_record_fn fn;
    void *arg;
    int again; /* a name newer than the scan's start: load the names again */
} range_args;

/* A store an older renkei left (a read-only tool does not migrate it): its
 * table `records` as it was. */
static rk_rc range_old_fn(rk_db *db, range_args *a)
{
    rk_stmt *q = rk_db_stmt(db, "SELECT seq, " RK_RECORD_COLUMNS " FROM records"
                                " WHERE seq >= ? AND seq <= ? ORDER BY seq");
    rk_bind_int(q, 1, a->from);
    rk_bind_int(q, 2, a->upto);
    rk_rc rc;
    while ((rc = rk_stmt_next(q)) == RK_OK) {
        rk_record r;
        rk_record_from_row(q, 1, &r);
        if ((rc = a->fn(a->arg, rk_col_int(q, 0), &r)) != RK_OK)
            return rc;
    }
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

static rk_rc range_fn(rk_db *db, void *arg)
{
    range_args *a = arg;
    rk_rc rc = rk_records_compact(db);
    if (rc == RK_ERR_NOT_FOUND)
        return range_old_fn(db, a);
    rk_record_names *names = NULL;
    if (rc != RK_OK || (rc = rk_record_names_load(db, &names)) != RK_OK)
        return rc;
    rk_stmt *q = rk_db_stmt(db, "SELECT seq, " RK_RECORD_ROW_COLUMNS " FROM record_rows"
                                " WHERE seq >= ? AND seq <= ? ORDER BY seq");
    rk_bind_int(q, 1, a->from);
    rk_bind_int(q, 2, a->upto);
    a->again = 0;
    while ((rc = rk_stmt_next(q)) == RK_OK) {
        rk_record r;
        int64_t seq = rk_col_int(q, 0);
        if (rk_record_from_stored(q, 1, names, &r) != RK_OK) {
            a->from = seq;
            a->again = 1;
            break;
        }
        if ((rc = a->fn(a->arg, seq, &r)) != RK_OK)
            break;
    }
    rk_record_names_free(names);
    return rc == RK_ERR_NOT_FOUND ? RK_OK : rc;
}

rk_rc rk_records_range(rk_db *db, int64_t from, int64_t upto, rk_record_fn fn, void *arg)
{
    range_args a = {from, upto, fn, arg, 0};
    rk_rc rc;
    int tries = 0;
    do
        rc = rk_db_scan(db, range_fn, &a);
    while (rc == RK_OK && a.again && ++tries < 100);
    return rc == RK_OK && a.again ? RK_ERR_STORE : rc;
}

typedef struct prune_args {
    int64_t from, upto, now_ms;
    const char *file_sha256;
} prune_args;

static rk_rc prune_fn(rk_db *db, void *arg)
{
    prune_args *a = arg;
    int64_t done = 0;
    rk_rc rc = archived_upto_fn(db, &done);
    if (rc != RK_OK)
        return rc;
    if (done != a->from - 1)
        return RK_ERR_CONFLICT; /* another archive ran meanwhile */
    rk_stmt *st = rk_db_stmt(db, "DELETE FROM record_rows WHERE seq >= ? AND seq <= ?");
    rk_bind_int(st, 1, a->from);
    rk_bind_int(st, 2, a->upto);
    if ((rc = rk_stmt_exec(st)) != RK_OK)
        return rc;
    int64_t count = rk_db_changes(db);
    if (count != a->upto - a->from + 1)
        return RK_ERR_CONFLICT; /* not the records that were written out */
    st = rk_db_stmt(db, "INSERT INTO records_archived(upto, count, archived_ms, file_sha256) VALUES (?,?,?,?)");
    rk_bind_int(st, 1, a->upto);
    rk_bind_int(st, 2, count);
    rk_bind_int(st, 3, a->now_ms);
    rk_bind_text(st, 4, a->file_sha256);
    return rk_stmt_exec(st);
}

rk_rc rk_records_prune(rk_db *db, int64_t from, int64_t upto, const char *file_sha256, int64_t now_ms)
{
    prune_args a = {from, upto, now_ms, file_sha256};
    return rk_db_write(db, prune_fn, &a);
}

static rk_rc append_fn(rk_db *db, void *arg)
{
    return rk_record_append(db, arg);
}

rk_rc rk_records_append_step(rk_db *db, const rk_record *base, const char *outcome, const char *reason, int64_t now_ms)
{
    rk_record r = *base;
    r.requested_ms = now_ms;
    r.provided_ms = 0;
    r.payload_sha256[0] = '\0';
    snprintf(r.outcome, sizeof r.outcome, "%s", outcome);
    snprintf(r.reason, sizeof r.reason, "%s", reason);
    rk_rc rc = rk_db_write(db, append_fn, &r);
    return rc == RK_ERR_CONFLICT ? RK_OK : rc; /* the step was recorded before */
}
