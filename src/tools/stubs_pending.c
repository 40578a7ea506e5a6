/* Temporary: commands being written. */
#include <stdio.h>
#include "tools/tools.h"
int rk_cmd_demo(int argc, char **argv) { fprintf(stderr, "renkei demo: not built yet\n"); return 1; }
int rk_cmd_agency_ctl(int argc, char **argv) { fprintf(stderr, "renkei agency-ctl: not built yet\n"); return 1; }
int rk_cmd_bench(int argc, char **argv) { fprintf(stderr, "renkei bench: not built yet\n"); return 1; }
