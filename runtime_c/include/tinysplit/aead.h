/*
 * tinysplit AEAD interface: ChaCha20/Poly1305 (RFC 8439, COSE alg 24), in place.
 *
 * Two implementations, one linked per build, neither written here:
 *   runtime_c/wire/aead_libsodium.c  host builds (libsodium)
 *   runtime_c/wire/aead_riot.c       RIOT builds (USEMODULE += crypto_chacha20poly1305)
 */
#ifndef TINYSPLIT_AEAD_H
#define TINYSPLIT_AEAD_H

#include <stddef.h>
#include <stdint.h>

#define TS_AEAD_KEY_BYTES 32u
#define TS_AEAD_NONCE_BYTES 12u
#define TS_AEAD_TAG_BYTES 16u

/* Encrypt buf[0..len) in place and append the tag: buf must have room for len + TS_AEAD_TAG_BYTES.
 * Returns 0. */
int ts_aead_seal(uint8_t *buf, size_t len, const uint8_t *aad, size_t aad_len,
                 const uint8_t nonce[TS_AEAD_NONCE_BYTES], const uint8_t key[TS_AEAD_KEY_BYTES]);

/* Verify and decrypt buf[0..len) = ciphertext || tag in place. Returns 0 and leaves the
 * len - TS_AEAD_TAG_BYTES plaintext bytes at buf when authentic; -1 otherwise (buf is then
 * unspecified and must not be used). */
int ts_aead_open(uint8_t *buf, size_t len, const uint8_t *aad, size_t aad_len,
                 const uint8_t nonce[TS_AEAD_NONCE_BYTES], const uint8_t key[TS_AEAD_KEY_BYTES]);

#endif
