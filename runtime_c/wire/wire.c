/* tinysplit wire format, device side (see include/tinysplit/wire.h and server/wire.py). */
#include "tinysplit/wire.h"

#include <string.h>

#include "tinysplit/aead.h"

static const uint8_t PROTECTED[4] = {0xa1, 0x01, 0x18, 0x18}; /* {1: 24} */
static const char AAD_CONTEXT[] = "tinysplit/1";
static const char ENC_CONTEXT[] = "Encrypt0";

enum { MAJ_UINT = 0, MAJ_NINT = 1, MAJ_BSTR = 2, MAJ_TSTR = 3, MAJ_ARRAY = 4, MAJ_MAP = 5, MAJ_TAG = 6 };
enum { REQ_MODEL_ID = 1, REQ_MODEL_VERSION = 2, REQ_SEQ = 3, REQ_TENSORS = 4, REQ_TELEMETRY = 5 };
enum { ANS_SEQ = 3, ANS_OUTPUTS = 6 };
#define HDR_KID 4u
#define HDR_PIV 6u
#define HDR_MODEL_VERSION_NEG 65536u /* label -65537 = -1 - 65536 */
#define AAD_MAX 160u

/* ---- CBOR writer: with buf == NULL it only counts ---- */

typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    int overflow;
} writer_t;

static void put_raw(writer_t *w, const void *data, size_t n)
{
    if (w->buf != NULL) {
        if (n > w->cap - w->len || w->len > w->cap) {
            w->overflow = 1;
            return;
        }
        if (n > 0) {
            memcpy(w->buf + w->len, data, n);
        }
    }
    w->len += n;
}

static void put_head(writer_t *w, unsigned major, uint64_t value)
{
    uint8_t h[9];
    size_t n;
    unsigned i;
    if (value < 24u) {
        h[0] = (uint8_t)((major << 5) | (unsigned)value);
        n = 1;
    } else {
        unsigned bytes = value <= 0xffu ? 1u : value <= 0xffffu ? 2u : value <= 0xffffffffu ? 4u : 8u;
        h[0] = (uint8_t)((major << 5) | (bytes == 1u ? 24u : bytes == 2u ? 25u : bytes == 4u ? 26u : 27u));
        for (i = 0; i < bytes; i++) {
            h[1 + i] = (uint8_t)(value >> (8u * (bytes - 1u - i)));
        }
        n = 1u + bytes;
    }
    put_raw(w, h, n);
}

static void put_bstr(writer_t *w, const void *data, size_t n)
{
    put_head(w, MAJ_BSTR, n);
    put_raw(w, data, n);
}

static void put_tstr(writer_t *w, const char *s)
{
    size_t n = strlen(s);
    put_head(w, MAJ_TSTR, n);
    put_raw(w, s, n);
}

static void put_int(writer_t *w, int64_t v)
{
    if (v >= 0) {
        put_head(w, MAJ_UINT, (uint64_t)v);
    } else {
        put_head(w, MAJ_NINT, (uint64_t)(-(v + 1)));
    }
}

static void put_float32(writer_t *w, float f)
{
    uint32_t bits;
    uint8_t b[5];
    memcpy(&bits, &f, sizeof bits);
    b[0] = 0xfa;
    b[1] = (uint8_t)(bits >> 24);
    b[2] = (uint8_t)(bits >> 16);
    b[3] = (uint8_t)(bits >> 8);
    b[4] = (uint8_t)bits;
    put_raw(w, b, sizeof b);
}

/* ---- shared pieces of both directions ---- */

static void make_nonce(const uint8_t *iv, uint64_t seq, uint8_t nonce[TS_AEAD_NONCE_BYTES])
{
    unsigned i;
    for (i = 0; i < TS_AEAD_NONCE_BYTES; i++) {
        uint8_t pad = i < 4u ? 0u : (uint8_t)(seq >> (8u * (11u - i)));
        nonce[i] = (uint8_t)(iv[i] ^ pad);
    }
}

/* Enc_structure = ["Encrypt0", protected, external_aad]; returns its length or 0 if it does not fit. */
static size_t make_aad(const ts_wire_peer_t *peer, uint8_t *buf, size_t cap)
{
    uint8_t ext[AAD_MAX];
    writer_t e = {0};
    writer_t w = {0};
    e.buf = ext;
    e.cap = sizeof ext;
    put_head(&e, MAJ_ARRAY, 3);
    put_tstr(&e, AAD_CONTEXT);
    put_tstr(&e, peer->model_id);
    put_head(&e, MAJ_UINT, peer->model_version);
    w.buf = buf;
    w.cap = cap;
    put_head(&w, MAJ_ARRAY, 3);
    put_tstr(&w, ENC_CONTEXT);
    put_bstr(&w, PROTECTED, sizeof PROTECTED);
    put_bstr(&w, ext, e.len);
    return (e.overflow || w.overflow) ? 0 : w.len;
}

static int peer_ok(const ts_wire_peer_t *peer)
{
    size_t kid, mid;
    if (peer == NULL || peer->device_id == NULL || peer->model_id == NULL || peer->key_up == NULL ||
        peer->key_down == NULL || peer->iv == NULL) {
        return 0;
    }
    kid = strlen(peer->device_id);
    mid = strlen(peer->model_id);
    return kid >= 1u && kid <= TS_WIRE_MAX_KID && mid >= 1u && mid <= TS_WIRE_MAX_MODEL_ID;
}

/* ---- request ---- */

static int tensors_ok(const ts_wire_tensor_t *t, size_t n)
{
    size_t i;
    unsigned d;
    if (t == NULL || n < 1u || n > TS_WIRE_MAX_TENSORS) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (t[i].data == NULL || t[i].shape == NULL || t[i].rank < 1u || t[i].rank > TS_WIRE_MAX_RANK ||
            t[i].zero_point < -128 || t[i].zero_point > 127 || !(t[i].scale > 0.0f)) {
            return 0;
        }
        for (d = 0; d < t[i].rank; d++) {
            if (t[i].shape[d] < 1u || t[i].shape[d] > (1u << 24)) {
                return 0;
            }
        }
    }
    return 1;
}

static size_t tensor_count(const ts_wire_tensor_t *t)
{
    size_t count = 1;
    unsigned d;
    for (d = 0; d < t->rank; d++) {
        count *= t->shape[d];
    }
    return count;
}

static void put_plaintext(writer_t *w, const ts_wire_peer_t *peer, uint64_t seq, const ts_wire_tensor_t *t,
                          size_t n, const ts_wire_telemetry_t *tm)
{
    size_t i;
    unsigned d;
    put_head(w, MAJ_MAP, 5);
    put_head(w, MAJ_UINT, REQ_MODEL_ID);
    put_tstr(w, peer->model_id);
    put_head(w, MAJ_UINT, REQ_MODEL_VERSION);
    put_head(w, MAJ_UINT, peer->model_version);
    put_head(w, MAJ_UINT, REQ_SEQ);
    put_head(w, MAJ_UINT, seq);
    put_head(w, MAJ_UINT, REQ_TENSORS);
    put_head(w, MAJ_ARRAY, n);
    for (i = 0; i < n; i++) {
        put_head(w, MAJ_ARRAY, 4);
        put_head(w, MAJ_ARRAY, t[i].rank);
        for (d = 0; d < t[i].rank; d++) {
            put_head(w, MAJ_UINT, t[i].shape[d]);
        }
        put_float32(w, t[i].scale);
        put_int(w, t[i].zero_point);
        put_bstr(w, t[i].data, tensor_count(&t[i]));
    }
    put_head(w, MAJ_UINT, REQ_TELEMETRY);
    put_head(w, MAJ_MAP, 2);
    put_head(w, MAJ_UINT, 1);
    put_head(w, MAJ_UINT, tm != NULL ? tm->latency_us : 0u);
    put_head(w, MAJ_UINT, 2);
    put_head(w, MAJ_UINT, tm != NULL ? tm->arena_bytes : 0u);
}

static void put_envelope_head(writer_t *w, const ts_wire_peer_t *peer, uint64_t seq, size_t ct_len)
{
    uint8_t piv[5];
    size_t n = 1;
    unsigned i;
    while (n < sizeof piv && (seq >> (8u * n)) != 0u) {
        n++;
    }
    for (i = 0; i < n; i++) {
        piv[i] = (uint8_t)(seq >> (8u * (n - 1u - i)));
    }
    put_head(w, MAJ_ARRAY, 3);
    put_bstr(w, PROTECTED, sizeof PROTECTED);
    put_head(w, MAJ_MAP, 3);
    put_head(w, MAJ_UINT, HDR_KID);
    put_bstr(w, peer->device_id, strlen(peer->device_id));
    put_head(w, MAJ_UINT, HDR_PIV);
    put_bstr(w, piv, n);
    put_head(w, MAJ_NINT, HDR_MODEL_VERSION_NEG);
    put_head(w, MAJ_UINT, peer->model_version);
    put_head(w, MAJ_BSTR, ct_len);
}

size_t ts_wire_request_size(const ts_wire_peer_t *peer, uint64_t seq, const ts_wire_tensor_t *tensors,
                            size_t n_tensors, const ts_wire_telemetry_t *telemetry)
{
    writer_t pt = {0};
    writer_t head = {0};
    if (!peer_ok(peer) || !tensors_ok(tensors, n_tensors) || seq > TS_WIRE_MAX_SEQ) {
        return 0;
    }
    put_plaintext(&pt, peer, seq, tensors, n_tensors, telemetry);
    put_envelope_head(&head, peer, seq, pt.len + TS_AEAD_TAG_BYTES);
    return head.len + pt.len + TS_AEAD_TAG_BYTES;
}

int ts_wire_seal_request(const ts_wire_peer_t *peer, uint64_t seq, const ts_wire_tensor_t *tensors,
                         size_t n_tensors, const ts_wire_telemetry_t *telemetry, uint8_t *out, size_t cap,
                         size_t *out_len)
{
    writer_t pt = {0};
    writer_t w = {0};
    uint8_t aad[AAD_MAX];
    uint8_t nonce[TS_AEAD_NONCE_BYTES];
    size_t aad_len;
    size_t total = ts_wire_request_size(peer, seq, tensors, n_tensors, telemetry);
    if (total == 0u || out == NULL || out_len == NULL) {
        return TS_WIRE_ERR_ARG;
    }
    if (total > cap) {
        return TS_WIRE_ERR_SPACE;
    }
    aad_len = make_aad(peer, aad, sizeof aad);
    if (aad_len == 0u) {
        return TS_WIRE_ERR_ARG;
    }
    put_plaintext(&pt, peer, seq, tensors, n_tensors, telemetry); /* counting only */
    w.buf = out;
    w.cap = cap;
    put_envelope_head(&w, peer, seq, pt.len + TS_AEAD_TAG_BYTES);
    put_plaintext(&w, peer, seq, tensors, n_tensors, telemetry);
    if (w.overflow || w.len + TS_AEAD_TAG_BYTES != total) {
        return TS_WIRE_ERR_SPACE;
    }
    make_nonce(peer->iv, seq, nonce);
    ts_aead_seal(out + (w.len - pt.len), pt.len, aad, aad_len, nonce, peer->key_up);
    *out_len = total;
    return TS_WIRE_OK;
}

/* ---- CBOR reader for the answer: every read is bounds-checked ---- */

typedef struct {
    const uint8_t *p;
    size_t len;
    size_t pos;
} reader_t;

/* Reads one head; definite lengths only. Returns 0 on success. */
static int get_head(reader_t *r, unsigned *major, uint64_t *value)
{
    unsigned info, bytes, i;
    uint64_t v = 0;
    if (r->pos >= r->len) {
        return -1;
    }
    *major = r->p[r->pos] >> 5;
    info = r->p[r->pos] & 0x1fu;
    r->pos++;
    if (info < 24u) {
        *value = info;
        return 0;
    }
    if (info > 27u) {
        return -1; /* indefinite length, simple/float values, reserved */
    }
    bytes = 1u << (info - 24u);
    if (bytes > r->len - r->pos) {
        return -1;
    }
    for (i = 0; i < bytes; i++) {
        v = (v << 8) | r->p[r->pos + i];
    }
    r->pos += bytes;
    *value = v;
    return 0;
}

static int expect(reader_t *r, unsigned major, uint64_t *value)
{
    unsigned m;
    return (get_head(r, &m, value) == 0 && m == major) ? 0 : -1;
}

/* A byte string's contents: *data points into the buffer. */
static int get_bstr(reader_t *r, const uint8_t **data, size_t *n)
{
    uint64_t len;
    if (expect(r, MAJ_BSTR, &len) != 0 || len > r->len - r->pos) {
        return -1;
    }
    *data = r->p + r->pos;
    *n = (size_t)len;
    r->pos += (size_t)len;
    return 0;
}

static int decode_output(reader_t *r, ts_wire_output_t *o)
{
    uint64_t v, rank, dim;
    size_t count = 1, n;
    unsigned d;
    if (expect(r, MAJ_ARRAY, &v) != 0 || v != 2u || expect(r, MAJ_ARRAY, &rank) != 0 || rank < 1u ||
        rank > TS_WIRE_MAX_RANK) {
        return -1;
    }
    o->rank = (uint8_t)rank;
    for (d = 0; d < rank; d++) {
        if (expect(r, MAJ_UINT, &dim) != 0 || dim < 1u || dim > (1u << 24)) {
            return -1;
        }
        o->shape[d] = (uint32_t)dim;
        if (count > (r->len / 4u) / (size_t)dim) {
            return -1; /* more values than the message can hold: also rules out overflow */
        }
        count *= (size_t)dim;
    }
    if (get_bstr(r, &o->data, &n) != 0 || n != count * 4u) {
        return -1;
    }
    o->count = count;
    return 0;
}

int ts_wire_decode_answer(const uint8_t *plaintext, size_t len, uint64_t seq, ts_wire_answer_t *answer)
{
    reader_t r;
    uint64_t n, key, v;
    unsigned k;
    int have_seq = 0, have_outputs = 0;
    if (plaintext == NULL || answer == NULL) {
        return TS_WIRE_ERR_ARG;
    }
    r.p = plaintext;
    r.len = len;
    r.pos = 0;
    memset(answer, 0, sizeof *answer);
    if (expect(&r, MAJ_MAP, &n) != 0 || n != 2u) {
        return TS_WIRE_ERR_MALFORMED;
    }
    for (k = 0; k < 2u; k++) {
        if (expect(&r, MAJ_UINT, &key) != 0) {
            return TS_WIRE_ERR_MALFORMED;
        }
        if (key == ANS_SEQ && !have_seq) {
            if (expect(&r, MAJ_UINT, &v) != 0 || v != seq) {
                return TS_WIRE_ERR_MALFORMED;
            }
            answer->seq = v;
            have_seq = 1;
        } else if (key == ANS_OUTPUTS && !have_outputs) {
            if (expect(&r, MAJ_ARRAY, &v) != 0 || v < 1u || v > TS_WIRE_MAX_OUTPUTS) {
                return TS_WIRE_ERR_MALFORMED;
            }
            answer->n_outputs = (size_t)v;
            for (n = 0; n < v; n++) {
                if (decode_output(&r, &answer->outputs[n]) != 0) {
                    return TS_WIRE_ERR_MALFORMED;
                }
            }
            have_outputs = 1;
        } else {
            return TS_WIRE_ERR_MALFORMED;
        }
    }
    return r.pos == r.len ? TS_WIRE_OK : TS_WIRE_ERR_MALFORMED;
}

int ts_wire_open_answer(const ts_wire_peer_t *peer, uint64_t seq, uint8_t *msg, size_t len,
                        ts_wire_answer_t *answer)
{
    reader_t r;
    uint64_t v;
    const uint8_t *prot, *ct;
    size_t prot_len, ct_len, aad_len;
    uint8_t aad[AAD_MAX];
    uint8_t nonce[TS_AEAD_NONCE_BYTES];
    if (!peer_ok(peer) || msg == NULL || answer == NULL || seq > TS_WIRE_MAX_SEQ) {
        return TS_WIRE_ERR_ARG;
    }
    r.p = msg;
    r.len = len;
    r.pos = 0;
    if (len > 0u && msg[0] == 0xd0u) {
        r.pos = 1; /* optional tag 16 (COSE_Encrypt0) */
    }
    if (expect(&r, MAJ_ARRAY, &v) != 0 || v != 3u || get_bstr(&r, &prot, &prot_len) != 0 ||
        prot_len != sizeof PROTECTED || memcmp(prot, PROTECTED, sizeof PROTECTED) != 0 ||
        expect(&r, MAJ_MAP, &v) != 0 || v != 0u || get_bstr(&r, &ct, &ct_len) != 0 ||
        ct_len < TS_AEAD_TAG_BYTES || r.pos != r.len) {
        return TS_WIRE_ERR_MALFORMED;
    }
    aad_len = make_aad(peer, aad, sizeof aad);
    if (aad_len == 0u) {
        return TS_WIRE_ERR_ARG;
    }
    make_nonce(peer->iv, seq, nonce);
    if (ts_aead_open(msg + (size_t)(ct - msg), ct_len, aad, aad_len, nonce, peer->key_down) != 0) {
        return TS_WIRE_ERR_AUTH;
    }
    return ts_wire_decode_answer(ct, ct_len - TS_AEAD_TAG_BYTES, seq, answer);
}

float ts_wire_output_value(const ts_wire_output_t *output, size_t i)
{
    const uint8_t *b = output->data + 4u * i;
    uint32_t bits = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* ---- sequence numbers ---- */

int ts_seq_init(ts_seq_t *seq, const ts_seq_store_t *store)
{
    uint64_t stored = 0;
    if (seq == NULL || store == NULL || store->load == NULL || store->store == NULL) {
        return TS_WIRE_ERR_ARG;
    }
    if (store->load(store->arg, &stored) != 0) {
        return TS_WIRE_ERR_STORE;
    }
    seq->store = *store;
    seq->next = stored;
    seq->reserved = stored; /* nothing reserved in this boot yet */
    return TS_WIRE_OK;
}

int ts_seq_next(ts_seq_t *seq, uint64_t *out)
{
    if (seq == NULL || out == NULL) {
        return TS_WIRE_ERR_ARG;
    }
    if (seq->next > TS_WIRE_MAX_SEQ) {
        return TS_WIRE_ERR_ARG; /* exhausted: the device needs new keys */
    }
    if (seq->next >= seq->reserved) {
        uint64_t reserve = seq->next + TS_SEQ_RESERVE;
        if (seq->store.store(seq->store.arg, reserve) != 0) {
            return TS_WIRE_ERR_STORE;
        }
        seq->reserved = reserve;
    }
    *out = seq->next++;
    return TS_WIRE_OK;
}
