/* pki_cmd.c — `renkei pki`: the network CA and node certificates from the
 * command line (DESIGN §3, §5; standard 第5-2(3)(4) peer authentication,
 * 第5-2(5) key protection).
 *
 *   renkei pki init DIR [--days N]
 *   renkei pki issue --ca DIR --id ID --role ROLE --out OUTDIR [...]
 *   renkei pki fingerprint CERT
 *   renkei pki show CERT
 *   renkei pki revoke DIR NODE-ID [--reason R]
 *   renkei pki renew DIR NODE-ID [--overlap-days N | --overlap-until UNIXSECS]
 *
 * Exit status: 0 success, 1 failure, 2 usage error; errors are one line on
 * stderr starting with "renkei pki: ". */
#include <arpa/inet.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <errno.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/x509v3.h>

#include "crypto/keys.h"
#include "crypto/pki.h"
#include "net/registry.h"
#include "lib/util.h"
#include "tools/registry_cmd.h"
#include "tools/toolkit.h"
#include "tools/tools.h"

#define EXIT_USAGE TK_EXIT_USAGE
#define PATH_CAP TK_PATH_CAP
#define PASSPHRASE_CAP 4096
#define MAX_DAYS 36500

enum parse_result { PARSE_OK, PARSE_HELP, PARSE_USAGE };

static const char usage_pki[] =
    "usage: renkei pki COMMAND [ARGS]\n"
    "\n"
    "The network CA and node certificates (ECDSA P-256).\n"
    "\n"
    "commands:\n"
    "  init DIR [--days N]        create the network CA in DIR\n"
    "  issue --ca DIR --id ID --role ROLE --out OUTDIR [options]\n"
    "                             issue a node certificate and key\n"
    "  fingerprint CERT           print the certificate's SHA-256 fingerprint\n"
    "  show CERT                  print a certificate's identity and validity\n"
    "  revoke DIR NODE-ID [--reason R]\n"
    "                             revoke a node's certificate in the network's CRL\n"
    "  renew DIR NODE-ID [--overlap-days N]\n"
    "                             a new key and certificate for a node\n"
    "\n"
    "Run 'renkei pki COMMAND --help' for the options of a command.\n";

static const char usage_init[] =
    "usage: renkei pki init DIR [--days N]\n"
    "\n"
    "Creates DIR (mode 0755) if missing and writes the network CA:\n"
    "DIR/ca.pem (certificate) and DIR/ca-key.pem (private key, mode 0600).\n"
    "Refuses to overwrite an existing CA.\n"
    "\n"
    "  --days N   validity in days (default 3650)\n"
    "  --help     show this help\n";

static const char usage_issue[] =
    "usage: renkei pki issue --ca DIR --id ID --role ROLE --out OUTDIR [options]\n"
    "\n"
    "Issues a node certificate signed by the CA in DIR and writes\n"
    "OUTDIR/cert.pem and OUTDIR/key.pem (mode 0600).\n"
    "\n"
    "  --ca DIR                 directory holding ca.pem and ca-key.pem\n"
    "  --id ID                  node id (the certificate's CN)\n"
    "  --role ROLE              core, jlis, gateway, agency, system or operator\n"
    "  --name NAME              name in the SAN URI urn:renkei:ROLE:NAME (default: ID)\n"
    "  --ip IP                  IP address SAN (the address the node listens on)\n"
    "  --days N                 validity in days (default 825)\n"
    "  --not-before UNIXSECS    start of validity (default: now minus 5 minutes)\n"
    "  --not-after UNIXSECS     end of validity (overrides --days)\n"
    "  --passphrase-file F      encrypt the key with the first line of F\n"
    "  --out OUTDIR             output directory (created if missing)\n"
    "  --help                   show this help\n";

static const char usage_fingerprint[] =
    "usage: renkei pki fingerprint CERT\n"
    "\n"
    "Prints the SHA-256 fingerprint of the certificate (lowercase hex of its DER).\n";

static const char usage_show[] =
    "usage: renkei pki show CERT\n"
    "\n"
    "Prints subject, role, name, not-before, not-after, fingerprint and the\n"
    "libcurl public-key pin, one 'key: value' per line.\n";

static const char usage_revoke[] =
    "usage: renkei pki revoke DIR NODE-ID [--reason R]\n"
    "\n"
    "Revokes the registered certificate of node NODE-ID of the network in DIR:\n"
    "DIR/pki/crl.pem, the network CA's CRL, gets it with the next CRL number,\n"
    "a next update in 7 days and the CA's signature. Nodes whose node.conf names\n"
    "the CRL (crl = ...) load it at start and on SIGHUP.\n"
    "\n"
    "  --reason R   an RFC 5280 reason: unspecified (default), keyCompromise,\n"
    "               cACompromise, affiliationChanged, superseded,\n"
    "               cessationOfOperation, certificateHold, removeFromCRL,\n"
    "               privilegeWithdrawn, aACompromise\n"
    "  --help       show this help\n";

static const char usage_renew[] =
    "usage: renkei pki renew DIR NODE-ID [--overlap-days N | --overlap-until UNIXSECS]\n"
    "\n"
    "Makes a new key in the node's own folder and a new certificate from the\n"
    "network CA, with the same identity; network.json gets its fingerprint and\n"
    "pin, and keeps the previous fingerprint accepted until the end of the\n"
    "overlap (previous_fingerprints). The previous certificate stays in the\n"
    "folder as cert-<fingerprint prefix>.pem, so that what it signed still\n"
    "verifies. The node serves its new certificate from its next start.\n"
    "\n"
    "  --overlap-days N          the previous certificate is accepted N more days\n"
    "                            (0 to 365, default 7)\n"
    "  --overlap-until UNIXSECS  or until that time\n"
    "  --help                    show this help\n";

static const char *const roles[] = {"core", "jlis", "gateway", "agency", "system", "operator", "witness", "portal",
                                    "ppc", "ppc-operator"};

/* ---- messages and parsing helpers -------------------------------------- */

#define usage_error(...) tk_usage_error("pki", __VA_ARGS__)
#define failure(...) tk_failure("pki", __VA_ARGS__)
#define option_error(c, argv) tk_option_error("pki", (c), (argv))

static int is_known_role(const char *role)
{
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (strcmp(role, roles[i]) == 0)
            return 1;
    return 0;
}

static int is_ip_address(const char *ip)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, ip, buf) == 1 || inet_pton(AF_INET6, ip, buf) == 1;
}

static int join_path(char out[PATH_CAP], const char *dir, const char *file)
{
    return snprintf(out, PATH_CAP, "%s/%s", dir, file) < PATH_CAP;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Options with only --help, then exactly one positional argument. */
static enum parse_result parse_single_arg(int argc, char **argv, const char **arg)
{
    static const struct option options[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c;
    tk_getopt_reset();
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        if (c == 'h')
            return PARSE_HELP;
        option_error(c, argv);
        return PARSE_USAGE;
    }
    if (argc - optind != 1) {
        usage_error("%s takes exactly one argument", argv[0]);
        return PARSE_USAGE;
    }
    *arg = argv[optind];
    return PARSE_OK;
}

/* ---- init ------------------------------------------------------------- */

static enum parse_result parse_init(int argc, char **argv, const char **dir, int *days)
{
    static const struct option options[] = {
        {"days", required_argument, NULL, 'd'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c;
    tk_getopt_reset();
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        if (c == 'h')
            return PARSE_HELP;
        if (c != 'd') {
            option_error(c, argv);
            return PARSE_USAGE;
        }
        if (!tk_parse_int(optarg, 1, MAX_DAYS, days)) {
            usage_error("--days must be a whole number from 1 to %d", MAX_DAYS);
            return PARSE_USAGE;
        }
    }
    if (argc - optind != 1) {
        usage_error("init takes exactly one directory");
        return PARSE_USAGE;
    }
    *dir = argv[optind];
    return PARSE_OK;
}

static int cmd_init(int argc, char **argv)
{
    const char *dir = NULL;
    int days = 0;
    char cert_path[PATH_CAP], key_path[PATH_CAP];
    enum parse_result parsed = parse_init(argc, argv, &dir, &days);
    if (parsed == PARSE_HELP) {
        fputs(usage_init, stdout);
        return EXIT_SUCCESS;
    }
    if (parsed != PARSE_OK)
        return EXIT_USAGE;
    if (!join_path(cert_path, dir, "ca.pem") || !join_path(key_path, dir, "ca-key.pem"))
        return usage_error("directory name too long");
    if (file_exists(cert_path))
        return failure("%s already exists; refusing to replace the network CA", cert_path);
    if (file_exists(key_path))
        return failure("%s already exists; refusing to replace the CA key", key_path);
    rk_rc rc = rk_mkdirs(dir, 0755);
    if (rc != RK_OK)
        return failure("cannot create %s: %s", dir, rk_strerror(rc));
    rc = rk_pki_create_ca(cert_path, key_path, "renkei network CA", days);
    if (rc != RK_OK)
        return failure("cannot create the CA in %s: %s", dir, rk_strerror(rc));
    return EXIT_SUCCESS;
}

/* ---- issue ------------------------------------------------------------ */

struct issue_args {
    const char *ca_dir;
    const char *out_dir;
    const char *passphrase_file;
    rk_cert_spec spec;
};

enum issue_option {
    OPT_CA = 1000, OPT_ID, OPT_ROLE, OPT_NAME, OPT_IP, OPT_DAYS,
    OPT_NOT_BEFORE, OPT_NOT_AFTER, OPT_PASSPHRASE_FILE, OPT_OUT,
};

static const struct option issue_options[] = {
    {"ca", required_argument, NULL, OPT_CA},
    {"id", required_argument, NULL, OPT_ID},
    {"role", required_argument, NULL, OPT_ROLE},
    {"name", required_argument, NULL, OPT_NAME},
    {"ip", required_argument, NULL, OPT_IP},
    {"days", required_argument, NULL, OPT_DAYS},
    {"not-before", required_argument, NULL, OPT_NOT_BEFORE},
    {"not-after", required_argument, NULL, OPT_NOT_AFTER},
    {"passphrase-file", required_argument, NULL, OPT_PASSPHRASE_FILE},
    {"out", required_argument, NULL, OPT_OUT},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Stores one option's value; 0 if the value is not acceptable. */
static int store_issue_option(int c, const char *value, struct issue_args *a)
{
    long n = 0;
    switch (c) {
    case OPT_CA: a->ca_dir = value; return 1;
    case OPT_ID: a->spec.common_name = value; return 1;
    case OPT_ROLE: a->spec.role = value; return 1;
    case OPT_NAME: a->spec.name = value; return 1;
    case OPT_IP: a->spec.ip = value; return 1;
    case OPT_PASSPHRASE_FILE: a->passphrase_file = value; return 1;
    case OPT_OUT: a->out_dir = value; return 1;
    case OPT_DAYS:
        if (!tk_parse_long(value, 1, MAX_DAYS, &n)) {
            usage_error("--days must be a whole number from 1 to %d", MAX_DAYS);
            return 0;
        }
        a->spec.days = (int)n;
        return 1;
    case OPT_NOT_BEFORE:
    case OPT_NOT_AFTER:
        if (!tk_parse_long(value, 1, INT64_C(253402300799), &n)) { /* up to 9999-12-31 */
            usage_error("%s takes unix seconds", c == OPT_NOT_BEFORE ? "--not-before" : "--not-after");
            return 0;
        }
        *(c == OPT_NOT_BEFORE ? &a->spec.not_before : &a->spec.not_after) = n;
        return 1;
    default: return 0;
    }
}

static enum parse_result check_issue_args(struct issue_args *a)
{
    const char *missing = !a->ca_dir ? "--ca" : !a->spec.common_name ? "--id"
                        : !a->spec.role ? "--role" : !a->out_dir ? "--out" : NULL;
    if (missing) {
        usage_error("issue needs %s", missing);
        return PARSE_USAGE;
    }
    if (!a->spec.name)
        a->spec.name = a->spec.common_name;
    if (!is_known_role(a->spec.role)) {
        usage_error("unknown role '%s' (core, jlis, gateway, agency, system, operator)", a->spec.role);
        return PARSE_USAGE;
    }
    if (a->spec.ip && !is_ip_address(a->spec.ip)) {
        usage_error("--ip '%s' is not an IP address", a->spec.ip);
        return PARSE_USAGE;
    }
    if (a->spec.not_before && a->spec.not_after && a->spec.not_after <= a->spec.not_before) {
        usage_error("--not-after must be later than --not-before");
        return PARSE_USAGE;
    }
    return PARSE_OK;
}

static enum parse_result parse_issue(int argc, char **argv, struct issue_args *a)
{
    int c;
    tk_getopt_reset();
    while ((c = getopt_long(argc, argv, ":h", issue_options, NULL)) != -1) {
        if (c == 'h')
            return PARSE_HELP;
        if (c == '?' || c == ':') {
            option_error(c, argv);
            return PARSE_USAGE;
        }
        if (!store_issue_option(c, optarg, a))
            return PARSE_USAGE;
    }
    if (optind < argc) {
        usage_error("unexpected argument '%s'", argv[optind]);
        return PARSE_USAGE;
    }
    return check_issue_args(a);
}

/* First line of the passphrase file, without \r\n (as rk_pki_load_key reads
 * it). *cap is the size to wipe. */
static rk_rc read_passphrase(const char *path, char **out, size_t *cap)
{
    char *buf = NULL;
    size_t len = 0;
    rk_rc rc = rk_read_file(path, PASSPHRASE_CAP, &buf, &len);
    if (rc != RK_OK)
        return rc;
    buf[strcspn(buf, "\r\n")] = '\0';
    if (buf[0] == '\0') {
        rk_wipe(buf, len);
        free(buf);
        return RK_ERR_CONFIG;
    }
    *out = buf;
    *cap = len;
    return RK_OK;
}

static int issue_into(const struct issue_args *a, const char *passphrase)
{
    char ca_cert[PATH_CAP], ca_key[PATH_CAP], cert[PATH_CAP], key[PATH_CAP];
    if (!join_path(ca_cert, a->ca_dir, "ca.pem") || !join_path(ca_key, a->ca_dir, "ca-key.pem") ||
        !join_path(cert, a->out_dir, "cert.pem") || !join_path(key, a->out_dir, "key.pem"))
        return usage_error("directory name too long");
    /* A CA key in a token (ca-key.pem holds its pkcs11: URI, crypto/keys.h):
     * a network made with `net init --hsm` has its SoftHSM2 configuration
     * next to pki/; say in one line why the key cannot be used. */
    char hsm_conf[PATH_CAP], why[512];
    if (!getenv("SOFTHSM2_CONF") && join_path(hsm_conf, a->ca_dir, "../hsm/softhsm2.conf") && file_exists(hsm_conf))
        setenv("SOFTHSM2_CONF", hsm_conf, 1);
    EVP_PKEY *probe = NULL;
    if (file_exists(ca_key) && rk_pkey_load(ca_key, NULL, &probe, why, sizeof why) != RK_OK)
        return failure("the CA key: %s", why);
    EVP_PKEY_free(probe);
    rk_rc rc = rk_mkdirs(a->out_dir, 0755);
    if (rc != RK_OK)
        return failure("cannot create %s: %s", a->out_dir, rk_strerror(rc));
    rc = rk_pki_issue(ca_cert, ca_key, &a->spec, cert, key, passphrase);
    if (rc == RK_ERR_NOT_FOUND)
        return failure("no CA in %s (run 'renkei pki init %s' first)", a->ca_dir, a->ca_dir);
    if (rc != RK_OK)
        return failure("cannot issue a certificate for %s: %s", a->spec.common_name, rk_strerror(rc));
    return EXIT_SUCCESS;
}

static int cmd_issue(int argc, char **argv)
{
    struct issue_args args = {0};
    char *passphrase = NULL;
    size_t passphrase_cap = 0;
    enum parse_result parsed = parse_issue(argc, argv, &args);
    if (parsed == PARSE_HELP) {
        fputs(usage_issue, stdout);
        return EXIT_SUCCESS;
    }
    if (parsed != PARSE_OK)
        return EXIT_USAGE;
    if (args.passphrase_file) {
        rk_rc rc = read_passphrase(args.passphrase_file, &passphrase, &passphrase_cap);
        if (rc != RK_OK)
            return failure("cannot read a passphrase from %s: %s", args.passphrase_file,
                           rk_strerror(rc));
    }
    int status = issue_into(&args, passphrase);
    if (passphrase) {
        rk_wipe(passphrase, passphrase_cap);
        free(passphrase);
    }
    return status;
}

/* ---- fingerprint and show -------------------------------------------- */

static int load_cert_arg(int argc, char **argv, const char *usage, X509 **cert, int *status)
{
    const char *path = NULL;
    enum parse_result parsed = parse_single_arg(argc, argv, &path);
    if (parsed != PARSE_OK) {
        if (parsed == PARSE_HELP)
            fputs(usage, stdout);
        *status = parsed == PARSE_HELP ? EXIT_SUCCESS : EXIT_USAGE;
        return 0;
    }
    rk_rc rc = rk_pki_load_cert(path, cert);
    if (rc != RK_OK) {
        *status = failure("cannot read a certificate from %s: %s", path, rk_strerror(rc));
        return 0;
    }
    return 1;
}

static int cmd_fingerprint(int argc, char **argv)
{
    X509 *cert = NULL;
    char fingerprint[RK_FINGERPRINT_LEN];
    int status = EXIT_SUCCESS;
    if (!load_cert_arg(argc, argv, usage_fingerprint, &cert, &status))
        return status;
    rk_rc rc = rk_pki_fingerprint(cert, fingerprint);
    if (rc == RK_OK)
        printf("%s\n", fingerprint);
    else
        status = failure("cannot compute the fingerprint: %s", rk_strerror(rc));
    X509_free(cert);
    return status;
}

static void format_asn1_time(const ASN1_TIME *t, char *out, size_t outlen)
{
    struct tm tm;
    if (!t || !ASN1_TIME_to_tm(t, &tm) || !strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, outlen, "-");
}

static int print_cert_details(X509 *cert)
{
    char cn[256] = "-", role[64] = "-", name[128] = "-", not_before[32], not_after[32];
    char fingerprint[RK_FINGERPRINT_LEN], pin[RK_PIN_LEN];
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) < 0)
        snprintf(cn, sizeof cn, "-");
    if (rk_pki_cert_identity(cert, role, sizeof role, name, sizeof name) != RK_OK) {
        snprintf(role, sizeof role, "-");
        snprintf(name, sizeof name, "-");
    }
    format_asn1_time(X509_get0_notBefore(cert), not_before, sizeof not_before);
    format_asn1_time(X509_get0_notAfter(cert), not_after, sizeof not_after);
    rk_rc rc = rk_pki_fingerprint(cert, fingerprint);
    if (rc == RK_OK)
        rc = rk_pki_spki_pin(cert, pin);
    if (rc != RK_OK)
        return failure("cannot digest the certificate: %s", rk_strerror(rc));
    printf("subject: %s\nrole: %s\nname: %s\nnot-before: %s\nnot-after: %s\n"
           "fingerprint: %s\npin: %s\n",
           cn, role, name, not_before, not_after, fingerprint, pin);
    return EXIT_SUCCESS;
}

static int cmd_show(int argc, char **argv)
{
    X509 *cert = NULL;
    int status = EXIT_SUCCESS;
    if (!load_cert_arg(argc, argv, usage_show, &cert, &status))
        return status;
    status = print_cert_details(cert);
    X509_free(cert);
    return status;
}

/* ---- revoke and renew (DESIGN §3) ------------------------------------- */

#define MAX_OVERLAP_DAYS 365

/* The node's folder in the network: nodes/ID for a server, clients/… else. */
static rk_rc node_folder(const char *dir, const rk_peer_node *n, char out[PATH_CAP])
{
    if (n->role & RK_ROLES_SERVER)
        return tk_path(out, PATH_CAP, "%s/nodes/%s", dir, n->id);
    return tk_path(out, PATH_CAP, "%s/clients/%s", dir, n->role == RK_ROLE_SYSTEM ? n->agency : n->id);
}

/* The registry of DIR, the node, its folder and its registered certificate;
 * prints the failure and returns its exit status, or 0. */
static int load_registered(const char *dir, const char *id, rk_registry **reg, const rk_peer_node **node,
                           char folder[PATH_CAP], X509 **cert)
{
    char err[512], path[PATH_CAP], fp[RK_FINGERPRINT_LEN];
    if (tk_registry_load(dir, reg, err, sizeof err) != RK_OK)
        return failure("%s", err);
    if (!(*node = rk_registry_by_id(*reg, id)))
        return failure("no node '%s' in %s/network.json", id, dir);
    if (node_folder(dir, *node, folder) != RK_OK || tk_path(path, sizeof path, "%s/cert.pem", folder) != RK_OK)
        return usage_error("directory name too long");
    if (rk_pki_load_cert(path, cert) != RK_OK)
        return failure("cannot read the certificate of %s from %s", id, path);
    if (rk_pki_fingerprint(*cert, fp) != RK_OK || strcmp(fp, (*node)->fingerprint) != 0)
        return failure("%s is not the certificate network.json registers for %s", path, id);
    return 0;
}

static enum parse_result parse_two_args(int argc, char **argv, const struct option *options, int (*store)(int, const char *, void *),
                                        void *arg, const char **dir, const char **id)
{
    int c;
    tk_getopt_reset();
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        if (c == 'h')
            return PARSE_HELP;
        if (c == '?' || c == ':') {
            option_error(c, argv);
            return PARSE_USAGE;
        }
        if (!store(c, optarg, arg))
            return PARSE_USAGE;
    }
    if (argc - optind != 2) {
        usage_error("%s takes a network directory and a node id", argv[0]);
        return PARSE_USAGE;
    }
    *dir = argv[optind];
    *id = argv[optind + 1];
    return PARSE_OK;
}

static int store_reason(int c, const char *value, void *arg)
{
    int *reason = arg;
    (void)c;
    if ((*reason = rk_pki_crl_reason_parse(value)) < 0) {
        usage_error("unknown reason '%s' (RFC 5280: keyCompromise, superseded, cessationOfOperation, ...)", value);
        return 0;
    }
    return 1;
}

static int cmd_revoke(int argc, char **argv)
{
    static const struct option options[] = {
        {"reason", required_argument, NULL, 'r'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    const char *dir = NULL, *id = NULL;
    int reason = 0;
    enum parse_result parsed = parse_two_args(argc, argv, options, store_reason, &reason, &dir, &id);
    if (parsed != PARSE_OK) {
        if (parsed == PARSE_HELP)
            fputs(usage_revoke, stdout);
        return parsed == PARSE_HELP ? EXIT_SUCCESS : EXIT_USAGE;
    }
    rk_registry *reg = NULL;
    const rk_peer_node *node = NULL;
    X509 *cert = NULL;
    char folder[PATH_CAP], ca[PATH_CAP], ca_key[PATH_CAP], crl[PATH_CAP];
    uint64_t number = 0;
    int status = load_registered(dir, id, &reg, &node, folder, &cert);
    if (status)
        goto done;
    if (tk_path(ca, sizeof ca, "%s/pki/ca.pem", dir) || tk_path(ca_key, sizeof ca_key, "%s/pki/ca-key.pem", dir) ||
        tk_path(crl, sizeof crl, "%s/pki/crl.pem", dir)) {
        status = usage_error("directory name too long");
        goto done;
    }
    rk_rc rc = rk_pki_crl_revoke(ca, ca_key, crl, cert, reason, &number);
    if (rc == RK_ERR_EXISTS)
        status = failure("the certificate of %s is revoked already", id);
    else if (rc != RK_OK)
        status = failure("cannot revoke the certificate of %s in %s: %s", id, crl, rk_strerror(rc));
    else
        printf("revoked %s (%s): %s number %llu\n", id, rk_pki_crl_reason_name(reason), crl, (unsigned long long)number);
done:
    X509_free(cert);
    rk_registry_free(reg);
    return status;
}

struct renew_args {
    int64_t until;
    int days_given, until_given;
};

static int store_overlap(int c, const char *value, void *arg)
{
    struct renew_args *a = arg;
    long n = 0;
    if (c == 'd') {
        if (!tk_parse_long(value, 0, MAX_OVERLAP_DAYS, &n)) {
            usage_error("--overlap-days must be a whole number from 0 to %d", MAX_OVERLAP_DAYS);
            return 0;
        }
        a->until = (int64_t)time(NULL) + n * 86400;
        a->days_given = 1;
    } else {
        if (!tk_parse_long(value, 0, INT64_C(253402300799), &n)) {
            usage_error("--overlap-until takes unix seconds");
            return 0;
        }
        a->until = n;
        a->until_given = 1;
    }
    if (a->days_given && a->until_given) {
        usage_error("--overlap-days and --overlap-until exclude each other");
        return 0;
    }
    return 1;
}

/* The IP address SAN of cert, if any, into ip. */
static void cert_ip(X509 *cert, char *ip, size_t iplen)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    ip[0] = '\0';
    for (int i = 0; i < sk_GENERAL_NAME_num(names) && !ip[0]; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type != GEN_IPADD)
            continue;
        int len = ASN1_STRING_length(g->d.iPAddress);
        const unsigned char *b = ASN1_STRING_get0_data(g->d.iPAddress);
        if (len == 4 || len == 16)
            inet_ntop(len == 4 ? AF_INET : AF_INET6, b, ip, (socklen_t)iplen);
    }
    GENERAL_NAMES_free(names);
}

/* network.json with the node's new fingerprint and pin, the previous one
 * kept until `until`; written atomically. */
static rk_rc update_network(const char *dir, const char *id, const char *old_fp, const char *fp, const char *pin,
                            int64_t until)
{
    char path[PATH_CAP], when[32];
    struct tm tm;
    time_t t = (time_t)until;
    if (tk_path(path, sizeof path, "%s/network.json", dir) != RK_OK || !gmtime_r(&t, &tm) ||
        !strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm))
        return RK_ERR_INVALID;
    json_t *root = json_load_file(path, 0, NULL), *nodes = json_object_get(root, "nodes"), *n, *found = NULL;
    size_t i;
    json_array_foreach(nodes, i, n) {
        if (json_is_string(json_object_get(n, "id")) && strcmp(json_string_value(json_object_get(n, "id")), id) == 0)
            found = n;
    }
    json_t *prev = found ? json_object_get(found, "previous_fingerprints") : NULL;
    if (found && !prev)
        json_object_set_new(found, "previous_fingerprints", prev = json_array());
    rk_rc rc = RK_ERR_INVALID;
    if (found && json_is_array(prev) &&
        json_array_append_new(prev, json_pack("{s:s,s:s}", "fingerprint", old_fp, "until", when)) == 0 &&
        json_object_set_new(found, "fingerprint", json_string(fp)) == 0 &&
        json_object_set_new(found, "pin", json_string(pin)) == 0) {
        char *text = json_dumps(root, JSON_INDENT(2));
        rc = text ? rk_write_file(path, text, strlen(text), 0644) : RK_ERR_NOMEM;
        free(text);
    }
    json_decref(root);
    return rc;
}

static int cmd_renew(int argc, char **argv)
{
    static const struct option options[] = {{"overlap-days", required_argument, NULL, 'd'},
                                            {"overlap-until", required_argument, NULL, 'u'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    const char *dir = NULL, *id = NULL;
    struct renew_args a = {.until = (int64_t)time(NULL) + 7 * 86400};
    enum parse_result parsed = parse_two_args(argc, argv, options, store_overlap, &a, &dir, &id);
    if (parsed != PARSE_OK) {
        if (parsed == PARSE_HELP)
            fputs(usage_renew, stdout);
        return parsed == PARSE_HELP ? EXIT_SUCCESS : EXIT_USAGE;
    }
    rk_registry *reg = NULL;
    const rk_peer_node *node = NULL;
    X509 *cert = NULL, *fresh = NULL;
    char folder[PATH_CAP], ca[PATH_CAP], ca_key[PATH_CAP], cert_new[PATH_CAP], key_new[PATH_CAP], cert_path[PATH_CAP],
        key_path[PATH_CAP], kept[PATH_CAP], role[32], name[RK_ID_MAX], ip[64], fp[RK_FINGERPRINT_LEN], pin[RK_PIN_LEN];
    int status = load_registered(dir, id, &reg, &node, folder, &cert);
    if (status)
        goto done;
    if (node->n_previous >= RK_PREVIOUS_MAX) {
        status = failure("%s has %d previous certificates in network.json, the most kept", id, RK_PREVIOUS_MAX);
        goto done;
    }
    if (rk_pki_cert_identity(cert, role, sizeof role, name, sizeof name) != RK_OK) {
        status = failure("the certificate of %s names no renkei role", id);
        goto done;
    }
    cert_ip(cert, ip, sizeof ip);
    if (tk_path(ca, sizeof ca, "%s/pki/ca.pem", dir) || tk_path(ca_key, sizeof ca_key, "%s/pki/ca-key.pem", dir) ||
        tk_path(cert_new, sizeof cert_new, "%s/cert.pem.new", folder) ||
        tk_path(key_new, sizeof key_new, "%s/key.pem.new", folder) ||
        tk_path(cert_path, sizeof cert_path, "%s/cert.pem", folder) ||
        tk_path(key_path, sizeof key_path, "%s/key.pem", folder) ||
        tk_path(kept, sizeof kept, "%s/cert-%.16s.pem", folder, node->fingerprint)) {
        status = usage_error("directory name too long");
        goto done;
    }
    /* the new key is made where it stays: the node's own folder */
    rk_cert_spec spec = {.common_name = id, .role = role, .name = name, .ip = ip[0] ? ip : NULL};
    rk_rc rc = rk_pki_issue(ca, ca_key, &spec, cert_new, key_new, NULL);
    if (rc == RK_OK && (rc = rk_pki_load_cert(cert_new, &fresh)) == RK_OK && (rc = rk_pki_fingerprint(fresh, fp)) == RK_OK)
        rc = rk_pki_spki_pin(fresh, pin);
    if (rc == RK_OK)
        rc = update_network(dir, id, node->fingerprint, fp, pin, a.until);
    if (rc != RK_OK) {
        unlink(cert_new);
        unlink(key_new);
        status = failure("cannot renew the certificate of %s: %s", id, rk_strerror(rc));
        goto done;
    }
    if (rename(cert_path, kept) != 0 || rename(cert_new, cert_path) != 0 || rename(key_new, key_path) != 0) {
        status = failure("network.json names the new certificate of %s but %s could not be put in place: %s", id,
                         folder, strerror(errno));
        goto done;
    }
    /* the signed registry names the new certificate too (DESIGN §3) */
    char why[400] = "";
    uint64_t serial = 0;
    const char *changed[] = {id};
    if (rk_registry_changed_nodes(dir, changed, 1, &serial, why, sizeof why) != RK_OK) {
        status = failure("network.json names the new certificate of %s, but the registry was not published: %s"
                         " (run renkei registry publish %s)", id, why, dir);
        goto done;
    }
    char when[32];
    time_t t = (time_t)a.until;
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
    printf("renewed %s: fingerprint %s; the previous one (%s) is accepted until %s. ", id, fp, kept, when);
    if (serial)
        printf("Registry serial %llu published. ", (unsigned long long)serial);
    printf("%s serves the new certificate from its next registry refresh (or kill -HUP), no restart.\n", id);
done:
    X509_free(cert);
    X509_free(fresh);
    rk_registry_free(reg);
    return status;
}

/* ---- dispatch --------------------------------------------------------- */

int rk_cmd_pki(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } commands[] = {
        {"init", cmd_init},
        {"issue", cmd_issue},
        {"fingerprint", cmd_fingerprint},
        {"show", cmd_show},
        {"revoke", cmd_revoke},
        {"renew", cmd_renew},
    };
    if (argc < 2)
        return usage_error("missing command (init, issue, fingerprint, show, revoke, renew)");
    const char *command = argv[1];
    if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0 || strcmp(command, "help") == 0) {
        fputs(usage_pki, stdout);
        return EXIT_SUCCESS;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(command, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    return usage_error("unknown command '%s'", command);
}
