#ifndef TOKEND_CARGON2_SHIM_H
#define TOKEND_CARGON2_SHIM_H
#include <argon2.h>
#include <stddef.h>
#include <string.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/// Overwrites `n` bytes at `p` with zeros in a way the optimiser may not remove as a dead store
/// (glibc's explicit_bzero); for password copies that are about to be freed.
static inline void tokend_argon2_wipe(void *p, size_t n) {
    if (p != NULL && n > 0) explicit_bzero(p, n);
}

/// Names the calling thread (as `top -H` shows it); prctl is variadic, hence the shim.
static inline void tokend_argon2_set_thread_name(const char *name) {
    (void)prctl(PR_SET_NAME, (unsigned long)name, 0UL, 0UL, 0UL);
}

/// Copies the calling thread's name (at most 15 bytes plus NUL) into `buffer` of 16 bytes.
static inline void tokend_argon2_thread_name(char *buffer) {
    (void)prctl(PR_GET_NAME, (unsigned long)buffer, 0UL, 0UL, 0UL);
}
#ifndef SCHED_IDLE
#define SCHED_IDLE 5
#endif

/// Moves the calling thread to SCHED_IDLE (Linux: it runs only when no other thread of any
/// priority wants the CPU, and any waking thread preempts it at once); 0 on success.
static inline int tokend_argon2_set_thread_idle(void) {
    struct sched_param param = { .sched_priority = 0 };
    return sched_setscheduler(0, SCHED_IDLE, &param);
}

/// Sets the calling thread's nice value (Linux applies setpriority to one thread when given its
/// thread id); 0 on success, -1 with errno otherwise.
static inline int tokend_argon2_set_thread_nice(int value) {
    return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), value);
}
#endif
