/*
 * tinysplit wire format, device side: seal the cut tensors for the server, open its answer.
 *
 * The format is specified in server/wire.py (the Python side); in short:
 *   request = COSE_Encrypt0 [h'A1011818' (alg 24), {4: kid, 6: partial IV = seq, -65537: model
 *             version}, ciphertext] with plaintext {1: model id, 2: model version, 3: seq,
 *             4: [[shape, scale, zero point, int8 data]...], 5: {1: latency_us, 2: arena_bytes}}
 *   answer  = COSE_Encrypt0 [h'A1011818', {}, ciphertext] with plaintext
 *             {3: seq, 6: [[shape, float32 little-endian data]...]}
 *   nonce   = iv XOR (0^32 || seq as 64-bit big-endian); key_up seals requests, key_down answers;
 *   AAD     = Enc_structure ["Encrypt0", h'A1011818', cbor(["tinysplit/1", model id, version])].
 *
 * No heap, no scratch: the plaintext is encoded straight into the output and sealed in place, and
 * the answer is opened in place in the receive buffer (the decoded outputs point into it).
 * Every read of untrusted bytes is bounds-checked (fuzzed by runtime_c/wire/fuzz_answer.c).
 */
#ifndef TINYSPLIT_WIRE_H
#define TINYSPLIT_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define TS_WIRE_MAX_RANK 8u
#define TS_WIRE_MAX_TENSORS 8u
#define TS_WIRE_MAX_OUTPUTS 8u
#define TS_WIRE_MAX_KID 32u
#define TS_WIRE_MAX_MODEL_ID 64u
#define TS_WIRE_MAX_SEQ 0xFFFFFFFFFFull /* 5-byte partial IV */
#define TS_WIRE_CONTENT_FORMAT 16u       /* application/cose; cose-type="cose-encrypt0" */

enum {
    TS_WIRE_OK = 0,
    TS_WIRE_ERR_ARG = -1,       /* bad argument (too many tensors, seq out of range, ...) */
    TS_WIRE_ERR_SPACE = -2,     /* output buffer too small */
    TS_WIRE_ERR_MALFORMED = -3, /* the answer is not of this format */
    TS_WIRE_ERR_AUTH = -4,      /* the answer does not authenticate */
    TS_WIRE_ERR_STORE = -5      /* the sequence number store failed */
};

/* One device talking to one server about one model. Pointers must outlive its use. */
typedef struct {
    const char *device_id;    /* COSE kid, 1..TS_WIRE_MAX_KID bytes */
    const uint8_t *key_up;    /* 32 bytes: device -> server */
    const uint8_t *key_down;  /* 32 bytes: server -> device */
    const uint8_t *iv;        /* 12 bytes: base of the nonces */
    const char *model_id;     /* 1..TS_WIRE_MAX_MODEL_ID bytes */
    uint32_t model_version;
} ts_wire_peer_t;

typedef struct {
    const int8_t *data;       /* prod(shape) values */
    const uint32_t *shape;
    uint8_t rank;             /* 1..TS_WIRE_MAX_RANK */
    float scale;              /* real = scale * (q - zero_point) */
    int32_t zero_point;
} ts_wire_tensor_t;

typedef struct {
    uint32_t latency_us;      /* head inference time on the device */
    uint32_t arena_bytes;     /* arena the head used */
} ts_wire_telemetry_t;

typedef struct {
    uint8_t rank;
    uint32_t shape[TS_WIRE_MAX_RANK];
    size_t count;             /* prod(shape) */
    const uint8_t *data;      /* count float32 values, little-endian, inside the message buffer */
} ts_wire_output_t;

typedef struct {
    uint64_t seq;
    size_t n_outputs;
    ts_wire_output_t outputs[TS_WIRE_MAX_OUTPUTS];
} ts_wire_answer_t;

/* Size of the sealed request for these tensors (to size the buffer), or 0 if arguments are bad. */
size_t ts_wire_request_size(const ts_wire_peer_t *peer, uint64_t seq, const ts_wire_tensor_t *tensors,
                            size_t n_tensors, const ts_wire_telemetry_t *telemetry);

/* Seal a request into out[0..cap); *out_len gets its length. Returns TS_WIRE_OK or an error. */
int ts_wire_seal_request(const ts_wire_peer_t *peer, uint64_t seq, const ts_wire_tensor_t *tensors,
                         size_t n_tensors, const ts_wire_telemetry_t *telemetry, uint8_t *out, size_t cap,
                         size_t *out_len);

/* Authenticate and decode the answer to request seq, in place in msg[0..len). */
int ts_wire_open_answer(const ts_wire_peer_t *peer, uint64_t seq, uint8_t *msg, size_t len,
                        ts_wire_answer_t *answer);

/* Decode an answer's plaintext (the part after authentication; exposed for tests and fuzzing). */
int ts_wire_decode_answer(const uint8_t *plaintext, size_t len, uint64_t seq, ts_wire_answer_t *answer);

/* Value i of an output (i < count). */
float ts_wire_output_value(const ts_wire_output_t *output, size_t i);

/* Sequence numbers that survive reboots. The store keeps one number, a reservation: before the
 * device uses seq s it has durably stored a value > s, and after a reboot it resumes from the stored
 * value. So no seq (hence no nonce) is ever used twice, with one store per TS_SEQ_RESERVE messages
 * (flash wear), and up to TS_SEQ_RESERVE seqs skipped per reboot. */
#ifndef TS_SEQ_RESERVE
#define TS_SEQ_RESERVE 128u
#endif

typedef struct {
    int (*load)(void *arg, uint64_t *value); /* 0 on success; nothing stored yet: *value = 0 */
    int (*store)(void *arg, uint64_t value); /* 0 once value is durable */
    void *arg;
} ts_seq_store_t;

typedef struct {
    uint64_t next;
    uint64_t reserved;
    ts_seq_store_t store;
} ts_seq_t;

int ts_seq_init(ts_seq_t *seq, const ts_seq_store_t *store);
int ts_seq_next(ts_seq_t *seq, uint64_t *out);

#endif
