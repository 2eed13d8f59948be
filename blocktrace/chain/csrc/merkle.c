/* The Merkle tree of the leaves (see merkle.h). */

#include "merkle.h"

#include <string.h>

#include "sha256.h"

/* SHA-256 of b"" (RFC 9162: the root of an empty tree). */
static const uint8_t EMPTY_ROOT[32] = {
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
};

/* SHA-256(0x01 || left || right) */
static void
node_hash(const uint8_t left[32], const uint8_t right[32], uint8_t out[32])
{
    uint8_t in[65];
    in[0] = 0x01;
    memcpy(in + 1, left, 32);
    memcpy(in + 33, right, 32);
    sha256_once(in, sizeof in, out);
}

void
merkle_init(merkle_tree *t)
{
    t->size = 0;
    t->depth = 0;
}

void
merkle_push(merkle_tree *t, const uint8_t leaf_hash[32])
{
    uint8_t h[32];
    memcpy(h, leaf_hash, 32);
    for (uint64_t n = t->size; n & 1; n >>= 1) {
        t->depth--;
        node_hash(t->stack[t->depth], h, h);
    }
    memcpy(t->stack[t->depth], h, 32);
    t->depth++;
    t->size++;
}

void
merkle_root(const merkle_tree *t, uint8_t out[32])
{
    if (t->depth == 0) {
        memcpy(out, EMPTY_ROOT, 32);
        return;
    }
    memcpy(out, t->stack[t->depth - 1], 32);
    for (int i = t->depth - 2; i >= 0; i--) {
        node_hash(t->stack[i], out, out);
    }
}
