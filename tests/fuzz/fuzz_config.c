/* fuzz_config.c — a node's configuration file (src/node/config.c, INI read
 * by inih): whatever the file holds, loading either refuses it with a
 * reason or gives a configuration whose every value is within its key's
 * bounds and every text ends inside its field. */
#include <unistd.h>

#include "fuzz.h"
#include "node/config.h"

static char dir[64], path[128];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    snprintf(dir, sizeof dir, "/tmp/rk-fuzz-config-XXXXXX");
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof path, "%s/node.conf", dir);
    return 0;
}

static void ends_inside(const char *field, size_t size)
{
    FZ_CHECK(memchr(field, '\0', size) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fz_write(path, data, size) != 0)
        abort();
    rk_node_config c;
    char err[256];
    memset(err, 0, sizeof err);
    rk_rc rc = rk_config_load(path, &c, err, sizeof err);
    FZ_CHECK(rc == RK_OK || rc == RK_ERR_CONFIG);
    if (rc != RK_OK) {
        FZ_CHECK(err[0] != '\0');
        return 0;
    }
    ends_inside(c.id, sizeof c.id);
    ends_inside(c.network, sizeof c.network);
    ends_inside(c.cert, sizeof c.cert);
    ends_inside(c.key, sizeof c.key);
    ends_inside(c.ca, sizeof c.ca);
    ends_inside(c.db, sizeof c.db);
    ends_inside(c.listen, sizeof c.listen);
    ends_inside(c.permissions, sizeof c.permissions);
    ends_inside(c.residents, sizeof c.residents);
    FZ_CHECK(c.id[0] && c.network[0] && c.ca[0]);
    FZ_CHECK(c.workers >= 1 && c.workers <= 64);
    FZ_CHECK(c.max_body >= 256 && c.max_body <= 64u << 20);
    FZ_CHECK(c.log_level >= 0 && c.log_level <= 3);
    FZ_CHECK(c.log_format == 0 || c.log_format == 1);
    FZ_CHECK(c.peer_timeout_ms >= 10 && c.peer_timeout_ms <= 600000);
    FZ_CHECK(c.head_interval_ms >= 50 && c.head_interval_ms <= 10000);
    FZ_CHECK(c.clock_offset_ms >= -86400000L && c.clock_offset_ms <= 86400000L);
    return 0;
}
