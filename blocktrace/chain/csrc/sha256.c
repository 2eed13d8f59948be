/* SHA-256 (FIPS 180-4): the compression function, portable and with the x86
 * SHA extensions, and the choice between them (see sha256.h). */

#include "sha256.h"

#include "cpu.h"
#include "hex.h"

#include <stdlib.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define BT_X86 1
#endif

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

const uint32_t SHA256_H0[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

static inline uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

static inline uint32_t load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

#define BT_S0(x) (rotr((x), 2) ^ rotr((x), 13) ^ rotr((x), 22))
#define BT_S1(x) (rotr((x), 6) ^ rotr((x), 11) ^ rotr((x), 25))
#define BT_s0(x) (rotr((x), 7) ^ rotr((x), 18) ^ ((x) >> 3))
#define BT_s1(x) (rotr((x), 17) ^ rotr((x), 19) ^ ((x) >> 10))
/* One round with the working variables named in place (no register shuffle):
 * d and h are the ones that change. */
#define BT_ROUND(a, b, c, d, e, f, g, h, k, wt)                                  \
    do {                                                                         \
        uint32_t t1_ = (h) + BT_S1(e) + (((e) & (f)) ^ (~(e) & (g))) + (k) + (wt); \
        (d) += t1_;                                                              \
        (h) = t1_ + BT_S0(a) + (((a) & (b)) ^ ((a) & (c)) ^ ((b) & (c)));        \
    } while (0)
/* W[t] for t >= 16, kept in a ring of 16 words. */
#define BT_W(t) (w[(t) & 15] += BT_s1(w[((t) - 2) & 15]) + w[((t) - 7) & 15] + BT_s0(w[((t) - 15) & 15]))

void sha256_compress_portable(uint32_t st[8], const uint8_t *p, size_t nblocks)
{
    uint32_t w[16];
    while (nblocks--) {
        uint32_t a = st[0], b = st[1], c = st[2], d = st[3];
        uint32_t e = st[4], f = st[5], g = st[6], h = st[7];
        for (int t = 0; t < 16; t++)
            w[t] = load_be32(p + 4 * t);
        for (int t = 0; t < 16; t += 8) {
            BT_ROUND(a, b, c, d, e, f, g, h, K256[t + 0], w[t + 0]);
            BT_ROUND(h, a, b, c, d, e, f, g, K256[t + 1], w[t + 1]);
            BT_ROUND(g, h, a, b, c, d, e, f, K256[t + 2], w[t + 2]);
            BT_ROUND(f, g, h, a, b, c, d, e, K256[t + 3], w[t + 3]);
            BT_ROUND(e, f, g, h, a, b, c, d, K256[t + 4], w[t + 4]);
            BT_ROUND(d, e, f, g, h, a, b, c, K256[t + 5], w[t + 5]);
            BT_ROUND(c, d, e, f, g, h, a, b, K256[t + 6], w[t + 6]);
            BT_ROUND(b, c, d, e, f, g, h, a, K256[t + 7], w[t + 7]);
        }
        for (int t = 16; t < 64; t += 8) {
            BT_ROUND(a, b, c, d, e, f, g, h, K256[t + 0], BT_W(t + 0));
            BT_ROUND(h, a, b, c, d, e, f, g, K256[t + 1], BT_W(t + 1));
            BT_ROUND(g, h, a, b, c, d, e, f, K256[t + 2], BT_W(t + 2));
            BT_ROUND(f, g, h, a, b, c, d, e, K256[t + 3], BT_W(t + 3));
            BT_ROUND(e, f, g, h, a, b, c, d, K256[t + 4], BT_W(t + 4));
            BT_ROUND(d, e, f, g, h, a, b, c, K256[t + 5], BT_W(t + 5));
            BT_ROUND(c, d, e, f, g, h, a, b, K256[t + 6], BT_W(t + 6));
            BT_ROUND(b, c, d, e, f, g, h, a, K256[t + 7], BT_W(t + 7));
        }
        st[0] += a;
        st[1] += b;
        st[2] += c;
        st[3] += d;
        st[4] += e;
        st[5] += f;
        st[6] += g;
        st[7] += h;
        p += 64;
    }
}

#ifdef BT_X86
/* The SHA extensions keep the state as two vectors, ABEF and CDGH; each
 * sha256rnds2 does two rounds, taking W+K for them in the low 64 bits.
 * sha256msg1/sha256msg2 compute the message schedule four words at a time. */
#define BT_SHA_TARGET __attribute__((target("sha,sse4.1,ssse3")))

#define BT_RND4_L(s0_, s1_, wv, r)                                               \
    do {                                                                         \
        __m128i m_ = _mm_add_epi32((wv), _mm_loadu_si128((const __m128i *)&K256[4 * (r)])); \
        (s1_) = _mm_sha256rnds2_epu32((s1_), (s0_), m_);                         \
        m_ = _mm_shuffle_epi32(m_, 0x0E);                                        \
        (s0_) = _mm_sha256rnds2_epu32((s0_), (s1_), m_);                         \
    } while (0)
#define BT_RND4(wv, r) BT_RND4_L(s0, s1, wv, r)

/* a = W[t-16..t-13] becomes W[t..t+3]; b, c, d are the next three groups. */
#define BT_SCHED(a, b, c, d)                                                     \
    (a) = _mm_sha256msg2_epu32(                                                  \
        _mm_add_epi32(_mm_sha256msg1_epu32((a), (b)), _mm_alignr_epi8((d), (c), 4)), (d))

/* Rounds 4r .. 4r + 15 (r = 4, 8, 12), each group's four message words made from
 * the four before them. */
#define BT_SCHED_RND16(r)                                                        \
    do {                                                                         \
        BT_SCHED(w0, w1, w2, w3); BT_RND4(w0, (r));                              \
        BT_SCHED(w1, w2, w3, w0); BT_RND4(w1, (r) + 1);                          \
        BT_SCHED(w2, w3, w0, w1); BT_RND4(w2, (r) + 2);                          \
        BT_SCHED(w3, w0, w1, w2); BT_RND4(w3, (r) + 3);                          \
    } while (0)

/* One block of the 64 bytes in v0..v3 (as they are in memory) on the state in
 * registers (s0 = ABEF, s1 = CDGH). */
BT_SHA_TARGET __attribute__((always_inline)) static inline void
block_shani_v(__m128i *ps0, __m128i *ps1, __m128i v0, __m128i v1, __m128i v2, __m128i v3)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i s0 = *ps0, s1 = *ps1;
    __m128i w0 = _mm_shuffle_epi8(v0, bswap);
    __m128i w1 = _mm_shuffle_epi8(v1, bswap);
    __m128i w2 = _mm_shuffle_epi8(v2, bswap);
    __m128i w3 = _mm_shuffle_epi8(v3, bswap);
    BT_RND4(w0, 0);
    BT_RND4(w1, 1);
    BT_RND4(w2, 2);
    BT_RND4(w3, 3);
    BT_SCHED_RND16(4);
    BT_SCHED_RND16(8);
    BT_SCHED_RND16(12);
    *ps0 = _mm_add_epi32(s0, *ps0);
    *ps1 = _mm_add_epi32(s1, *ps1);
}

/* Two blocks on two states at once, their rounds interleaved: two independent
 * serial chains of sha256rnds2 take about the time of one (docs/PERFORMANCE.md).
 * a and b: each block's 64 bytes as they are in memory. */
#define BT_X2_SCHED_RND4(a0, a1, a2, a3, b0, b1, b2, b3, r)                        \
    do {                                                                         \
        BT_SCHED(a0, a1, a2, a3); BT_RND4_L(as0, as1, a0, (r));                  \
        BT_SCHED(b0, b1, b2, b3); BT_RND4_L(bs0, bs1, b0, (r));                  \
    } while (0)
#define BT_X2_SCHED_RND16(r)                                                     \
    do {                                                                         \
        BT_X2_SCHED_RND4(a0, a1, a2, a3, b0, b1, b2, b3, (r));                   \
        BT_X2_SCHED_RND4(a1, a2, a3, a0, b1, b2, b3, b0, (r) + 1);               \
        BT_X2_SCHED_RND4(a2, a3, a0, a1, b2, b3, b0, b1, (r) + 2);               \
        BT_X2_SCHED_RND4(a3, a0, a1, a2, b3, b0, b1, b2, (r) + 3);               \
    } while (0)

BT_SHA_TARGET __attribute__((always_inline)) static inline void
block_shani_x2(__m128i *pa0, __m128i *pa1, const __m128i a[4], __m128i *pb0, __m128i *pb1,
               const __m128i b[4])
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i as0 = *pa0, as1 = *pa1, bs0 = *pb0, bs1 = *pb1;
    __m128i a0 = _mm_shuffle_epi8(a[0], bswap), b0 = _mm_shuffle_epi8(b[0], bswap);
    __m128i a1 = _mm_shuffle_epi8(a[1], bswap), b1 = _mm_shuffle_epi8(b[1], bswap);
    __m128i a2 = _mm_shuffle_epi8(a[2], bswap), b2 = _mm_shuffle_epi8(b[2], bswap);
    __m128i a3 = _mm_shuffle_epi8(a[3], bswap), b3 = _mm_shuffle_epi8(b[3], bswap);
    BT_RND4_L(as0, as1, a0, 0);
    BT_RND4_L(bs0, bs1, b0, 0);
    BT_RND4_L(as0, as1, a1, 1);
    BT_RND4_L(bs0, bs1, b1, 1);
    BT_RND4_L(as0, as1, a2, 2);
    BT_RND4_L(bs0, bs1, b2, 2);
    BT_RND4_L(as0, as1, a3, 3);
    BT_RND4_L(bs0, bs1, b3, 3);
    BT_X2_SCHED_RND16(4);
    BT_X2_SCHED_RND16(8);
    BT_X2_SCHED_RND16(12);
    *pa0 = _mm_add_epi32(as0, *pa0);
    *pa1 = _mm_add_epi32(as1, *pa1);
    *pb0 = _mm_add_epi32(bs0, *pb0);
    *pb1 = _mm_add_epi32(bs1, *pb1);
}

/* One block at p on the state in registers. */
BT_SHA_TARGET __attribute__((always_inline)) static inline void
block_shani(__m128i *s0, __m128i *s1, const uint8_t *p)
{
    block_shani_v(s0, s1, _mm_loadu_si128((const __m128i *)(p + 0)),
                  _mm_loadu_si128((const __m128i *)(p + 16)),
                  _mm_loadu_si128((const __m128i *)(p + 32)),
                  _mm_loadu_si128((const __m128i *)(p + 48)));
}

/* The state words in c (h[0..7]) as the SHA extensions keep them (ABEF, CDGH), and back. */
BT_SHA_TARGET __attribute__((always_inline)) static inline void
load_state_shani(const uint32_t h[8], __m128i *s0, __m128i *s1)
{
    __m128i dcba = _mm_loadu_si128((const __m128i *)&h[0]);
    __m128i hgfe = _mm_loadu_si128((const __m128i *)&h[4]);
    __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1);
    __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    *s0 = _mm_alignr_epi8(cdab, efgh, 8);    /* ABEF */
    *s1 = _mm_blend_epi16(efgh, cdab, 0xF0); /* CDGH */
}

BT_SHA_TARGET __attribute__((always_inline)) static inline void
store_state_shani(uint32_t h[8], __m128i s0, __m128i s1)
{
    __m128i feba = _mm_shuffle_epi32(s0, 0x1B);
    __m128i dchg = _mm_shuffle_epi32(s1, 0xB1);
    _mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(dchg, feba, 8));
}

BT_SHA_TARGET
static void compress_shani(uint32_t st[8], const uint8_t *p, size_t nblocks)
{
    __m128i s0, s1;
    load_state_shani(st, &s0, &s1);
    while (nblocks--) {
        block_shani(&s0, &s1, p);
        p += 64;
    }
    store_state_shani(st, s0, s1);
}

/* The bytes of len bytes at p, fed after the `*pending` bytes at *q (len + *pending
 * >= 64 or not: whole blocks are compressed; *q and *pending then name what is left).
 * *q + *pending == p: the bytes are contiguous in memory, read in place. */
BT_SHA_TARGET __attribute__((always_inline)) static inline void
feed_shani(__m128i *s0, __m128i *s1, sha256_ctx *c, const uint8_t **q, size_t *pending,
           const uint8_t *p, size_t len)
{
    const uint8_t *at = *q;
    size_t u = *pending;
    if (at + u != p) { /* pending bytes in c->blk: join there */
        size_t take = 64 - u;
        if (len < take) {
            sha256_copy_narrow(c->blk + u, p, len);
            *pending = u + len;
            return;
        }
        sha256_copy_narrow(c->blk + u, p, take);
        block_shani(s0, s1, c->blk);
        at = p + take;
        u = len - take;
    }
    else {
        u += len;
    }
    while (u >= 64) {
        block_shani(s0, s1, at);
        at += 64;
        u -= 64;
    }
    *q = at;
    *pending = u;
}

/* The digest of a stream whose state is s0/s1 (ABEF/CDGH) and whose `pending` bytes
 * (< 64) are at q, n bytes fed in all: the pending bytes padded (FIPS 180-4, 5.1.1) in
 * registers, on a copy of the state; 64 bytes are read at q (those past the pending ones
 * are masked off).  lo, hi: the digest's bytes (big-endian words a..d, e..h). */
BT_SHA_TARGET __attribute__((always_inline)) static inline int
pad_shani(const uint8_t *q, size_t pending, uint64_t n, __m128i v[4], __m128i *bits)
{
    const __m128i idx = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m128i sixteen = _mm_set1_epi8(16), top = _mm_set1_epi8((char)0x80);
    const __m128i count = _mm_set1_epi8((char)pending);
    __m128i at = idx;
    for (int k = 0; k < 4; k++) {
        __m128i x = _mm_loadu_si128((const __m128i *)(q + 16 * k));
        __m128i keep = _mm_cmplt_epi8(at, count); /* indices < 64: signed compare is fine */
        v[k] = _mm_or_si128(_mm_and_si128(x, keep),
                            _mm_and_si128(_mm_cmpeq_epi8(at, count), top));
        at = _mm_add_epi8(at, sixteen);
    }
    *bits = _mm_set_epi64x((long long)__builtin_bswap64(n << 3), 0);
    if (pending < 56) {
        v[3] = _mm_or_si128(v[3], *bits);
        return 0;
    }
    return 1; /* a second block: zeros, then the bits */
}

/* ABEF/CDGH -> the digest's bytes (big-endian words a..d, e..h). */
BT_SHA_TARGET __attribute__((always_inline)) static inline void
digest_bytes_shani(__m128i d0, __m128i d1, __m128i *lo, __m128i *hi)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i feba = _mm_shuffle_epi32(d0, 0x1B);
    __m128i dchg = _mm_shuffle_epi32(d1, 0xB1);
    *lo = _mm_shuffle_epi8(_mm_blend_epi16(feba, dchg, 0xF0), bswap); /* a b c d */
    *hi = _mm_shuffle_epi8(_mm_alignr_epi8(dchg, feba, 8), bswap);   /* e f g h */
}

BT_SHA_TARGET __attribute__((always_inline)) static inline void
digest_shani(__m128i s0, __m128i s1, const uint8_t *q, size_t pending, uint64_t n,
             __m128i *lo, __m128i *hi)
{
    __m128i v[4], bits;
    int two = pad_shani(q, pending, n, v, &bits);
    __m128i d0 = s0, d1 = s1;
    block_shani_v(&d0, &d1, v[0], v[1], v[2], v[3]);
    if (two) {
        const __m128i zero = _mm_setzero_si128();
        block_shani_v(&d0, &d1, zero, zero, zero, bits);
    }
    digest_bytes_shani(d0, d1, lo, hi);
}

/* A line's hash as its tail (SHA256_TAIL_LEN bytes at tail) and at out. */
BT_SHA_TARGET __attribute__((always_inline)) static inline void
tail_shani(__m128i lo, __m128i hi, uint8_t *tail, uint8_t out[32])
{
    _mm_storeu_si128((__m128i *)out, lo);
    _mm_storeu_si128((__m128i *)(out + 16), hi);
    memcpy(tail, SHA256_TAIL_HEAD, SHA256_TAIL_HEAD_LEN);
    hex16_reg(lo, (char *)tail + SHA256_TAIL_HEAD_LEN);
    hex16_reg(hi, (char *)tail + SHA256_TAIL_HEAD_LEN + 32);
    memcpy(tail + SHA256_TAIL_HEAD_LEN + 64, "\"}\n", 3);
}

/* sha256_line with the state kept in registers from the body's first block to the
 * tail's last, the blocks read where the line is (and the stream's pending bytes
 * where the previous line ends, when `before` says they are there: no copy), the
 * digest's padding made in registers and its words turned into hex digits there. */
BT_SHA_TARGET static void
line_shani(sha256_ctx *c, uint8_t *body, size_t blen, uint8_t out[32], size_t before)
{
    __m128i s0, s1;
    load_state_shani(c->h, &s0, &s1);
    size_t pending = (size_t)(c->n & 63);
    const uint8_t *q = before >= pending ? body - pending : c->blk;
    uint64_t n = c->n + blen;
    feed_shani(&s0, &s1, c, &q, &pending, body, blen);

    __m128i lo, hi;
    digest_shani(s0, s1, q, pending, n, &lo, &hi);
    uint8_t *tail = body + blen;
    tail_shani(lo, hi, tail, out);
    feed_shani(&s0, &s1, c, &q, &pending, tail, SHA256_TAIL_LEN);
    if (q != c->blk) {
        /* the stream's pending bytes, for a copy of the context (q is in the line) */
        sha256_copy_narrow(c->blk, q, pending);
    }
    c->n = n + SHA256_TAIL_LEN;
    store_state_shani(c->h, s0, s1);
}

/* sha256_line4 with the state in registers from the body's first block to its last
 * (the body and its newline read where they are, the stream's pending bytes joined in
 * c->blk), the digest's padding made in registers and its words turned into hex digits
 * there. */
BT_SHA_TARGET static void
line4_shani(sha256_ctx *c, uint8_t *body, size_t blen, uint8_t out[32])
{
    __m128i s0, s1;
    load_state_shani(c->h, &s0, &s1);
    size_t pending = (size_t)(c->n & 63);
    const uint8_t *q = pending ? c->blk : body;
    uint64_t n = c->n + blen + 1;
    body[blen] = '\n'; /* in the tail's room: the body and its newline are fed as one */
    feed_shani(&s0, &s1, c, &q, &pending, body, blen + 1);
    __m128i lo, hi;
    digest_shani(s0, s1, q, pending, n, &lo, &hi);
    if (q != c->blk) { /* the pending bytes are in the line: keep them before the tail */
        sha256_copy_narrow(c->blk, q, pending);
    }
    c->n = n;
    store_state_shani(c->h, s0, s1);
    tail_shani(lo, hi, body + blen, out);
}

/* sha256_line4_defer with the SHA extensions: the previous line's digest (its padding
 * from c as it is on entry) compressed together with this body's first block (and a
 * second padding block with the body's second), two chains interleaved. */
BT_SHA_TARGET static void
line4_defer_shani(sha256_ctx *c, uint8_t *body, size_t blen, uint8_t *prev_tail,
                  uint8_t prev_out[32])
{
    __m128i s0, s1;
    load_state_shani(c->h, &s0, &s1);
    size_t pending = (size_t)(c->n & 63);
    uint64_t n = c->n + blen + 1;
    const uint8_t *p = body;
    size_t len = blen + 1;
    body[blen] = '\n'; /* in the tail's room: the body and its newline are fed as one */
    if (prev_tail != NULL) {
        __m128i v[4], bits, d0 = s0, d1 = s1, lo, hi;
        int two = pad_shani(c->blk, pending, c->n, v, &bits); /* (loaded before c->blk moves) */
        const __m128i zero = _mm_setzero_si128();
        if (pending + len >= 64) { /* the body completes a block: with the digest's */
            size_t take = 64 - pending;
            const uint8_t *first = p;
            if (pending) {
                sha256_copy_narrow(c->blk + pending, p, take);
                first = c->blk;
            }
            __m128i f[4];
            for (int k = 0; k < 4; k++) {
                f[k] = _mm_loadu_si128((const __m128i *)(first + 16 * k));
            }
            block_shani_x2(&d0, &d1, v, &s0, &s1, f);
            p += take;
            len -= take;
            pending = 0;
            if (two) {
                v[0] = v[1] = v[2] = zero;
                v[3] = bits;
                if (len >= 64) {
                    for (int k = 0; k < 4; k++) {
                        f[k] = _mm_loadu_si128((const __m128i *)(p + 16 * k));
                    }
                    block_shani_x2(&d0, &d1, v, &s0, &s1, f);
                    p += 64;
                    len -= 64;
                }
                else {
                    block_shani_v(&d0, &d1, zero, zero, zero, bits);
                }
            }
        }
        else {
            block_shani_v(&d0, &d1, v[0], v[1], v[2], v[3]);
            if (two) {
                block_shani_v(&d0, &d1, zero, zero, zero, bits);
            }
        }
        digest_bytes_shani(d0, d1, &lo, &hi);
        tail_shani(lo, hi, prev_tail, prev_out);
    }
    const uint8_t *q = pending ? c->blk : p;
    feed_shani(&s0, &s1, c, &q, &pending, p, len);
    if (q != c->blk) { /* the pending bytes are in the line: keep them before its tail */
        sha256_copy_narrow(c->blk, q, pending);
    }
    c->n = n;
    store_state_shani(c->h, s0, s1);
}

/* sha256_line4_settle with the SHA extensions. */
BT_SHA_TARGET static void
line4_settle_shani(const sha256_ctx *c, uint8_t *tail, uint8_t out[32])
{
    __m128i s0, s1, lo, hi;
    load_state_shani(c->h, &s0, &s1);
    digest_shani(s0, s1, c->blk, (size_t)(c->n & 63), c->n, &lo, &hi);
    tail_shani(lo, hi, tail, out);
}
#endif /* BT_X86 */

/* -- OpenSSL's compression, borrowed from the libcrypto hashlib links ------------- */

/* SHA256_Transform(ctx, block) compresses one block with OpenSSL's best code for the
 * CPU (vectorised where there are no SHA extensions); its SHA256_CTX starts with the
 * eight state words, which is all the block function reads and writes.  Found with
 * dlopen/dlsym at selection time, so nothing links against OpenSSL at build time. */
typedef void (*openssl_transform_fn)(void *ctx, const unsigned char *block);
static openssl_transform_fn openssl_transform;

typedef struct {
    uint32_t h[8];
    uint32_t nl, nh, data[16];
    unsigned int num, md_len;
} openssl_sha256_ctx;

static void
compress_openssl(uint32_t st[8], const uint8_t *p, size_t nblocks)
{
    openssl_sha256_ctx c;
    memcpy(c.h, st, sizeof c.h);
    while (nblocks--) {
        openssl_transform(&c, p);
        p += 64;
    }
    memcpy(st, c.h, sizeof c.h);
}

#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>

static int
find_openssl(void)
{
    static const char *const names[] = {"libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.so",
                                        "libcrypto.3.dylib", "libcrypto.dylib"};
    if (openssl_transform != NULL) {
        return 1;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        void *lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL); /* never closed: process-wide */
        if (lib == NULL) {
            continue;
        }
        openssl_transform_fn f = (openssl_transform_fn)(uintptr_t)dlsym(lib, "SHA256_Transform");
        if (f != NULL) {
            openssl_transform = f;
            return 1;
        }
    }
    return 0;
}
#else
static int
find_openssl(void)
{
    return 0;
}
#endif

/* -- a whole line ------------------------------------------------------------------- */

void
sha256_tail(const uint8_t digest[32], uint8_t *tail)
{
    memcpy(tail, SHA256_TAIL_HEAD, SHA256_TAIL_HEAD_LEN);
    hex32(digest, (char *)tail + SHA256_TAIL_HEAD_LEN);
    memcpy(tail + SHA256_TAIL_HEAD_LEN + 64, "\"}\n", 3);
}

void
sha256_line_generic(sha256_ctx *c, uint8_t *body, size_t blen, uint8_t out[32], size_t before)
{
    (void)before;
    sha256_update(c, body, blen);
    sha256_digest(c, out);
    sha256_tail(out, body + blen);
    sha256_update(c, body + blen, SHA256_TAIL_LEN);
}

static void
line4_composed(sha256_ctx *c, uint8_t *body, size_t blen, uint8_t out[32],
               sha256_compress_fn compress)
{
    body[blen] = '\n'; /* in the tail's room: the body and its newline are fed as one */
    sha256_update_with(c, body, blen + 1, compress);
    sha256_digest_with(c, out, compress);
    sha256_tail(out, body + blen);
}

void
sha256_line4_generic(sha256_ctx *c, uint8_t *body, size_t blen, uint8_t out[32])
{
    line4_composed(c, body, blen, out, sha256_compress);
}

static void
line4_defer_composed(sha256_ctx *c, uint8_t *body, size_t blen, uint8_t *prev_tail,
                     uint8_t prev_out[32], sha256_compress_fn compress)
{
    if (prev_tail != NULL) {
        sha256_digest_with(c, prev_out, compress);
        sha256_tail(prev_out, prev_tail);
    }
    body[blen] = '\n';
    sha256_update_with(c, body, blen + 1, compress);
}

void
sha256_line4_defer_generic(sha256_ctx *c, uint8_t *body, size_t blen, uint8_t *prev_tail,
                           uint8_t prev_out[32])
{
    line4_defer_composed(c, body, blen, prev_tail, prev_out, sha256_compress);
}

void
sha256_line4_settle_generic(const sha256_ctx *c, uint8_t *tail, uint8_t out[32])
{
    sha256_digest(c, out);
    sha256_tail(out, tail);
}

/* -- the choice ---------------------------------------------------------------------- */

sha256_compress_fn sha256_compress = sha256_compress_portable;
sha256_line_fn sha256_line = sha256_line_generic;
sha256_line4_fn sha256_line4 = sha256_line4_generic;
sha256_line4_defer_fn sha256_line4_defer = sha256_line4_defer_generic;
sha256_line4_settle_fn sha256_line4_settle = sha256_line4_settle_generic;

int
sha256_line4_named(const char *name, int fused, sha256_ctx *c, uint8_t *body, size_t blen,
                   uint8_t out[32])
{
    sha256_compress_fn compress;
    if (!sha256_compress_named(name, &compress)) {
        return 0;
    }
    if (!fused) {
        line4_composed(c, body, blen, out, compress);
        return 1;
    }
#ifdef BT_X86
    if (compress == compress_shani) {
        line4_shani(c, body, blen, out);
        return 1;
    }
#endif
    return 0;
}

int
sha256_line4_defer_named(const char *name, int fused, sha256_ctx *c, uint8_t *body, size_t blen,
                         uint8_t *prev_tail, uint8_t prev_out[32])
{
    sha256_compress_fn compress;
    if (!sha256_compress_named(name, &compress)) {
        return 0;
    }
    if (!fused && body == NULL) {
        sha256_digest_with(c, prev_out, compress);
        sha256_tail(prev_out, prev_tail);
        return 1;
    }
    if (!fused) {
        line4_defer_composed(c, body, blen, prev_tail, prev_out, compress);
        return 1;
    }
#ifdef BT_X86
    if (compress == compress_shani) {
        if (body == NULL) {
            line4_settle_shani(c, prev_tail, prev_out);
        }
        else {
            line4_defer_shani(c, body, blen, prev_tail, prev_out);
        }
        return 1;
    }
#endif
    return 0;
}

int
sha256_compress_named(const char *name, sha256_compress_fn *out)
{
    if (strcmp(name, "portable") == 0) {
        *out = sha256_compress_portable;
        return 1;
    }
    if (strcmp(name, "openssl") == 0) {
        if (!find_openssl()) {
            return 0;
        }
        *out = compress_openssl;
        return 1;
    }
#ifdef BT_X86
    if (strcmp(name, "sha-ni") == 0 && cpu_has_sha_extensions()) {
        *out = compress_shani;
        return 1;
    }
#endif
    return 0;
}

const char *
sha256_select(const char *force)
{
    static const char *const order[] = {"sha-ni", "openssl", "portable"};
    sha256_compress_fn chosen = sha256_compress_portable;
    const char *name = "portable";
    if (force != NULL && force[0] != '\0' && sha256_compress_named(force, &chosen)) {
        for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
            if (strcmp(order[i], force) == 0) {
                name = order[i];
            }
        }
    } else {
        /* The SHA extensions (ours: 2-3x faster than OpenSSL through hashlib at trace
         * line sizes), else OpenSSL's vectorised code (1.3-2.6x faster than our portable
         * C on CPUs without them), else the portable C: docs/PERFORMANCE.md. */
        for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
            if (sha256_compress_named(order[i], &chosen)) {
                name = order[i];
                break;
            }
        }
    }
    sha256_line_fn line = sha256_line_generic;
    sha256_line4_fn line4 = sha256_line4_generic;
    sha256_line4_defer_fn defer = sha256_line4_defer_generic;
    sha256_line4_settle_fn settle = sha256_line4_settle_generic;
#ifdef BT_X86
    if (chosen == compress_shani) {
        line = line_shani;
        line4 = line4_shani;
        defer = line4_defer_shani;
        settle = line4_settle_shani;
    }
#endif
    /* every interpreter that loads the module chooses the same one */
    __atomic_store_n(&sha256_compress, chosen, __ATOMIC_RELAXED);
    __atomic_store_n(&sha256_line, line, __ATOMIC_RELAXED);
    __atomic_store_n(&sha256_line4, line4, __ATOMIC_RELAXED);
    __atomic_store_n(&sha256_line4_defer, defer, __ATOMIC_RELAXED);
    __atomic_store_n(&sha256_line4_settle, settle, __ATOMIC_RELAXED);
    return name;
}

const char *
sha256_select_from_env(void)
{
    const char *force = getenv("BLOCKTRACE_SHA256");
    const char *portable = getenv("BLOCKTRACE_SHA_PORTABLE");
    if ((force == NULL || force[0] == '\0') && portable != NULL && portable[0] != '\0'
        && strcmp(portable, "0") != 0) {
        force = "portable";
    }
    return sha256_select(force);
}

void
sha256_once(const uint8_t *p, size_t len, uint8_t out[32])
{
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, p, len);
    sha256_digest(&c, out);
}
