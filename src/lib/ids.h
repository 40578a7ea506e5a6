/* lib/ids.h — the grammar of every identifier the API takes and every field
 * limit, in one place (docs/api.md refers here).
 *
 * Ids chosen by a sender (person, query_id, operator, request ids) are 1 to
 * 64 characters of [A-Za-z0-9._-]; catalogue ids (business, item, agency
 * kind) 1 to 64 of [a-z0-9_]. A person id is never itself a valid My
 * Number: person ids go into records, logs and incidents (第8-4(2)). */
#ifndef RK_LIB_IDS_H
#define RK_LIB_IDS_H

#include <stddef.h>

#define RK_ID_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
#define RK_CATALOGUE_CHARS "abcdefghijklmnopqrstuvwxyz0123456789_"

/* Field limits, in bytes (the longest value accepted). */
#define RK_ID_FIELD_MAX 64           /* person, query_id, operator, request_id */
#define RK_CATALOGUE_ID_MAX 64       /* business, item */
#define RK_AGENCY_FIELD_MAX 63       /* provider, requester */
#define RK_EXCHANGE_ID_MAX 100       /* "<requester agency>.<its own id>" */
#define RK_CODE_FIELD_MAX 47         /* a 情報提供用個人識別符号 as text */
#define RK_MY_NUMBER_FIELD_MAX 32    /* checked to 12 digits after the cap */
#define RK_ACQUISITION_NO_MIN 16     /* 取得番号: [0-9a-f], random */
#define RK_ACQUISITION_NO_MAX 64
#define RK_REASON_MAX 190
#define RK_SUMMARY_MAX 500
#define RK_INCIDENT_ID_MAX 128
#define RK_KIND_FIELD_MAX 32         /* an incident's kind */
#define RK_DATE_LEN 10               /* YYYY-MM-DD */
#define RK_CERT_PEM_MAX 8192         /* a certificate inside a message */
#define RK_BATCH_MAX 1000            /* entries of one bulk request */
#define RK_NAME_FIELD_MAX 300        /* 氏名: 100 characters of 3 bytes (lib/basic_info.h) */
#define RK_ADDRESS_FIELD_MAX 600     /* 住所: 200 characters of 3 bytes */

/* 1..max characters of RK_ID_CHARS. */
int rk_id_valid(const char *s, size_t max);
/* 1..RK_CATALOGUE_ID_MAX characters of RK_CATALOGUE_CHARS. */
int rk_catalogue_id_valid(const char *s);
/* An id that is not a valid My Number. */
int rk_person_id_valid(const char *person);
/* 16..64 characters of [0-9a-f]. */
int rk_acquisition_no_valid(const char *s);
/* "YYYY-MM-DD" with plausible numbers. */
int rk_date_valid(const char *s);

#endif
