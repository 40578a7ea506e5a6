/* Temporary: commands being written. */
#include <stdio.h>
#include "tools/tools.h"
int rk_cmd_bench(int argc, char **argv) { fprintf(stderr, "renkei bench: not built yet\n"); return 1; }
