#ifndef TOKEND_LOAD_CARGON2_SHIM_H
#define TOKEND_LOAD_CARGON2_SHIM_H
#include <argon2.h>
#include <stddef.h>
#include <sys/epoll.h>

/* glibc declares memmem only under _GNU_SOURCE, which the Glibc module is not built with. */
extern void *memmem(const void *haystack, size_t haystacklen, const void *needle, size_t needlelen);

/// memmem(3): the first occurrence of `needle` in `haystack`, or NULL.
static inline const void *tokend_load_memmem(const void *haystack, size_t haystacklen, const void *needle, size_t needlelen) {
    return memmem(haystack, haystacklen, needle, needlelen);
}
#endif
