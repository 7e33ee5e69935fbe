#ifndef TOKEND_CTHREAD_SHIM_H
#define TOKEND_CTHREAD_SHIM_H
// Thread naming and scheduling for tokend's background threads (TokenCrypto's
// `BackgroundThread`): prctl is variadic and SCHED_IDLE is not visible to Swift.
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/// Names the calling thread (as `top -H` shows it).
static inline void tokend_thread_set_name(const char *name) {
    (void)prctl(PR_SET_NAME, (unsigned long)name, 0UL, 0UL, 0UL);
}

/// Copies the calling thread's name (at most 15 bytes plus NUL) into `buffer` of 16 bytes.
static inline void tokend_thread_name(char *buffer) {
    (void)prctl(PR_GET_NAME, (unsigned long)buffer, 0UL, 0UL, 0UL);
}
#ifndef SCHED_IDLE
#define SCHED_IDLE 5
#endif

/// Moves the calling thread to SCHED_IDLE (Linux: it runs only when no other thread of any
/// priority wants the CPU, and any waking thread preempts it at once); 0 on success.
static inline int tokend_thread_set_idle(void) {
    struct sched_param param = { .sched_priority = 0 };
    return sched_setscheduler(0, SCHED_IDLE, &param);
}

/// Sets the calling thread's nice value (Linux applies setpriority to one thread when given its
/// thread id); 0 on success, -1 with errno otherwise.
static inline int tokend_thread_set_nice(int value) {
    return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), value);
}
#endif
