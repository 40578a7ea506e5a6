/* pg_fixture.h — a throwaway PostgreSQL server for the unit tests, and the
 * choice of engine for the tests that run on both.
 *
 * pg_fixture_start makes a temporary folder (/tmp/rk-pg-XXXXXX, owned by the
 * `postgres` user when the tests run as root, since PostgreSQL refuses root),
 * runs initdb in it and starts a server on a free loopback port (its unix
 * socket in the folder too, trust authentication, UTF8, locale C). Each
 * pg_fixture_new_db is a new, empty database on it. pg_fixture_end stops the
 * server and removes the folder; a watchdog process does the same when the
 * test process ends any other way (a failed assertion, a crash, SIGKILL by a
 * timeout). One server per process. */
#ifndef RK_TEST_PG_FIXTURE_H
#define RK_TEST_PG_FIXTURE_H

#include <stddef.h>

/* 0 when the server is up; -1 otherwise (said on stderr). */
int pg_fixture_start(void);
/* A new database: its libpq URI in uri. 0 or -1. */
int pg_fixture_new_db(char *uri, size_t size);
/* The server's port, also while it is stopped (0 before start). */
int pg_fixture_port(void);
/* Stops the server, keeping its data (then pg_fixture_restart); 0 or -1. */
int pg_fixture_stop(void);
/* Starts it again on the same port and data; 0 or -1. */
int pg_fixture_restart(void);
/* Stops the server and removes its folder; safe to call again. */
void pg_fixture_end(void);

/* The tests that run on both engines: 1 when RENKEI_TEST_STORE=postgres. */
int test_store_is_pg(void);
/* A fresh store for a test: on SQLite "sqlite:<dir>/<name>.db", on
 * PostgreSQL a new database (the server started on first use). 0 or -1. */
int test_store_target(const char *dir, const char *name, char *out, size_t size);
/* At the end of a test program: the server, if one was started, goes. */
void test_store_end(void);
/* The same as a cmocka group teardown (cmocka_run_group_tests(…, NULL, test_store_group_end)). */
int test_store_group_end(void **state);

#endif
