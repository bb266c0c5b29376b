/*
 * tinysplit C runtime: what multi-core generated code (backends/c_multicore.py) needs from the
 * platform. The platform starts <prefix>_run_worker(core, n_cores, ...) on n_cores cores (threads
 * pinned to cores) with the same arguments; between layers every worker calls ts_platform_barrier.
 */
#ifndef TINYSPLIT_MULTICORE_H
#define TINYSPLIT_MULTICORE_H

#ifdef __cplusplus
extern "C" {
#endif

/* Return once all n_cores workers of the running inference have called it (a reusable barrier that
 * also orders memory: writes before it are visible to every worker after it). Not called when
 * n_cores is 1. */
void ts_platform_barrier(void);

#ifdef __cplusplus
}
#endif

#endif /* TINYSPLIT_MULTICORE_H */
