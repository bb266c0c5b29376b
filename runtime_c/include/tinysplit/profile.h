/*
 * Per-layer profiling hooks. Generated model code brackets every layer with TS_LAYER_BEGIN(i) and
 * TS_LAYER_END(i). They cost nothing unless the build defines TS_PROFILE, in which case the
 * platform (a benchmark harness, a RIOT app) provides the two functions.
 */
#ifndef TINYSPLIT_PROFILE_H
#define TINYSPLIT_PROFILE_H

#include <stdint.h>

#ifdef TS_PROFILE
void ts_profile_layer_begin(int32_t layer);
void ts_profile_layer_end(int32_t layer);
#define TS_LAYER_BEGIN(i) ts_profile_layer_begin(i)
#define TS_LAYER_END(i) ts_profile_layer_end(i)
#else
#define TS_LAYER_BEGIN(i) ((void)0)
#define TS_LAYER_END(i) ((void)0)
#endif

#endif /* TINYSPLIT_PROFILE_H */
