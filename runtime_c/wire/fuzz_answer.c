/* libFuzzer target for the device's answer decoder (clang -fsanitize=fuzzer,address,undefined):
 * the first byte picks the sequence number the device expects; the rest goes through both the
 * plaintext decoder and the COSE envelope parser + AEAD check (in a copy: it works in place). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tinysplit/wire.h"

static const uint8_t KEY[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t IV[12] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ts_wire_peer_t peer = {"fuzz", KEY, KEY, IV, "fuzzmodel", 1};
    ts_wire_answer_t answer;
    uint8_t *copy;
    uint64_t seq;
    size_t o, i;
    volatile float sink = 0.0f;
    if (size < 1u) {
        return 0;
    }
    seq = data[0];
    if (ts_wire_decode_answer(data + 1, size - 1u, seq, &answer) == TS_WIRE_OK) {
        for (o = 0; o < answer.n_outputs; o++) { /* every decoded value must be readable */
            for (i = 0; i < answer.outputs[o].count; i++) {
                sink += ts_wire_output_value(&answer.outputs[o], i);
            }
        }
    }
    copy = malloc(size - 1u + 1u);
    if (copy == NULL) {
        return 0;
    }
    memcpy(copy, data + 1, size - 1u);
    (void)ts_wire_open_answer(&peer, seq, copy, size - 1u, &answer);
    free(copy);
    (void)sink;
    return 0;
}
