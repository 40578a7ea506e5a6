/* mynumber_cmd.c — `renkei mynumber check N…` and `renkei mynumber checkcode N`. */
#include <stdio.h>
#include <string.h>

#include "lib/mynumber.h"
#include "tools/tools.h"

static int usage(FILE *out, int code)
{
    fprintf(out, "usage: renkei mynumber check N…     exit 0 only if every N is a valid My Number\n"
                 "       renkei mynumber checkcode N   print the 符号取得処理検査用符号 of N (第7-2(1))\n");
    return code;
}

int rk_cmd_mynumber(int argc, char **argv)
{
    if ((argc >= 2 && strcmp(argv[1], "--help") == 0) || (argc == 3 && strcmp(argv[2], "--help") == 0))
        return usage(stdout, 0); /* also `mynumber check --help`: no My Number is spelt --help */
    if (argc >= 3 && strcmp(argv[1], "check") == 0) {
        int bad = 0;
        for (int i = 2; i < argc; i++) {
            int ok = rk_mynumber_validate(argv[i]) == RK_OK;
            /* The number is the user's own input, echoed back to them on
             * their terminal; nodes never print My Numbers. */
            printf("%s %s\n", argv[i], ok ? "valid" : "invalid");
            bad |= !ok;
        }
        return bad;
    }
    if (argc == 3 && strcmp(argv[1], "checkcode") == 0) {
        int c = rk_mynumber_check_code(argv[2]);
        if (c < 0) {
            fprintf(stderr, "renkei mynumber: not a valid My Number (12 digits with a correct check digit)\n");
            return 1;
        }
        printf("%d\n", c);
        return 0;
    }
    return usage(stderr, 2);
}
