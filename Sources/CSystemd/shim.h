#ifndef TOKEND_CSYSTEMD_SHIM_H
#define TOKEND_CSYSTEMD_SHIM_H
#include <stdlib.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

/// Frees the NULL-terminated array of names that sd_listen_fds_with_names() hands out
/// (the strv_free() of libsystemd, which is not exported).
static inline void tokend_sd_free_names(char **names) {
    if (names == NULL) return;
    for (char **p = names; *p != NULL; p++) free(*p);
    free(names);
}
#endif
