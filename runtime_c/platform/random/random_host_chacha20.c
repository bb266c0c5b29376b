/*
 * ts_platform_random for host tests: the ChaCha20 keystream (RFC 8439, libsodium) keyed by the
 * 64-bit TS_RANDOM_SEED as 32 little-endian bytes, nonce 0, block counter 0 at program start.
 * It is the stream tinysplit's reference draws for a noise node with that seed, so a generated
 * model built with it agrees with the reference bit for bit. Reproducible by design: for tests.
 *   cc ... -DTS_RANDOM_SEED=42 random_host_chacha20.c -lsodium
 */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>

#include "tinysplit/platform.h"

#ifndef TS_RANDOM_SEED
#error "define TS_RANDOM_SEED: the seed of the reference's noise nodes (this stream is for tests)"
#endif

void ts_platform_random(uint8_t *buf, size_t n)
{
    static uint8_t key[crypto_stream_chacha20_ietf_KEYBYTES];
    static const uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES];
    static uint8_t block[64];
    static size_t used = sizeof block;
    static uint32_t counter;
    static int keyed;
    if (!keyed) {
        const uint64_t seed = (uint64_t)(TS_RANDOM_SEED);
        unsigned i;
        if (sodium_init() < 0) {
            abort();
        }
        for (i = 0; i < 8; ++i) {
            key[i] = (uint8_t)(seed >> (8 * i));
        }
        keyed = 1;
    }
    while (n-- > 0) {
        if (used == sizeof block) {
            /* one 64-byte keystream block at a time: the stream continues across calls */
            sodium_memzero(block, sizeof block);
            crypto_stream_chacha20_ietf_xor_ic(block, block, sizeof block, nonce, counter++, key);
            used = 0;
        }
        *buf++ = block[used++];
    }
}
