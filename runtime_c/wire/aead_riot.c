/* ts_aead_* for RIOT builds, with RIOT's crypto module (USEMODULE += crypto_chacha20poly1305).
 * Compiled only inside RIOT: listed in the RIOT application's Makefile, and guarded here. */
#ifdef RIOT_VERSION

#include "crypto/chacha20poly1305.h"
#include "tinysplit/aead.h"

int ts_aead_seal(uint8_t *buf, size_t len, const uint8_t *aad, size_t aad_len,
                 const uint8_t nonce[TS_AEAD_NONCE_BYTES], const uint8_t key[TS_AEAD_KEY_BYTES])
{
    /* documented: cipher == msg is allowed with TAG_BYTES of room after the message */
    chacha20poly1305_encrypt(buf, buf, len, aad, aad_len, key, nonce);
    return 0;
}

int ts_aead_open(uint8_t *buf, size_t len, const uint8_t *aad, size_t aad_len,
                 const uint8_t nonce[TS_AEAD_NONCE_BYTES], const uint8_t key[TS_AEAD_KEY_BYTES])
{
    size_t msg_len = 0;
    if (len < TS_AEAD_TAG_BYTES) {
        return -1;
    }
    /* documented: cipher == msg is allowed; returns 1 when the tag verifies */
    return chacha20poly1305_decrypt(buf, len, buf, &msg_len, aad, aad_len, key, nonce) == 1 ? 0 : -1;
}

#else
typedef int ts_aead_riot_needs_riot; /* ISO C forbids an empty translation unit */
#endif
