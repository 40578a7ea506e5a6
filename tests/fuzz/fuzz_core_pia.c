/* fuzz_core_pia.c — what the core reads of the PIA register (src/core/pia.c):
 * an answer of GET /v1/pia?since=SERIAL is refused whole or gives at most a
 * page of entries, each a valid agency, business, state and date, with
 * serials rising from above `since`, the last one `next`. The input's first
 * line is `since`, the rest the answer. */
#include "core/pia.h"
#include "fuzz.h"

static core_pia_change page[CORE_PIA_PAGE];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fz_str(data, size);
    char *body = strchr(text, '\n');
    int64_t since = body ? strtoll(text, NULL, 10) : 0;
    body = body ? body + 1 : text;
    size_t n = 0;
    int64_t next = 0, latest = 0;
    int more = 0;
    const char *bad = core_pia_read_answer(body, strlen(body), since, page, &n, &next, &latest, &more);
    if (bad) {
        FZ_CHECK(n == 0);
    } else {
        FZ_CHECK(n <= CORE_PIA_PAGE && next >= 0 && latest >= 0);
        int64_t last = since;
        for (size_t i = 0; i < n; i++) {
            FZ_CHECK(page[i].serial > last);
            FZ_CHECK(page[i].state != RK_PIA_NONE && strlen(page[i].evaluated_on) == RK_DATE_LEN);
            FZ_CHECK(page[i].agency[0] && page[i].business[0]);
            last = page[i].serial;
        }
        FZ_CHECK(n == 0 || next == last);
    }
    free(text);
    return 0;
}
