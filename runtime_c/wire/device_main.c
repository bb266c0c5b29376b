/*
 * Host device program: seal cut tensors read from files, POST them over CoAP (libcoap, UDP, IPv4 or
 * IPv6; Block1 when the message exceeds one datagram), open the sealed answer and print it.
 *
 *   ts_device --uri coap://[::1]:5683/ts/infer --keys dev.keys --model-id ID --model-version N
 *             --tensor FILE:1x64x25x5:SCALE:ZERO_POINT [--tensor ...] [--seq-file PATH]
 *             [--latency-us N] [--arena-bytes N] [--mtu N] [--timeout-ms N]
 *
 * --keys reads the KEY=hex lines that `tinysplit keys add DEVICE` prints. --seq-file persists the
 * sequence number reservation (default: dev.keys.seq). Output: "code 2.04", "seq N", one
 * "output I shape AxB: v0 v1 ..." line per output and "top1 K" for the first output.
 * Exit status: 0 answered, 1 error, 2 usage, 3 CoAP error response, 4 answer rejected.
 */
#define _POSIX_C_SOURCE 200809L

#include <coap3/coap.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tinysplit/wire.h"

#define MAX_MESSAGE 65536u

static uint8_t answer_buf[MAX_MESSAGE];
static size_t answer_len;
static int answer_code = -1;
static int answer_truncated;

static int usage(const char *why)
{
    fprintf(stderr, "ts_device: %s\n(see the comment at the top of device_main.c for usage)\n", why);
    return 2;
}

static int hex_decode(const char *hex, uint8_t *out, size_t n)
{
    size_t i;
    if (strlen(hex) != 2u * n) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2u * i, "%2x", &v) != 1) {
            return -1;
        }
        out[i] = (uint8_t)v;
    }
    return 0;
}

static char device_id[TS_WIRE_MAX_KID + 1];
static uint8_t key_up[32], key_down[32], iv[12];

static int read_keys(const char *path)
{
    char line[256];
    int have = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        char *eq = strchr(line, '=');
        char *value;
        if (eq == NULL) {
            continue;
        }
        *eq = '\0';
        value = eq + 1;
        value[strcspn(value, "\r\n")] = '\0';
        if (strcmp(line, "TS_DEVICE_ID") == 0 && strlen(value) >= 1u && strlen(value) <= TS_WIRE_MAX_KID) {
            strcpy(device_id, value);
            have |= 1;
        } else if (strcmp(line, "TS_KEY_UP") == 0 && hex_decode(value, key_up, sizeof key_up) == 0) {
            have |= 2;
        } else if (strcmp(line, "TS_KEY_DOWN") == 0 && hex_decode(value, key_down, sizeof key_down) == 0) {
            have |= 4;
        } else if (strcmp(line, "TS_IV") == 0 && hex_decode(value, iv, sizeof iv) == 0) {
            have |= 8;
        }
    }
    fclose(f);
    return have == 15 ? 0 : -1;
}

/* --- sequence number store: a file holding the reservation in decimal, replaced atomically --- */

static int seq_load(void *arg, uint64_t *value)
{
    unsigned long long v = 0;
    FILE *f = fopen((const char *)arg, "r");
    if (f == NULL) {
        *value = 0;
        return errno == ENOENT ? 0 : -1;
    }
    if (fscanf(f, "%llu", &v) != 1) {
        fclose(f);
        return -1;
    }
    fclose(f);
    *value = v;
    return 0;
}

static int seq_store(void *arg, uint64_t value)
{
    char tmp[4096];
    FILE *f;
    const char *path = (const char *)arg;
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp || (f = fopen(tmp, "w")) == NULL) {
        return -1;
    }
    if (fprintf(f, "%llu\n", (unsigned long long)value) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fclose(f);
        return -1;
    }
    fclose(f);
    return rename(tmp, path);
}

/* --- tensors from files --- */

typedef struct {
    uint32_t shape[TS_WIRE_MAX_RANK];
    int8_t *data;
} tensor_storage_t;

static int parse_tensor(char *spec, ts_wire_tensor_t *t, tensor_storage_t *s)
{
    /* FILE:D0xD1x...:SCALE:ZP, split from the right so FILE may contain ':' */
    char *zp = strrchr(spec, ':'), *scale, *shape, *tok;
    size_t count = 1, got;
    FILE *f;
    if (zp == NULL) {
        return -1;
    }
    *zp++ = '\0';
    if ((scale = strrchr(spec, ':')) == NULL) {
        return -1;
    }
    *scale++ = '\0';
    if ((shape = strrchr(spec, ':')) == NULL) {
        return -1;
    }
    *shape++ = '\0';
    t->rank = 0;
    for (tok = strtok(shape, "x"); tok != NULL; tok = strtok(NULL, "x")) {
        long d = strtol(tok, NULL, 10);
        if (t->rank >= TS_WIRE_MAX_RANK || d < 1 || d > (1L << 24)) {
            return -1;
        }
        s->shape[t->rank++] = (uint32_t)d;
        count *= (size_t)d;
        if (count > MAX_MESSAGE) {
            return -1;
        }
    }
    t->shape = s->shape;
    t->scale = strtof(scale, NULL);
    t->zero_point = (int32_t)strtol(zp, NULL, 10);
    s->data = malloc(count);
    if (s->data == NULL || (f = fopen(spec, "rb")) == NULL) {
        return -1;
    }
    got = fread(s->data, 1, count, f);
    fclose(f);
    t->data = s->data;
    return got == count ? 0 : -1;
}

/* --- CoAP (libcoap) --- */

static coap_response_t on_response(coap_session_t *session, const coap_pdu_t *sent, const coap_pdu_t *received,
                                   const coap_mid_t mid)
{
    size_t len = 0, offset = 0, total = 0;
    const uint8_t *data = NULL;
    (void)session;
    (void)sent;
    (void)mid;
    answer_code = (int)coap_pdu_get_code(received);
    if (coap_get_data_large(received, &len, &data, &offset, &total)) {
        if (offset != 0u || len > sizeof answer_buf) {
            answer_truncated = 1;
        } else {
            memcpy(answer_buf, data, len);
            answer_len = len;
        }
    }
    return COAP_RESPONSE_OK;
}

static int resolve(const coap_uri_t *uri, coap_address_t *dst)
{
    char host[256], port[8];
    struct addrinfo hints, *res = NULL;
    if (uri->host.length >= sizeof host) {
        return -1;
    }
    memcpy(host, uri->host.s, uri->host.length);
    host[uri->host.length] = '\0';
    snprintf(port, sizeof port, "%u", (unsigned)uri->port);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL) {
        return -1;
    }
    coap_address_init(dst);
    dst->size = (socklen_t)res->ai_addrlen;
    memcpy(&dst->addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

static int post(const char *uri_text, const uint8_t *payload, size_t len, unsigned mtu, unsigned timeout_ms)
{
    coap_uri_t uri;
    coap_address_t dst;
    coap_context_t *ctx;
    coap_session_t *session;
    coap_pdu_t *pdu;
    uint8_t token[8], cf[4];
    size_t token_len = 0, start, i;
    unsigned waited = 0;
    int rc = -1;
    if (coap_split_uri((const uint8_t *)uri_text, strlen(uri_text), &uri) != 0 || resolve(&uri, &dst) != 0) {
        fprintf(stderr, "ts_device: cannot resolve %s\n", uri_text);
        return -1;
    }
    ctx = coap_new_context(NULL);
    if (ctx == NULL) {
        return -1;
    }
    coap_context_set_block_mode(ctx, COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY);
    coap_register_response_handler(ctx, on_response);
    session = coap_new_client_session(ctx, NULL, &dst, COAP_PROTO_UDP);
    if (session == NULL) {
        coap_free_context(ctx);
        return -1;
    }
    if (mtu > 0u) {
        coap_session_set_mtu(session, mtu);
    }
    pdu = coap_pdu_init(COAP_MESSAGE_CON, COAP_REQUEST_CODE_POST, coap_new_message_id(session),
                        coap_session_max_pdu_size(session));
    if (pdu == NULL) {
        goto done;
    }
    coap_session_new_token(session, &token_len, token);
    coap_add_token(pdu, token_len, token);
    for (start = 0, i = 0; i <= uri.path.length; i++) { /* one Uri-Path option per segment */
        if (i == uri.path.length || uri.path.s[i] == '/') {
            if (i > start) {
                coap_add_option(pdu, COAP_OPTION_URI_PATH, i - start, uri.path.s + start);
            }
            start = i + 1u;
        }
    }
    coap_add_option(pdu, COAP_OPTION_CONTENT_FORMAT, coap_encode_var_safe(cf, sizeof cf, TS_WIRE_CONTENT_FORMAT),
                    cf);
    if (!coap_add_data_large_request(session, pdu, len, payload, NULL, NULL) ||
        coap_send(session, pdu) == COAP_INVALID_MID) {
        goto done;
    }
    while (answer_code < 0 && waited < timeout_ms) {
        int spent = coap_io_process(ctx, 100);
        if (spent < 0) {
            goto done;
        }
        waited += spent > 0 ? (unsigned)spent : 1u;
    }
    rc = answer_code < 0 ? -1 : 0;
    if (rc != 0) {
        fprintf(stderr, "ts_device: no answer within %u ms\n", timeout_ms);
    }
done:
    coap_session_release(session);
    coap_free_context(ctx);
    return rc;
}

int main(int argc, char **argv)
{
    const char *uri = NULL, *keys = NULL, *seq_file = NULL;
    static char default_seq_file[4096];
    ts_wire_peer_t peer;
    ts_wire_tensor_t tensors[TS_WIRE_MAX_TENSORS];
    tensor_storage_t storage[TS_WIRE_MAX_TENSORS];
    ts_wire_telemetry_t telemetry = {0, 0};
    ts_wire_answer_t answer;
    ts_seq_t seq_state;
    ts_seq_store_t store;
    static uint8_t message[MAX_MESSAGE];
    size_t n_tensors = 0, message_len = 0, o, i;
    uint64_t seq;
    unsigned mtu = 0, timeout_ms = 10000;
    int a, rc;

    memset(&peer, 0, sizeof peer);
    for (a = 1; a < argc; a++) {
        const char *opt = argv[a];
        const char *val = a + 1 < argc ? argv[a + 1] : NULL;
        if (val == NULL) {
            return usage("missing value");
        }
        a++;
        if (strcmp(opt, "--uri") == 0) {
            uri = val;
        } else if (strcmp(opt, "--keys") == 0) {
            keys = val;
        } else if (strcmp(opt, "--seq-file") == 0) {
            seq_file = val;
        } else if (strcmp(opt, "--model-id") == 0) {
            peer.model_id = val;
        } else if (strcmp(opt, "--model-version") == 0) {
            peer.model_version = (uint32_t)strtoul(val, NULL, 10);
        } else if (strcmp(opt, "--latency-us") == 0) {
            telemetry.latency_us = (uint32_t)strtoul(val, NULL, 10);
        } else if (strcmp(opt, "--arena-bytes") == 0) {
            telemetry.arena_bytes = (uint32_t)strtoul(val, NULL, 10);
        } else if (strcmp(opt, "--mtu") == 0) {
            mtu = (unsigned)strtoul(val, NULL, 10);
        } else if (strcmp(opt, "--timeout-ms") == 0) {
            timeout_ms = (unsigned)strtoul(val, NULL, 10);
        } else if (strcmp(opt, "--tensor") == 0) {
            if (n_tensors >= TS_WIRE_MAX_TENSORS || parse_tensor(argv[a], &tensors[n_tensors], &storage[n_tensors]) != 0) {
                return usage("bad --tensor FILE:SHAPE:SCALE:ZP (or unreadable file)");
            }
            n_tensors++;
        } else {
            return usage("unknown option");
        }
    }
    if (uri == NULL || keys == NULL || peer.model_id == NULL || n_tensors == 0u) {
        return usage("--uri, --keys, --model-id and --tensor are required");
    }
    if (read_keys(keys) != 0) {
        return usage("--keys: need TS_DEVICE_ID, TS_KEY_UP, TS_KEY_DOWN, TS_IV lines");
    }
    peer.device_id = device_id;
    peer.key_up = key_up;
    peer.key_down = key_down;
    peer.iv = iv;
    if (seq_file == NULL) {
        snprintf(default_seq_file, sizeof default_seq_file, "%s.seq", keys);
        seq_file = default_seq_file;
    }
    store.load = seq_load;
    store.store = seq_store;
    store.arg = (void *)seq_file;
    if (ts_seq_init(&seq_state, &store) != TS_WIRE_OK || ts_seq_next(&seq_state, &seq) != TS_WIRE_OK) {
        fprintf(stderr, "ts_device: sequence number store %s failed\n", seq_file);
        return 1;
    }
    rc = ts_wire_seal_request(&peer, seq, tensors, n_tensors, &telemetry, message, sizeof message, &message_len);
    if (rc != TS_WIRE_OK) {
        fprintf(stderr, "ts_device: cannot seal the request (%d)\n", rc);
        return 1;
    }
    coap_startup();
    coap_set_log_level(LOG_WARNING);
    rc = post(uri, message, message_len, mtu, timeout_ms);
    coap_cleanup();
    if (rc != 0) {
        return 1;
    }
    printf("code %d.%02d\nseq %llu\n", answer_code >> 5, answer_code & 0x1f, (unsigned long long)seq);
    if (answer_code != COAP_RESPONSE_CODE(204)) {
        printf("diagnostic %.*s\n", (int)answer_len, (const char *)answer_buf);
        return 3;
    }
    if (answer_truncated || ts_wire_open_answer(&peer, seq, answer_buf, answer_len, &answer) != TS_WIRE_OK) {
        printf("answer rejected\n");
        return 4;
    }
    for (o = 0; o < answer.n_outputs; o++) {
        const ts_wire_output_t *out = &answer.outputs[o];
        printf("output %u shape ", (unsigned)o);
        for (i = 0; i < out->rank; i++) {
            printf(i ? "x%u" : "%u", (unsigned)out->shape[i]);
        }
        printf(":");
        for (i = 0; i < out->count; i++) {
            printf(" %.9g", (double)ts_wire_output_value(out, i));
        }
        printf("\n");
    }
    {
        const ts_wire_output_t *first = &answer.outputs[0];
        size_t best = 0;
        for (i = 1; i < first->count; i++) {
            if (ts_wire_output_value(first, i) > ts_wire_output_value(first, best)) {
                best = i;
            }
        }
        printf("top1 %u\n", (unsigned)best);
    }
    for (i = 0; i < n_tensors; i++) {
        free(storage[i].data);
    }
    return 0;
}
