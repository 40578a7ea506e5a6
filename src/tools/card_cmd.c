/* card_cmd.c — `renkei card`: persons' cards of a network written by
 * `renkei net init` (DESIGN §2.5, §5), a stand-in for J-LIS's issuing of
 * JPKI's 利用者証明用電子証明書.
 *
 *   renkei card issue DIR --resident N --out FOLDER
 *   renkei card revoke DIR SERIAL
 *
 * The card CA is DIR/pki/card-ca.pem with its key DIR/pki/card-ca-key.pem.
 * An issued card's serial and resident code are appended to J-LIS's card
 * file ([jlis] cards of J-LIS's node.conf), which J-LIS takes in at its next
 * card lookup; the certificate names the serial only. A revocation signs a
 * new card CRL ([jlis] card_crl), which J-LIS publishes to the portal.
 * Exit status: 0 success, 1 failure, 2 usage error. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto/card.h"
#include "lib/csv.h"
#include "lib/mynumber.h"
#include "lib/util.h"
#include "node/config.h"
#include "tools/toolkit.h"
#include "tools/tools.h"

#define CMD "card"
#define LINE_CAP 2048

static const char usage_card[] =
    "usage: renkei card COMMAND DIR [ARGS]\n"
    "\n"
    "Persons' cards of the network in DIR: certificates of the card CA that\n"
    "name a card serial, never a My Number (a stand-in for JPKI's cards).\n"
    "\n"
    "commands:\n"
    "  issue      issue a card for a resident of DIR/residents.csv\n"
    "  revoke     add a card's serial to the card CRL\n"
    "\n"
    "Run 'renkei card COMMAND --help' for the options of a command.\n";

static const char usage_issue[] =
    "usage: renkei card issue DIR --resident N --out FOLDER\n"
    "\n"
    "Issues a card for resident number N (1-based, in the order of\n"
    "DIR/residents.csv) and writes FOLDER/cert.pem, FOLDER/key.pem (mode 0600)\n"
    "and FOLDER/card.p12 (both, PKCS#12 with an empty passphrase, for a\n"
    "browser). J-LIS learns which resident the card's serial belongs to from\n"
    "its card file. Prints the card serial.\n"
    "\n"
    "  --resident N   the resident's line in residents.csv (1 = the first)\n"
    "  --out FOLDER   where the card's files go (created if missing)\n"
    "  --help         show this help\n";

static const char usage_revoke[] =
    "usage: renkei card revoke DIR SERIAL\n"
    "\n"
    "Adds the card SERIAL (32 hex digits, as `card issue` printed it) to the\n"
    "card CRL that J-LIS publishes; the portal then refuses the card. A card\n"
    "already revoked is left as it is.\n"
    "\n"
    "  --help   show this help\n";

/* One error line into err (vsnprintf: a long path is cut, not a warning). */
__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* J-LIS's configuration in DIR (its node.conf names the card file and the CRL). */
static rk_rc jlis_config(const char *dir, rk_node_config *cfg, char *err, size_t errlen)
{
    rk_registry *reg = NULL;
    rk_rc rc = tk_registry_load(dir, &reg, err, errlen);
    if (rc != RK_OK)
        return rc;
    const rk_peer_node *j = rk_registry_find(reg, RK_ROLE_JLIS, NULL);
    char path[TK_PATH_CAP];
    if (!j) {
        set_err(err, errlen, "%s/network.json: no J-LIS node", dir);
        rc = RK_ERR_CONFIG;
    } else if ((rc = tk_path(path, sizeof path, "%s/nodes/%s/node.conf", dir, j->id)) == RK_OK) {
        rc = rk_config_load(path, cfg, err, errlen);
        if (rc == RK_OK && (!cfg->cards[0] || !cfg->card_crl[0])) {
            set_err(err, errlen, "%s: [jlis] cards and card_crl are required", path);
            rc = RK_ERR_CONFIG;
        }
    }
    rk_registry_free(reg);
    return rc;
}

/* The resident code of line n (1-based) of residents.csv. */
static rk_rc resident_code_of(const char *dir, long n, char code[16], char *err, size_t errlen)
{
    char path[TK_PATH_CAP], line[LINE_CAP];
    if (tk_path(path, sizeof path, "%s/residents.csv", dir) != RK_OK)
        return RK_ERR_INVALID;
    FILE *f = fopen(path, "re");
    if (!f) {
        set_err(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        return RK_ERR_IO;
    }
    rk_rc rc = RK_ERR_NOT_FOUND;
    long row = 0;
    int header = 1;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '\n' || line[0] == '\r')
            continue;
        if (header) {
            header = 0;
            continue;
        }
        if (++row < n)
            continue;
        char *fields[16];
        line[strcspn(line, "\r\n")] = '\0';
        int k = rk_csv_split(line, fields, 16);
        if (k >= 2 && rk_resident_code_validate(fields[1]) == RK_OK) {
            snprintf(code, 16, "%s", fields[1]);
            rc = RK_OK;
        } else {
            set_err(err, errlen, "%s: resident %ld has no valid resident code", path, n);
            rc = RK_ERR_INVALID;
        }
        break;
    }
    rk_wipe(line, sizeof line);
    fclose(f);
    if (rc == RK_ERR_NOT_FOUND)
        set_err(err, errlen, "%s holds %ld residents, not %ld", path, row, n);
    return rc;
}

/* Appends "serial,resident_code,issued_ms" to J-LIS's card file (with the header when new), in one write. */
static rk_rc record_card(const char *path, const char *serial, const char *code)
{
    char line[128];
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return RK_ERR_IO;
    rk_rc rc = RK_OK;
    off_t end = lseek(fd, 0, SEEK_END);
    int n = snprintf(line, sizeof line, "%s%s,%s,%lld\n", end == 0 ? "card_serial,resident_code,issued_ms\n" : "",
                     serial, code, (long long)rk_now_ms());
    if (n <= 0 || (size_t)n >= sizeof line || write(fd, line, (size_t)n) != n || fsync(fd) != 0)
        rc = RK_ERR_IO;
    rk_wipe(line, sizeof line);
    if (close(fd) != 0)
        rc = RK_ERR_IO;
    return rc;
}

static int cmd_issue(int argc, char **argv)
{
    static const struct option opts[] = {{"resident", required_argument, NULL, 'r'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *out = NULL;
    long resident = 0;
    int c;
    tk_getopt_reset();
    while ((c = getopt_long(argc, argv, ":r:o:h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage_issue, stdout);
            return 0;
        } else if (c == 'r') {
            if (!tk_parse_long(optarg, 1, 100000000, &resident))
                return tk_usage_error(CMD " issue", "--resident must be a number from 1, not '%s'", optarg);
        } else if (c == 'o') {
            out = optarg;
        } else {
            return tk_option_error(CMD " issue", c, argv);
        }
    }
    if (optind != argc - 1)
        return tk_usage_error(CMD " issue", "give the network folder DIR");
    if (!resident || !out || !*out)
        return tk_usage_error(CMD " issue", "--resident N and --out FOLDER are required");
    const char *dir = argv[optind];
    char err[512] = "", code[16], ca[TK_PATH_CAP], ca_key[TK_PATH_CAP], serial[RK_CARD_SERIAL_LEN + 1];
    rk_node_config *cfg = calloc(1, sizeof *cfg);
    rk_rc rc = cfg ? jlis_config(dir, cfg, err, sizeof err) : RK_ERR_NOMEM;
    if (rc == RK_OK)
        rc = resident_code_of(dir, resident, code, err, sizeof err);
    if (rc == RK_OK && (tk_path(ca, sizeof ca, "%s/pki/card-ca.pem", dir) != RK_OK ||
                        tk_path(ca_key, sizeof ca_key, "%s/pki/card-ca-key.pem", dir) != RK_OK))
        rc = RK_ERR_INVALID;
    if (rc == RK_OK && (rc = rk_card_issue(ca, ca_key, out, serial)) != RK_OK)
        set_err(err, sizeof err, "cannot issue the card into %s with the card CA %s: %s", out, ca, rk_strerror(rc));
    if (rc == RK_OK && (rc = record_card(cfg->cards, serial, code)) != RK_OK)
        set_err(err, sizeof err, "%s: cannot record the card for J-LIS: %s", cfg->cards, strerror(errno));
    rk_wipe(code, sizeof code);
    free(cfg);
    if (rc != RK_OK)
        return tk_failure(CMD " issue", "%s", err[0] ? err : rk_strerror(rc));
    printf("%s\n", serial);
    return 0;
}

static int cmd_revoke(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c;
    tk_getopt_reset();
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage_revoke, stdout);
            return 0;
        }
        return tk_option_error(CMD " revoke", c, argv);
    }
    if (optind != argc - 2)
        return tk_usage_error(CMD " revoke", "give the network folder DIR and the card SERIAL");
    const char *dir = argv[optind], *serial = argv[optind + 1];
    if (!rk_card_serial_valid(serial))
        return tk_usage_error(CMD " revoke", "SERIAL must be 32 lowercase hex digits, as `card issue` printed it");
    char err[512] = "", ca[TK_PATH_CAP], ca_key[TK_PATH_CAP];
    rk_node_config *cfg = calloc(1, sizeof *cfg);
    rk_rc rc = cfg ? jlis_config(dir, cfg, err, sizeof err) : RK_ERR_NOMEM;
    if (rc == RK_OK && (tk_path(ca, sizeof ca, "%s/pki/card-ca.pem", dir) != RK_OK ||
                        tk_path(ca_key, sizeof ca_key, "%s/pki/card-ca-key.pem", dir) != RK_OK))
        rc = RK_ERR_INVALID;
    if (rc == RK_OK)
        rc = rk_card_revoke(ca, ca_key, cfg->card_crl, serial);
    if (rc == RK_ERR_EXISTS) {
        printf("card %s was already revoked\n", serial);
        rc = RK_OK;
    } else if (rc == RK_OK) {
        printf("card %s revoked: %s\n", serial, cfg->card_crl);
    } else if (!err[0]) {
        set_err(err, sizeof err, "cannot revoke the card in %s with the card CA %s: %s", cfg->card_crl, ca,
                 rk_strerror(rc));
    }
    free(cfg);
    return rc == RK_OK ? 0 : tk_failure(CMD " revoke", "%s", err[0] ? err : rk_strerror(rc));
}

int rk_cmd_card(int argc, char **argv)
{
    if (argc < 2)
        return tk_usage_error(CMD, "give a command: issue or revoke");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage_card, stdout);
        return 0;
    }
    if (strcmp(argv[1], "issue") == 0)
        return cmd_issue(argc - 1, argv + 1);
    if (strcmp(argv[1], "revoke") == 0)
        return cmd_revoke(argc - 1, argv + 1);
    return tk_usage_error(CMD, "unknown command '%s'", argv[1]);
}
