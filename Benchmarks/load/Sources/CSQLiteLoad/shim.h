#ifndef TOKEND_LOAD_CSQLITE_SHIM_H
#define TOKEND_LOAD_CSQLITE_SHIM_H
#include <sqlite3.h>

/* SQLITE_TRANSIENT is a cast of -1 to a function pointer, which Swift does not import. */

/// sqlite3_bind_text with SQLITE_TRANSIENT (SQLite copies the bytes).
static inline int tokend_load_bind_text(sqlite3_stmt *statement, int index, const void *bytes, int count) {
    return sqlite3_bind_text(statement, index, (const char *)bytes, count, SQLITE_TRANSIENT);
}

/// sqlite3_bind_blob with SQLITE_TRANSIENT (SQLite copies the bytes).
static inline int tokend_load_bind_blob(sqlite3_stmt *statement, int index, const void *bytes, int count) {
    return sqlite3_bind_blob(statement, index, bytes, count, SQLITE_TRANSIENT);
}

/* sched_setaffinity(2) is declared by <sched.h> only under _GNU_SOURCE, which Swift's Glibc
   module is not built with: declared here under another name for the same symbol. */

/// Pins the calling thread (pid 0) to the cores in `mask` (`size` bytes of a cpu_set_t).
extern int tokend_load_sched_setaffinity(int pid, unsigned long size, const void *mask) __asm__("sched_setaffinity");
#endif
