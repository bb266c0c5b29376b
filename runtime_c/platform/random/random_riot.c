/*
 * ts_platform_random for RIOT: RIOT's SHA-256 PRNG (prng_sha256prng), reseeded with 256 bits from
 * the hardware RNG before the first noise is drawn.
 *
 * Application Makefile:  USEMODULE += random prng_sha256prng
 *                        FEATURES_REQUIRED += periph_hwrng
 * Why the reseed: auto_init_random seeds the PRNG with one 32-bit word. 2^32 candidate streams can
 * be searched exhaustively, and a server that finds the stream subtracts the noise exactly.
 * Caveat: RIOT's random module keeps one global state without a lock; other threads drawing from it
 * while an inference runs (network stack timers) race with this one.
 */
#include <stdint.h>

#include "kernel_defines.h"
#include "periph/hwrng.h"
#include "random.h"
#include "tinysplit/platform.h"

#if !IS_USED(MODULE_PRNG_SHA256PRNG)
#error "tinysplit noise needs a cryptographically strong generator: USEMODULE += prng_sha256prng"
#endif
#if !IS_USED(MODULE_PERIPH_HWRNG)
#error "tinysplit noise needs the hardware RNG to seed its generator: FEATURES_REQUIRED += periph_hwrng"
#endif

void ts_platform_random(uint8_t *buf, size_t n)
{
    static int seeded;
    if (!seeded) {
        uint32_t seed[8];
        volatile uint32_t *wipe = seed;
        unsigned i;
        hwrng_read(seed, sizeof seed);
        random_init_by_array(seed, sizeof seed); /* the SHA PRNGs take the key length in bytes */
        for (i = 0; i < sizeof seed / sizeof seed[0]; ++i) {
            wipe[i] = 0; /* volatile: the seed must not outlive this call on the stack */
        }
        seeded = 1;
    }
    random_bytes(buf, n);
}
