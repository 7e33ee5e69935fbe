#ifndef TOKEND_CARGON2_SHIM_H
#define TOKEND_CARGON2_SHIM_H
#include <argon2.h>
#include <stddef.h>
#include <string.h>

/// Overwrites `n` bytes at `p` with zeros in a way the optimiser may not remove as a dead store
/// (glibc's explicit_bzero); for password copies that are about to be freed.
static inline void tokend_argon2_wipe(void *p, size_t n) {
    if (p != NULL && n > 0) explicit_bzero(p, n);
}

#endif
