/* catalog_cmd.c — `renkei catalog publish`: the catalogue as a signed
 * document (DESIGN §2.3; core/permissions.h, core/catalog.h).
 *
 *   renkei catalog publish DIR --effective DATE [--version N] [--key PATH] [--out FILE]
 *   renkei catalog show DIR [--version N] [--anchor PATH]
 *
 * Reads the catalogue of network DIR (DIR/permissions.csv and the
 * catalogues DIR/catalogue/{kinds,businesses,items}.csv, every id checked),
 * writes it as one document of catalog_version N effective from DATE,
 * signs it with the operator's registry key (crypto/signed_doc.h, kind
 * "catalog") and puts it where the core reads it: DIR/catalog/catalog-<N>.signed
 * ([core] catalog_dir). The core applies it at its effective time.
 * Exit status: 0 success, 1 failure, 2 usage error. */
#include "tools/catalog_cmd.h"

#include <dirent.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/permissions.h"
#include "crypto/pki.h"
#include "crypto/signed_doc.h"
#include "lib/util.h"
#include "tools/toolkit.h"

#define CMD "catalog"

static const char usage_catalog[] =
    "usage: renkei catalog COMMAND DIR [ARGS]\n"
    "\n"
    "The catalogue of the network in DIR (businesses, items with their data\n"
    "layout versions, permission rows with their conditions) as versioned\n"
    "documents signed by the operator's registry key, which the core applies\n"
    "at their effective date without a restart.\n"
    "\n"
    "commands:\n"
    "  publish    sign the catalogue of DIR as a new version\n"
    "  show       check a published version and print what it holds\n"
    "\n"
    "Run 'renkei catalog COMMAND --help' for the options of a command.\n";

static const char usage_publish[] =
    "usage: renkei catalog publish DIR --effective DATE [--version N] [--key PATH] [--out FILE]\n"
    "\n"
    "Signs DIR/permissions.csv with the catalogues DIR/catalogue/*.csv (items.csv\n"
    "with a layout_version column) as catalogue version N, effective from DATE,\n"
    "and writes DIR/catalog/catalog-N.signed, where the core reads it ([core]\n"
    "catalog_dir). The core switches to it at DATE without a restart. Prints\n"
    "the version written.\n"
    "\n"
    "  --effective DATE  施行日: YYYY-MM-DD (00:00 Japan time) or an RFC 3339\n"
    "                    time (2026-07-01T00:00:00+09:00, …Z)\n"
    "  --version N       the catalog_version (default: one above the newest in\n"
    "                    DIR/catalog); it must be above every version there\n"
    "  --key PATH        the registry key (default DIR/pki/registry-key.pem)\n"
    "  --out FILE        write the signed document to FILE instead (no check\n"
    "                    against DIR/catalog), to carry to a core elsewhere\n"
    "  --help            show this help\n";

static const char usage_show[] =
    "usage: renkei catalog show DIR [--version N] [--anchor PATH]\n"
    "\n"
    "Checks DIR/catalog/catalog-N.signed (default: the newest there) against the\n"
    "registry key's public half and prints its version, effective date, key id\n"
    "and counts. Exit 1 when it does not verify or is malformed.\n"
    "\n"
    "  --version N     the version to show\n"
    "  --anchor PATH   the public key to check with (default DIR/pki/registry.pub)\n"
    "  --help          show this help\n";

__attribute__((format(printf, 4, 5))) static rk_rc set_err(char *err, size_t errlen, rk_rc rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

rk_rc rk_catalog_registry_key(const char *dir, char *err, size_t errlen)
{
    char key_path[TK_PATH_CAP], pub_path[TK_PATH_CAP], folder[TK_PATH_CAP];
    struct stat st;
    if (tk_path(folder, sizeof folder, "%s/pki", dir) != RK_OK ||
        tk_path(key_path, sizeof key_path, "%s/pki/registry-key.pem", dir) != RK_OK ||
        tk_path(pub_path, sizeof pub_path, "%s/pki/registry.pub", dir) != RK_OK)
        return set_err(err, errlen, RK_ERR_INVALID, "%s: folder name too long", dir);
    EVP_PKEY *key = NULL;
    rk_rc rc = RK_OK;
    int made = 0;
    if (stat(key_path, &st) == 0) {
        if (stat(pub_path, &st) == 0)
            return RK_OK; /* both there: kept as they are */
        if ((rc = rk_pki_load_key(key_path, NULL, &key)) != RK_OK)
            return set_err(err, errlen, rc, "%s: cannot read the registry key: %s", key_path, rk_strerror(rc));
    } else {
        if ((rc = rk_mkdirs(folder, 0755)) != RK_OK)
            return set_err(err, errlen, rc, "%s: cannot create: %s", folder, rk_strerror(rc));
        if (!(key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")))
            return set_err(err, errlen, RK_ERR_CRYPTO, "cannot make the registry key");
        made = 1;
    }
    BIO *priv = BIO_new(BIO_s_mem()), *pub = BIO_new(BIO_s_mem());
    char *pd = NULL, *ud = NULL;
    long pl = 0, ul = 0;
    if (!priv || !pub || (made && !PEM_write_bio_PrivateKey(priv, key, NULL, NULL, 0, NULL, NULL)) ||
        !PEM_write_bio_PUBKEY(pub, key)) {
        rc = set_err(err, errlen, RK_ERR_CRYPTO, "cannot write the registry key");
    } else {
        pl = BIO_get_mem_data(priv, &pd);
        ul = BIO_get_mem_data(pub, &ud);
        if (made && (rc = rk_write_file(key_path, pd, (size_t)pl, 0600)) != RK_OK) /* 第5-2(5) */
            set_err(err, errlen, rc, "%s: cannot write: %s", key_path, rk_strerror(rc));
        else if ((rc = rk_write_file(pub_path, ud, (size_t)ul, 0644)) != RK_OK)
            set_err(err, errlen, rc, "%s: cannot write: %s", pub_path, rk_strerror(rc));
    }
    if (pd && pl > 0)
        rk_wipe(pd, (size_t)pl);
    BIO_free(priv);
    BIO_free(pub);
    EVP_PKEY_free(key);
    return rc;
}

/* The newest catalog_version among DIR/catalog/catalog-<N>.signed (0: none). */
static int64_t newest_published(const char *folder)
{
    DIR *d = opendir(folder);
    int64_t newest = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        long long v = 0;
        char tail[16] = "";
        if (sscanf(e->d_name, "catalog-%lld%15s", &v, tail) == 2 && strcmp(tail, ".signed") == 0 && v > newest)
            newest = v;
    }
    if (d)
        closedir(d);
    return newest;
}

rk_rc rk_catalog_publish(const char *dir, const char *effective, int64_t version, const char *key_path,
                         const char *out_path, int64_t *written, char *err, size_t errlen)
{
    char perms[TK_PATH_CAP], cats[TK_PATH_CAP], folder[TK_PATH_CAP], key_default[TK_PATH_CAP], out[TK_PATH_CAP];
    if (tk_path(perms, sizeof perms, "%s/permissions.csv", dir) != RK_OK ||
        tk_path(cats, sizeof cats, "%s/catalogue", dir) != RK_OK ||
        tk_path(folder, sizeof folder, "%s/catalog", dir) != RK_OK ||
        tk_path(key_default, sizeof key_default, "%s/pki/registry-key.pem", dir) != RK_OK)
        return set_err(err, errlen, RK_ERR_INVALID, "%s: folder name too long", dir);
    int64_t newest = newest_published(folder);
    if (!version)
        version = newest + 1;
    if (!out_path && version <= newest)
        return set_err(err, errlen, RK_ERR_CONFLICT,
                       "version %lld is not above %lld, the newest in %s: the core would refuse it", (long long)version,
                       (long long)newest, folder);
    rk_permissions *tables = NULL;
    EVP_PKEY *key = NULL;
    char *doc = NULL, *env = NULL;
    size_t doclen = 0, envlen = 0;
    rk_rc rc = rk_permissions_load(perms, cats, &tables, err, errlen);
    if (rc == RK_OK)
        rc = rk_catalog_doc_build(tables, version, effective, &doc, &doclen, err, errlen);
    tk_use_network_token(dir); /* net init --hsm: the key is in the network's token */
    if (rc == RK_OK && (rc = rk_pki_load_key(key_path ? key_path : key_default, NULL, &key)) != RK_OK)
        set_err(err, errlen, rc, "%s: cannot read the registry key: %s", key_path ? key_path : key_default,
                rk_strerror(rc));
    if (rc == RK_OK && (rc = rk_signed_doc_sign(key, RK_CATALOG_KIND, doc, doclen, &env, &envlen)) != RK_OK)
        set_err(err, errlen, rc, "cannot sign the catalogue: %s", rk_strerror(rc));
    if (rc == RK_OK && !out_path && (rc = rk_mkdirs(folder, 0755)) != RK_OK)
        set_err(err, errlen, rc, "%s: cannot create: %s", folder, rk_strerror(rc));
    if (rc == RK_OK && !out_path &&
        tk_path(out, sizeof out, "%s/catalog-%lld.signed", folder, (long long)version) != RK_OK)
        rc = set_err(err, errlen, RK_ERR_INVALID, "%s: folder name too long", folder);
    if (rc == RK_OK && (rc = rk_write_file(out_path ? out_path : out, env, envlen, 0644)) != RK_OK)
        set_err(err, errlen, rc, "%s: cannot write: %s", out_path ? out_path : out, rk_strerror(rc));
    if (rc == RK_OK && written)
        *written = version;
    rk_permissions_free(tables);
    EVP_PKEY_free(key);
    free(doc);
    free(env);
    return rc;
}

static int cmd_publish(int argc, char **argv)
{
    static const struct option opts[] = {{"effective", required_argument, NULL, 'e'},
                                         {"version", required_argument, NULL, 'v'},
                                         {"key", required_argument, NULL, 'k'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *effective = NULL, *key = NULL, *out = NULL;
    long version = 0;
    int c;
    tk_getopt_reset();
    while ((c = getopt_long(argc, argv, ":e:v:k:o:h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage_publish, stdout);
            return 0;
        } else if (c == 'e') {
            effective = optarg;
        } else if (c == 'v') {
            if (!tk_parse_long(optarg, 1, 999999999999L, &version))
                return tk_usage_error(CMD " publish", "--version must be an integer from 1, not '%s'", optarg);
        } else if (c == 'k') {
            key = optarg;
        } else if (c == 'o') {
            out = optarg;
        } else {
            return tk_option_error(CMD " publish", c, argv);
        }
    }
    if (optind != argc - 1)
        return tk_usage_error(CMD " publish", "give the network folder DIR");
    int64_t ms;
    if (!effective || rk_catalog_effective_parse(effective, &ms) != RK_OK)
        return tk_usage_error(CMD " publish", "--effective DATE is required: YYYY-MM-DD or an RFC 3339 time");
    if ((key && !*key) || (out && !*out))
        return tk_usage_error(CMD " publish", "--key and --out need a path");
    char err[1024] = "";
    int64_t written = 0;
    rk_rc rc = rk_catalog_publish(argv[optind], effective, version, key, out, &written, err, sizeof err);
    if (rc != RK_OK)
        return tk_failure(CMD " publish", "%s", err[0] ? err : rk_strerror(rc));
    printf("%lld\n", (long long)written);
    return 0;
}

static int cmd_show(int argc, char **argv)
{
    static const struct option opts[] = {{"version", required_argument, NULL, 'v'},
                                         {"anchor", required_argument, NULL, 'a'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *anchor_path = NULL;
    long version = 0;
    int c;
    tk_getopt_reset();
    while ((c = getopt_long(argc, argv, ":v:a:h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage_show, stdout);
            return 0;
        } else if (c == 'v') {
            if (!tk_parse_long(optarg, 1, 999999999999L, &version))
                return tk_usage_error(CMD " show", "--version must be an integer from 1, not '%s'", optarg);
        } else if (c == 'a') {
            anchor_path = optarg;
        } else {
            return tk_option_error(CMD " show", c, argv);
        }
    }
    if (optind != argc - 1)
        return tk_usage_error(CMD " show", "give the network folder DIR");
    const char *dir = argv[optind];
    char folder[TK_PATH_CAP], path[TK_PATH_CAP], pub[TK_PATH_CAP], err[512] = "", id[RK_SIGNED_DOC_KEY_ID_LEN];
    if (tk_path(folder, sizeof folder, "%s/catalog", dir) != RK_OK ||
        tk_path(pub, sizeof pub, "%s/pki/registry.pub", dir) != RK_OK)
        return tk_failure(CMD " show", "%s: folder name too long", dir);
    if (!version && !(version = (long)newest_published(folder)))
        return tk_failure(CMD " show", "%s: no catalog-<N>.signed", folder);
    if (tk_path(path, sizeof path, "%s/catalog-%ld.signed", folder, version) != RK_OK)
        return tk_failure(CMD " show", "%s: folder name too long", folder);
    EVP_PKEY *anchor = NULL;
    char *env = NULL, *doc = NULL;
    size_t envlen = 0, doclen = 0;
    rk_permissions *p = NULL;
    rk_rc rc = rk_signed_doc_load_anchor(anchor_path ? anchor_path : pub, &anchor);
    if (rc != RK_OK)
        set_err(err, sizeof err, rc, "%s: cannot read the anchor: %s", anchor_path ? anchor_path : pub,
                rk_strerror(rc));
    else if ((rc = rk_read_file(path, (size_t)RK_CATALOG_DOC_MAX / 3 * 4 + 4096, &env, &envlen)) != RK_OK)
        set_err(err, sizeof err, rc, "%s: cannot read: %s", path, rk_strerror(rc));
    else if ((rc = rk_signed_doc_open(anchor, RK_CATALOG_KIND, env, envlen, RK_CATALOG_DOC_MAX, &doc, &doclen, err,
                                      sizeof err)) != RK_OK)
        set_err(err, sizeof err, rc, "%s: %s", path,
                rc == RK_ERR_CRYPTO ? "the signature does not verify under the anchor" : "not a signed catalogue");
    else if ((rc = rk_catalog_doc_parse(doc, doclen, &p, err, sizeof err)) == RK_OK &&
             rk_permissions_version(p) != version)
        rc = set_err(err, sizeof err, RK_ERR_INVALID, "%s: the document says version %lld", path,
                     (long long)rk_permissions_version(p));
    if (rc == RK_OK && (rc = rk_signed_doc_key_id(anchor, id)) == RK_OK) {
        json_t *j = rk_permissions_json(p);
        printf("catalog_version  %lld\neffective_from   %s\nkey_id           %s\n"
               "kinds %zu, businesses %zu, items %zu, permission rows %zu\n",
               (long long)rk_permissions_version(p), rk_permissions_effective_from(p), id,
               json_array_size(json_object_get(j, "kinds")), json_array_size(json_object_get(j, "businesses")),
               json_array_size(json_object_get(j, "items")), rk_permissions_count(p));
        json_decref(j);
    }
    EVP_PKEY_free(anchor);
    free(env);
    free(doc);
    rk_permissions_free(p);
    if (rc != RK_OK)
        return tk_failure(CMD " show", "%s", err[0] ? err : rk_strerror(rc));
    return 0;
}

int rk_cmd_catalog(int argc, char **argv)
{
    if (argc < 2)
        return tk_usage_error(CMD, "give a command: publish or show");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage_catalog, stdout);
        return 0;
    }
    if (strcmp(argv[1], "publish") == 0)
        return cmd_publish(argc - 1, argv + 1);
    if (strcmp(argv[1], "show") == 0)
        return cmd_show(argc - 1, argv + 1);
    return tk_usage_error(CMD, "unknown command '%s'", argv[1]);
}
