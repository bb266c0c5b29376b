/* ts_aead_* for host builds, with libsodium's IETF ChaCha20-Poly1305 (RFC 8439). Link with -lsodium. */
#include <sodium.h>

#include "tinysplit/aead.h"

int ts_aead_seal(uint8_t *buf, size_t len, const uint8_t *aad, size_t aad_len,
                 const uint8_t nonce[TS_AEAD_NONCE_BYTES], const uint8_t key[TS_AEAD_KEY_BYTES])
{
    unsigned long long out_len = 0;
    if (sodium_init() < 0) {
        return -1;
    }
    /* libsodium allows the ciphertext to overlap the message exactly (in place) */
    return crypto_aead_chacha20poly1305_ietf_encrypt(buf, &out_len, buf, len, aad, aad_len, NULL, nonce, key);
}

int ts_aead_open(uint8_t *buf, size_t len, const uint8_t *aad, size_t aad_len,
                 const uint8_t nonce[TS_AEAD_NONCE_BYTES], const uint8_t key[TS_AEAD_KEY_BYTES])
{
    unsigned long long out_len = 0;
    if (len < TS_AEAD_TAG_BYTES || sodium_init() < 0) {
        return -1;
    }
    return crypto_aead_chacha20poly1305_ietf_decrypt(buf, &out_len, NULL, buf, len, aad, aad_len, nonce, key) == 0
               ? 0
               : -1;
}
