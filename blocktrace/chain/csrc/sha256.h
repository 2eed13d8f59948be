/* SHA-256 (FIPS 180-4): a streaming context, and the compression function
 * chosen once per process (sha256.c): portable C, or on x86-64 the SHA
 * extensions when the CPU has them and BLOCKTRACE_SHA_PORTABLE is not set.
 *
 * Update and digest are inline here: the writer calls them for every line. */

#ifndef BT_SHA256_H
#define BT_SHA256_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "members.h" /* the hash member's spelling (blocktrace/format/csrc) */

/* Compress nblocks 64-byte blocks at p into the 8 state words st. */
typedef void (*sha256_compress_fn)(uint32_t st[8], const uint8_t *p, size_t nblocks);

/* The compression in use (set by sha256_select; portable until then). */
extern sha256_compress_fn sha256_compress;

/* Choose the compression, once per process (every module that compiles this file
 * makes the same choice): `force` names one ("sha-ni", "openssl", "portable") when it
 * is available; otherwise, and when force is NULL or "", the SHA extensions when the
 * CPU has them, else OpenSSL's SHA256_Transform from the libcrypto hashlib uses (found
 * at run time; vectorised for CPUs without the extensions), else the portable C.
 * Returns the name of the one chosen. */
const char *sha256_select(const char *force);

/* sha256_select with `force` from the environment: BLOCKTRACE_SHA256 (a name), or
 * "portable" when BLOCKTRACE_SHA_PORTABLE is set to anything but "" or "0". */
const char *sha256_select_from_env(void);

/* The compression called `name`, when this process can use it (tests compare them):
 * 1 and *out set, or 0. */
int sha256_compress_named(const char *name, sha256_compress_fn *out);

/* The portable compression, whatever sha256_select chose (tests compare). */
void sha256_compress_portable(uint32_t st[8], const uint8_t *p, size_t nblocks);

/* n bytes from src to dst (not overlapping) with moves of 16 bytes at most: the copies
 * made between one line's hashing and the next, in place of memcpy.  On CPUs with AVX-512
 * glibc's memcpy moves 64 bytes at a time in 512-bit registers, which lowers the core's
 * clock for a while (its AVX-512 licence), and with it the SHA extensions' serial chain
 * that follows: the writer's thread copied each line's body that way (docs/PERFORMANCE.md,
 * "Session 10"). */
static inline void
sha256_copy_narrow(uint8_t *dst, const uint8_t *src, size_t n)
{
#if defined(__SSE2__)
    if (n >= 16) {
        size_t i = 0;
        for (; i + 16 <= n; i += 16) {
            _mm_storeu_si128((__m128i *)(dst + i), _mm_loadu_si128((const __m128i *)(src + i)));
        }
        if (i < n) { /* the last 16, overlapping what went */
            _mm_storeu_si128((__m128i *)(dst + n - 16),
                             _mm_loadu_si128((const __m128i *)(src + n - 16)));
        }
        return;
    }
#endif
    uint64_t a, b;
    uint32_t c, d;
    uint16_t e, f;
    if (n >= 8) { /* up to 15 bytes (16 and more without SSE2: 8 at a time) */
        for (; n > 16; n -= 8, src += 8, dst += 8) {
            memcpy(&a, src, 8);
            memcpy(dst, &a, 8);
        }
        memcpy(&a, src, 8);
        memcpy(&b, src + n - 8, 8);
        memcpy(dst, &a, 8);
        memcpy(dst + n - 8, &b, 8);
    }
    else if (n >= 4) {
        memcpy(&c, src, 4);
        memcpy(&d, src + n - 4, 4);
        memcpy(dst, &c, 4);
        memcpy(dst + n - 4, &d, 4);
    }
    else if (n >= 2) {
        memcpy(&e, src, 2);
        memcpy(&f, src + n - 2, 2);
        memcpy(dst, &e, 2);
        memcpy(dst + n - 2, &f, 2);
    }
    else if (n == 1) {
        dst[0] = src[0];
    }
}

typedef struct {
    uint32_t h[8];
    uint64_t n;      /* bytes fed so far */
    uint8_t blk[64]; /* the first n % 64 bytes are pending */
} sha256_ctx;

extern const uint32_t SHA256_H0[8];

static inline void
sha256_init(sha256_ctx *c)
{
    memcpy(c->h, SHA256_H0, sizeof c->h);
    c->n = 0;
}

/* sha256_update with a given compression (tests compare the compressions through
 * the same composition: sha256_compress_named). */
static inline void
sha256_update_with(sha256_ctx *c, const uint8_t *p, size_t len, sha256_compress_fn compress)
{
    size_t used = (size_t)(c->n & 63);
    c->n += len;
    if (used) {
        size_t take = 64 - used;
        if (len < take) {
            sha256_copy_narrow(c->blk + used, p, len);
            return;
        }
        sha256_copy_narrow(c->blk + used, p, take);
        compress(c->h, c->blk, 1);
        p += take;
        len -= take;
    }
    size_t nb = len >> 6;
    if (nb) {
        compress(c->h, p, nb);
        p += nb << 6;
        len &= 63;
    }
    if (len) {
        sha256_copy_narrow(c->blk, p, len);
    }
}

static inline void
sha256_update(sha256_ctx *c, const uint8_t *p, size_t len)
{
    sha256_update_with(c, p, len, sha256_compress);
}

static inline void
sha256_store_be32(uint8_t *p, uint32_t v)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap32(v);
    memcpy(p, &v, 4);
#else
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
#endif
}

static inline void
sha256_store_be64(uint8_t *p, uint64_t v)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
    memcpy(p, &v, 8); /* one store, so the compression's loads get it forwarded */
#else
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (56 - 8 * i));
    }
#endif
}

/* The digest of what c has been fed (padded per FIPS 180-4, 5.1.1) with a given
 * compression; c itself is left as it was, so a stream can go on after a digest. */
static inline void
sha256_digest_with(const sha256_ctx *c, uint8_t out[32], sha256_compress_fn compress)
{
    uint8_t blk[128];
    uint32_t h[8];
    size_t used = (size_t)(c->n & 63);
    size_t total = used < 56 ? 64 : 128;
    memcpy(h, c->h, sizeof h);
#if defined(__SSE2__)
    /* only the blocks hashed, with plain stores (a 128-byte memset became a
     * `rep stos`, whose start-up cost is a fair part of a line's digest) */
    const __m128i zero = _mm_setzero_si128();
    for (size_t i = 0; i < total; i += 16) {
        _mm_storeu_si128((__m128i *)(blk + i), zero);
    }
#else
    memset(blk, 0, sizeof blk);
#endif
    sha256_copy_narrow(blk, c->blk, used);
    blk[used] = 0x80;
    sha256_store_be64(blk + total - 8, c->n << 3);
    compress(h, blk, total >> 6);
    for (int i = 0; i < 8; i++) {
        sha256_store_be32(out + 4 * i, h[i]);
    }
}

/* The digest of what c has been fed; c is left as it was. */
static inline void
sha256_digest(const sha256_ctx *c, uint8_t out[32])
{
    sha256_digest_with(c, out, sha256_compress);
}

/* A sealed line inside a leaf, in one call (the chain writer's commit; docs/FORMAT.md
 * "The hash chain"): feed the `blen` bytes at body to c, write the digest of what c was
 * then fed at out and the line's tail at body + blen -- `,"hash":"`, the digest's 64
 * lowercase hex digits, `"}` and a newline: SHA256_TAIL_LEN bytes -- and feed the tail
 * to c too.  Exactly sha256_update, sha256_digest, the tail, sha256_update in turn
 * (sha256_line_generic), with the state kept in registers by the SHA extensions'
 * version.  body must have SHA256_TAIL_LEN writable bytes after its blen.  before:
 * how many bytes just before body are the last bytes c was fed (the previous line, in
 * the same buffer), which are then read in place of c's copy (0: none are). */
#define SHA256_TAIL_HEAD BT_HASH_MEMBER /* the format's spelling (format/csrc/members.h) */
#define SHA256_TAIL_HEAD_LEN BT_HASH_MEMBER_LEN
#define SHA256_TAIL_LEN (BT_HASH_TAIL_LEN + 1)
typedef void (*sha256_line_fn)(sha256_ctx *c, uint8_t *body, size_t blen, uint8_t out[32],
                               size_t before);

/* The tail of a line whose hash is `digest`: SHA256_TAIL_LEN bytes at tail. */
void sha256_tail(const uint8_t digest[32], uint8_t *tail);

/* The one sha256_select chose (the generic one until then). */
extern sha256_line_fn sha256_line;

/* The composition of the streaming calls (tests compare sha256_line with it). */
void sha256_line_generic(sha256_ctx *c, uint8_t *body, size_t blen, uint8_t out[32],
                         size_t before);

/* A line of format version 4 (docs/FORMAT.md; blocktrace/format/rules.py): feed the
 * `blen` bytes at body and a newline to the leaf's stream c, write the digest of what c
 * was then fed at out and the line's tail (SHA256_TAIL_LEN bytes, as above) at
 * body + blen.  The tail is not fed: a line's digest is off the stream's serial chain.
 * Exactly sha256_update(body), sha256_update("\n"), sha256_digest, sha256_tail
 * (sha256_line4_generic); the SHA extensions' version keeps the state in registers.
 * body must have SHA256_TAIL_LEN writable bytes after its blen. */
typedef void (*sha256_line4_fn)(sha256_ctx *c, uint8_t *body, size_t blen, uint8_t out[32]);

/* The one sha256_select chose (the generic one until then). */
extern sha256_line4_fn sha256_line4;

/* The composition of the streaming calls with the compression in use. */
void sha256_line4_generic(sha256_ctx *c, uint8_t *body, size_t blen, uint8_t out[32]);

/* For tests: the version 4 line with the compression called `name` through the
 * composition (fused = 0), or with the line function made for it (fused = 1: the SHA
 * extensions' own).  0: this process has no such one. */
int sha256_line4_named(const char *name, int fused, sha256_ctx *c, uint8_t *body, size_t blen,
                       uint8_t out[32]);

/* Version 4's line with its digest left for later (the writer's thread): feed the blen
 * bytes at body and a newline to c; when prev_tail is not NULL, first take the digest of c
 * as it is on entry -- the previous line's hash, whose digest was left -- write it at
 * prev_out and as the tail at prev_tail.  The SHA extensions' version compresses that
 * digest's padding together with this body's first block (two independent chains cost
 * about one), so a line's digest is off the serial chain.  This line's own hash is the
 * next call's prev (or sha256_line4_settle's).  body must have SHA256_TAIL_LEN writable
 * bytes after its blen (the newline goes there until the tail is written). */
typedef void (*sha256_line4_defer_fn)(sha256_ctx *c, uint8_t *body, size_t blen,
                                      uint8_t *prev_tail, uint8_t prev_out[32]);
/* The last line's left digest: the digest of c at out, and as the tail at tail. */
typedef void (*sha256_line4_settle_fn)(const sha256_ctx *c, uint8_t *tail, uint8_t out[32]);

extern sha256_line4_defer_fn sha256_line4_defer;
extern sha256_line4_settle_fn sha256_line4_settle;
void sha256_line4_defer_generic(sha256_ctx *c, uint8_t *body, size_t blen, uint8_t *prev_tail,
                                uint8_t prev_out[32]);
void sha256_line4_settle_generic(const sha256_ctx *c, uint8_t *tail, uint8_t out[32]);

/* For tests, as sha256_line4_named: the deferred line (fused: the SHA extensions' own),
 * or with body NULL its settle.  0: this process has no such one. */
int sha256_line4_defer_named(const char *name, int fused, sha256_ctx *c, uint8_t *body,
                             size_t blen, uint8_t *prev_tail, uint8_t prev_out[32]);

/* SHA-256 of len bytes at p. */
void sha256_once(const uint8_t *p, size_t len, uint8_t out[32]);

#endif /* BT_SHA256_H */
