/* The RFC 9162 Merkle tree of a trace's leaves, kept as the usual stack of
 * perfect-subtree hashes (one per set bit of the size, largest first), as
 * blocktrace.chain.merkle.MerkleAccumulator keeps it in Python. */

#ifndef BT_MERKLE_H
#define BT_MERKLE_H

#include <stdint.h>

typedef struct {
    uint64_t size;         /* leaves so far */
    int depth;             /* subtree hashes on the stack */
    uint8_t stack[64][32]; /* one per set bit of size, largest first */
} merkle_tree;

void merkle_init(merkle_tree *t);

/* Add a leaf by its hash (SHA-256 of 0x00 || leaf, computed by the caller). */
void merkle_push(merkle_tree *t, const uint8_t leaf_hash[32]);

/* The root of the leaves so far (SHA-256 of b"" for none). */
void merkle_root(const merkle_tree *t, uint8_t out[32]);

#endif /* BT_MERKLE_H */
