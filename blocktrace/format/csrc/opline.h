/* An op line's body from plain values: the site's prefix (up to the gas
 * digits), gas in hex, the fixed middle, depth in decimal, the site's suffix.
 * The format's C spelling of the layout (it lives with the format; the C line
 * writer in chain/csrc only includes it and seals what it makes), the same
 * bytes as blocktrace.format.opline.op_body (docs/FORMAT.md):
 *
 *     prefix + b"%x" % gas + OPLINE_MID + b"%d" % depth + suffix
 */

#ifndef BT_OPLINE_H
#define BT_OPLINE_H

#include <stddef.h>
#include <string.h>

#include "hex.h"

/* How the site's pieces are copied (an includer may name a copy of its own: the C
 * writer's thread makes op lines and keeps glibc's memcpy off it, chain/csrc/sha256.h). */
#ifndef OPLINE_COPY
#define OPLINE_COPY memcpy
#endif

#define OPLINE_MID "\",\"gasCost\":\"0x1\",\"depth\":"
#define OPLINE_MID_LEN (sizeof(OPLINE_MID) - 1)

typedef struct {
    unsigned long long gas, depth; /* magnitudes */
    int gas_neg, depth_neg;
    size_t gas_digits, depth_digits;
    size_t len; /* of the whole body */
} opline_layout;

static inline void
opline_measure(opline_layout *l, size_t prefix_len, long long gas, long long depth,
               size_t suffix_len)
{
    l->gas_neg = gas < 0;
    l->depth_neg = depth < 0;
    l->gas = gas < 0 ? 0ULL - (unsigned long long)gas : (unsigned long long)gas;
    l->depth = depth < 0 ? 0ULL - (unsigned long long)depth : (unsigned long long)depth;
#if defined(__GNUC__)
    l->gas_digits = l->gas ? (size_t)(67 - __builtin_clzll(l->gas)) / 4 : 1;
#else
    l->gas_digits = 1;
    for (unsigned long long x = l->gas >> 4; x; x >>= 4) {
        l->gas_digits++;
    }
#endif
    l->depth_digits = 1;
    for (unsigned long long x = l->depth / 10; x; x /= 10) {
        l->depth_digits++;
    }
    l->len = prefix_len + (size_t)l->gas_neg + l->gas_digits + OPLINE_MID_LEN
             + (size_t)l->depth_neg + l->depth_digits + suffix_len;
}

/* Write the body (l->len bytes) at o. */
static inline void
opline_write(char *o, const opline_layout *l, const char *prefix, size_t prefix_len,
             const char *suffix, size_t suffix_len)
{
    OPLINE_COPY(o, prefix, prefix_len);
    o += prefix_len;
    if (l->gas_neg) {
        *o++ = '-';
    }
    unsigned long long g = l->gas;
    for (size_t i = l->gas_digits; i > 0; i--) {
        o[i - 1] = HEXDIGITS[g & 15];
        g >>= 4;
    }
    o += l->gas_digits;
    memcpy(o, OPLINE_MID, OPLINE_MID_LEN);
    o += OPLINE_MID_LEN;
    if (l->depth_neg) {
        *o++ = '-';
    }
    unsigned long long d = l->depth;
    for (size_t i = l->depth_digits; i > 0; i--) {
        o[i - 1] = (char)('0' + d % 10);
        d /= 10;
    }
    o += l->depth_digits;
    OPLINE_COPY(o, suffix, suffix_len);
}

#endif /* BT_OPLINE_H */
