/* Test driver of the C wire code against the Python side (tests/test_wire_c.py):
 *   wire_check open KEYS MODEL_ID VERSION SEQ FILE    open a sealed answer: prints "ok" + values, or the error
 *   wire_check seal KEYS MODEL_ID VERSION SEQ FILE SHAPE SCALE ZP   print the sealed request as hex */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tinysplit/wire.h"

static uint8_t buf[65536];
static char device_id[256];
static uint8_t key_up[32], key_down[32], iv[12];

static void hex(const char *s, uint8_t *out, size_t n)
{
    size_t i;
    for (i = 0; i < n && s[2 * i] && s[2 * i + 1]; i++) {
        unsigned v = 0;
        sscanf(s + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

static void read_keys(const char *path)
{
    char line[256];
    FILE *f = fopen(path, "r");
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strncmp(line, "TS_DEVICE_ID=", 13) == 0) {
            memcpy(device_id, line + 13, strlen(line + 13) + 1);
        } else if (strncmp(line, "TS_KEY_UP=", 10) == 0) {
            hex(line + 10, key_up, 32);
        } else if (strncmp(line, "TS_KEY_DOWN=", 12) == 0) {
            hex(line + 12, key_down, 32);
        } else if (strncmp(line, "TS_IV=", 6) == 0) {
            hex(line + 6, iv, 12);
        }
    }
    if (f != NULL) {
        fclose(f);
    }
}

int main(int argc, char **argv)
{
    ts_wire_peer_t peer;
    uint64_t seq;
    size_t len, i, o;
    FILE *f;
    if (argc < 7) {
        return 2;
    }
    read_keys(argv[2]);
    peer.device_id = device_id;
    peer.key_up = key_up;
    peer.key_down = key_down;
    peer.iv = iv;
    peer.model_id = argv[3];
    peer.model_version = (uint32_t)strtoul(argv[4], NULL, 10);
    seq = strtoull(argv[5], NULL, 10);
    if ((f = fopen(argv[6], "rb")) == NULL) {
        return 2;
    }
    len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (strcmp(argv[1], "open") == 0) {
        ts_wire_answer_t answer;
        int rc = ts_wire_open_answer(&peer, seq, buf, len, &answer);
        if (rc != TS_WIRE_OK) {
            printf("error %d\n", rc);
            return 1;
        }
        printf("ok %u\n", (unsigned)answer.n_outputs);
        for (o = 0; o < answer.n_outputs; o++) {
            for (i = 0; i < answer.outputs[o].count; i++) {
                printf("%.9g ", (double)ts_wire_output_value(&answer.outputs[o], i));
            }
            printf("\n");
        }
        return 0;
    }
    if (strcmp(argv[1], "seal") == 0 && argc == 10) {
        static uint8_t out[65536 + 256];
        uint32_t shape[TS_WIRE_MAX_RANK];
        ts_wire_tensor_t t;
        ts_wire_telemetry_t tm = {7, 8};
        char *tok;
        size_t out_len = 0;
        int rc;
        t.rank = 0;
        for (tok = strtok(argv[7], "x"); tok != NULL && t.rank < TS_WIRE_MAX_RANK; tok = strtok(NULL, "x")) {
            shape[t.rank++] = (uint32_t)strtoul(tok, NULL, 10);
        }
        t.shape = shape;
        t.data = (const int8_t *)buf;
        t.scale = strtof(argv[8], NULL);
        t.zero_point = (int32_t)strtol(argv[9], NULL, 10);
        rc = ts_wire_seal_request(&peer, seq, &t, 1, &tm, out, sizeof out, &out_len);
        if (rc != TS_WIRE_OK) {
            printf("error %d\n", rc);
            return 1;
        }
        for (i = 0; i < out_len; i++) {
            printf("%02x", out[i]);
        }
        printf("\n");
        return 0;
    }
    return 2;
}
