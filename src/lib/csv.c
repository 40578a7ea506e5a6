#include "lib/csv.h"

#include <string.h>

int rk_csv_split(char *s, char **fields, int max)
{
    int n = 0;
    for (;;) {
        char *start = s, *out = s;
        if (*s == '"') {
            for (s++;; s++) {
                if (*s == '\0')
                    return -1;
                if (*s == '"' && s[1] != '"')
                    break;
                if (*s == '"')
                    s++; /* "" is one quote */
                *out++ = *s;
            }
            s++;
            if (*s != ',' && *s != '\0')
                return -1;
        } else {
            s += strcspn(s, ",");
            out = s;
        }
        char sep = *s;
        *out = '\0';
        if (n < max)
            fields[n] = start;
        n++;
        if (sep == '\0')
            return n;
        s++;
    }
}
