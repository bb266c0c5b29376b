/*
 * tinysplit C runtime: what the generated model code needs from the platform it runs on.
 *
 * Generated code calls these; kernels never do (they get what they need as arguments), so the
 * kernel sources build and test without any platform. Implementations, one per platform, live in
 * runtime_c/platform/random/ and are linked by the application:
 *   random_riot.c           RIOT: a SHA-256 PRNG (prng_sha256prng) seeded with 256 bits of the hwrng
 *   random_host_chacha20.c  host tests: libsodium ChaCha20 keyed by -DTS_RANDOM_SEED, reproducible
 *   random_bench_insecure.c emulated benchmarks only: a predictable stand-in, NOT SECURE
 */
#ifndef TINYSPLIT_PLATFORM_H
#define TINYSPLIT_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Fill buf with n bytes from a cryptographically strong generator, continuing one stream across
 * calls. Noise at the cut hides the activations only while the server cannot predict it: an
 * attacker who can reproduce this stream subtracts the noise. */
void ts_platform_random(uint8_t *buf, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* TINYSPLIT_PLATFORM_H */
