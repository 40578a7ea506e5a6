/* lib/csv.h — one line of a CSV file split into its fields (RFC 4180
 * quotes; no line break inside a field): residents.csv at J-LIS, the
 * business system's files of agency-ctl. */
#ifndef RK_LIB_CSV_H
#define RK_LIB_CSV_H

/* Splits s (one line, its line end removed) in place, keeps the first max
 * fields in fields and returns the number of fields, or -1 when a quote is
 * not closed properly. */
int rk_csv_split(char *s, char **fields, int max);

#endif
