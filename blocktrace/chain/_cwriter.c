/* blocktrace.chain._cwriter: the version-2 line writer in C (docs/FORMAT.md).
 *
 * Same interface and same bytes as blocktrace.chain.writer.PyLineWriter (the
 * reference): seals lines per "The hash chain" (one SHA-256 stream per leaf,
 * started with 0x00 and fed the leaf's lines as written; a leaf's first line
 * and the summary link as SHA-256(0x02 || previous hash || body)), buffers
 * them, and keeps the RFC 9162 Merkle tree of the leaves as the usual stack of
 * perfect-subtree hashes.  SHA-256 (FIPS 180-4) is our own: portable C, and on
 * x86-64 the SHA extensions when CPUID says they are there.
 *
 * Atomicity: between starting a line and having it buffered with the chain,
 * stream and tree advanced, no Python code runs.  The only Python code the
 * writer runs is `write` (in a flush, before a line is added), `slow` and
 * `on_leaf`.  Everything a line needs (buffer room, the pieces of a site) is
 * secured before that point; after it nothing can fail.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define BT_X86 1
#endif

/* ------------------------------------------------------------------------ */
/* SHA-256                                                                   */
/* ------------------------------------------------------------------------ */

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

static const uint32_t H256[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

/* A SHA-256 compression function: nblocks 64-byte blocks into the 8 state words. */
typedef void (*compress_fn)(uint32_t *st, const uint8_t *p, size_t nblocks);

static inline uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

static inline uint32_t load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void store_be32(uint8_t *p, uint32_t v)
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

static void compress_portable(uint32_t st[8], const uint8_t *p, size_t nblocks)
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

#define BT_RND4(wv, r)                                                           \
    do {                                                                         \
        __m128i m_ = _mm_add_epi32((wv), _mm_loadu_si128((const __m128i *)&K256[4 * (r)])); \
        s1 = _mm_sha256rnds2_epu32(s1, s0, m_);                                  \
        m_ = _mm_shuffle_epi32(m_, 0x0E);                                        \
        s0 = _mm_sha256rnds2_epu32(s0, s1, m_);                                  \
    } while (0)

/* a = W[t-16..t-13] becomes W[t..t+3]; b, c, d are the next three groups. */
#define BT_SCHED(a, b, c, d)                                                     \
    (a) = _mm_sha256msg2_epu32(                                                  \
        _mm_add_epi32(_mm_sha256msg1_epu32((a), (b)), _mm_alignr_epi8((d), (c), 4)), (d))

BT_SHA_TARGET
static void compress_shani(uint32_t st[8], const uint8_t *p, size_t nblocks)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i dcba = _mm_loadu_si128((const __m128i *)&st[0]);
    __m128i hgfe = _mm_loadu_si128((const __m128i *)&st[4]);
    __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1);
    __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    __m128i s0 = _mm_alignr_epi8(cdab, efgh, 8);     /* ABEF */
    __m128i s1 = _mm_blend_epi16(efgh, cdab, 0xF0);  /* CDGH */
    while (nblocks--) {
        __m128i save0 = s0, save1 = s1;
        __m128i w0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 0)), bswap);
        __m128i w1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16)), bswap);
        __m128i w2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 32)), bswap);
        __m128i w3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 48)), bswap);
        BT_RND4(w0, 0);
        BT_RND4(w1, 1);
        BT_RND4(w2, 2);
        BT_RND4(w3, 3);
        BT_SCHED(w0, w1, w2, w3); BT_RND4(w0, 4);
        BT_SCHED(w1, w2, w3, w0); BT_RND4(w1, 5);
        BT_SCHED(w2, w3, w0, w1); BT_RND4(w2, 6);
        BT_SCHED(w3, w0, w1, w2); BT_RND4(w3, 7);
        BT_SCHED(w0, w1, w2, w3); BT_RND4(w0, 8);
        BT_SCHED(w1, w2, w3, w0); BT_RND4(w1, 9);
        BT_SCHED(w2, w3, w0, w1); BT_RND4(w2, 10);
        BT_SCHED(w3, w0, w1, w2); BT_RND4(w3, 11);
        BT_SCHED(w0, w1, w2, w3); BT_RND4(w0, 12);
        BT_SCHED(w1, w2, w3, w0); BT_RND4(w1, 13);
        BT_SCHED(w2, w3, w0, w1); BT_RND4(w2, 14);
        BT_SCHED(w3, w0, w1, w2); BT_RND4(w3, 15);
        s0 = _mm_add_epi32(s0, save0);
        s1 = _mm_add_epi32(s1, save1);
        p += 64;
    }
    __m128i feba = _mm_shuffle_epi32(s0, 0x1B);
    __m128i dchg = _mm_shuffle_epi32(s1, 0xB1);
    dcba = _mm_blend_epi16(feba, dchg, 0xF0);
    hgfe = _mm_alignr_epi8(dchg, feba, 8);
    _mm_storeu_si128((__m128i *)&st[0], dcba);
    _mm_storeu_si128((__m128i *)&st[4], hgfe);
}

static int cpu_has_shani(void)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    if (!(c & (1u << 19)) || !(c & (1u << 9)))  /* SSE4.1, SSSE3 */
        return 0;
    if (__get_cpuid_max(0, NULL) < 7)
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b >> 29) & 1;  /* SHA */
}
#endif /* BT_X86 */

static compress_fn compress = compress_portable;

/* The state of a SHA-256 hash (padding and buffering: FIPS 180-4, 5.1.1). */
typedef struct {
    uint32_t h[8];
    uint64_t n;       /* bytes fed so far */
    uint8_t blk[64];  /* the first n % 64 bytes are pending */
} sha_ctx;

static inline void sha_init(sha_ctx *c)
{
    memcpy(c->h, H256, sizeof c->h);
    c->n = 0;
}

static inline void md_update(sha_ctx *c, compress_fn compress, const uint8_t *p, size_t len)
{
    size_t used = (size_t)(c->n & 63);
    c->n += len;
    if (used) {
        size_t take = 64 - used;
        if (len < take) {
            memcpy(c->blk + used, p, len);
            return;
        }
        memcpy(c->blk + used, p, take);
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
    if (len)
        memcpy(c->blk, p, len);
}

static void sha_update(sha_ctx *c, const uint8_t *p, size_t len)
{
    md_update(c, compress, p, len);
}

static inline void store_be64(uint8_t *p, uint64_t v)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
    memcpy(p, &v, 8);  /* one store, so the compression's loads get it forwarded */
#else
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
#endif
}

/* The final state words (padded) of what `c` has been fed, in h; `c` itself
 * is left as it was. */
static inline void md_final(const sha_ctx *c, compress_fn compress, uint32_t h[8])
{
    uint8_t blk[128];
    size_t used = (size_t)(c->n & 63);
    memcpy(h, c->h, 8 * sizeof h[0]);
    memset(blk, 0, sizeof blk);
    memcpy(blk, c->blk, used);
    blk[used] = 0x80;
    size_t total = used < 56 ? 64 : 128;
    store_be64(blk + total - 8, c->n << 3);
    compress(h, blk, total >> 6);
}

/* The digest of what `c` has been fed; `c` itself is left as it was. */
static void sha_digest(const sha_ctx *c, uint8_t out[32])
{
    uint32_t h[8];
    md_final(c, compress, h);
    for (int i = 0; i < 8; i++)
        store_be32(out + 4 * i, h[i]);
}

static void sha256_once(const uint8_t *p, size_t len, uint8_t out[32])
{
    sha_ctx c;
    sha_init(&c);
    sha_update(&c, p, len);
    sha_digest(&c, out);
}

static void node_hash(const uint8_t left[32], const uint8_t right[32], uint8_t out[32])
{
    uint8_t in[65];
    in[0] = 0x01;
    memcpy(in + 1, left, 32);
    memcpy(in + 33, right, 32);
    sha256_once(in, sizeof in, out);
}

static const char HEXDIGITS[] = "0123456789abcdef";
static char HEXPAIRS[512];  /* byte b -> its two lowercase hex digits at 2b */

static void hex32(const uint8_t d[32], char *out)
{
    for (int i = 0; i < 32; i++)
        memcpy(out + 2 * i, HEXPAIRS + 2 * d[i], 2);
}

/* ------------------------------------------------------------------------ */
/* The writer                                                                */
/* ------------------------------------------------------------------------ */

#define TAIL_HEAD ",\"hash\":\""
#define TAIL_HEAD_LEN 9
#define TAIL_LEN (TAIL_HEAD_LEN + 64 + 3) /* ,"hash":"<64 hex>"}\n */
#define MID "\",\"gasCost\":\"0x1\",\"depth\":"
#define MID_LEN (sizeof(MID) - 1)

static const uint8_t DOMAIN[] = "blocktrace-chain/2\n";
static sha_ctx FRESH_STREAM;  /* fed 0x00: a leaf stream before its first line */
static uint8_t H0[32];
static uint8_t EMPTY_ROOT[32];

typedef struct {
    uintptr_t key;
    PyObject *prefix;  /* bytes */
    PyObject *suffix;  /* bytes */
    PyObject *keep;    /* NULL: free slot */
} site_t;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *write;
    PyObject *slow;     /* NULL: none */
    PyObject *on_leaf;  /* NULL: none */
    char *buf;
    size_t len, cap, limit;
    int flushing, done;
    uint64_t per_leaf, in_leaf, lines, tree_size;
    uint8_t prev[32];
    sha_ctx stream;
    int depth;              /* subtree hashes on the stack */
    uint8_t stack[64][32];  /* one per set bit of tree_size, largest first */
    site_t *sites;
    size_t site_mask, site_count;
} Writer;

static PyObject *str_gas, *str_depth, *str_characters_written;

/* -- sites ---------------------------------------------------------------- */

static inline size_t site_slot(uintptr_t key, size_t mask)
{
    return (size_t)(((uint64_t)key >> 4) * 0x9E3779B97F4A7C15ULL >> 20) & mask;
}

static inline site_t *site_find(Writer *w, uintptr_t key)
{
    site_t *tab = w->sites;
    if (tab == NULL)
        return NULL;
    size_t mask = w->site_mask, i = site_slot(key, mask);
    while (tab[i].keep != NULL) {
        if (tab[i].key == key)
            return &tab[i];
        i = (i + 1) & mask;
    }
    return NULL;
}

/* Room for one more site; no Python code runs. */
static int sites_reserve(Writer *w)
{
    size_t cap = w->sites ? w->site_mask + 1 : 0;
    if ((w->site_count + 1) * 2 <= cap)
        return 0;
    size_t ncap = cap ? cap * 2 : 64;
    site_t *tab = PyMem_Calloc(ncap, sizeof(site_t));
    if (tab == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < cap; i++) {
        site_t *s = &w->sites[i];
        if (s->keep == NULL)
            continue;
        size_t j = site_slot(s->key, ncap - 1);
        while (tab[j].keep != NULL)
            j = (j + 1) & (ncap - 1);
        tab[j] = *s;
    }
    PyMem_Free(w->sites);
    w->sites = tab;
    w->site_mask = ncap - 1;
    return 0;
}

/* Empty the table first, then drop the references (which may run code). */
static void sites_clear(Writer *w)
{
    site_t *tab = w->sites;
    size_t cap = tab ? w->site_mask + 1 : 0;
    w->sites = NULL;
    w->site_mask = 0;
    w->site_count = 0;
    for (size_t i = 0; i < cap; i++) {
        if (tab[i].keep != NULL) {
            Py_DECREF(tab[i].prefix);
            Py_DECREF(tab[i].suffix);
            Py_DECREF(tab[i].keep);
        }
    }
    PyMem_Free(tab);
}

/* -- buffer and flush ----------------------------------------------------- */

/* `write` raised: it took nothing, unless the exception says how much in
 * `characters_written` (BlockingIOError's convention), 0 < it <= n. */
static void drop_written_on_error(Writer *w, size_t n)
{
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *cw = PyObject_GetAttr(exc, str_characters_written);
    if (cw == NULL) {
        PyErr_Clear();
    } else {
        if (PyLong_Check(cw)) {
            Py_ssize_t k = PyLong_AsSsize_t(cw);
            if (k == -1 && PyErr_Occurred())
                PyErr_Clear();
            else if (k > 0 && (size_t)k <= n) {
                memmove(w->buf, w->buf + k, w->len - (size_t)k);
                w->len -= (size_t)k;
            }
        }
        Py_DECREF(cw);
    }
    PyErr_SetRaisedException(exc);
}

/* Hand every buffered byte to `write`.  Not re-entrant: a nested call (from
 * code that `write` ran) returns at once, and lines added meanwhile are
 * appended behind the bytes being written.  On an exception the unwritten
 * bytes stay buffered. */
static int writer_flush_impl(Writer *w)
{
    if (w->flushing)
        return 0;
    w->flushing = 1;
    while (w->len > 0) {
        size_t n = w->len;
        PyObject *chunk = PyBytes_FromStringAndSize(w->buf, (Py_ssize_t)n);
        if (chunk == NULL)
            goto fail;
        PyObject *res = PyObject_CallOneArg(w->write, chunk);
        Py_DECREF(chunk);
        if (res == NULL) {
            drop_written_on_error(w, n);
            goto fail;
        }
        size_t taken = n;
        if (PyLong_Check(res)) {
            Py_ssize_t k = PyLong_AsSsize_t(res);
            if (k == -1 && PyErr_Occurred())
                PyErr_Clear();  /* too big for a count: everything was taken */
            else if (k >= 0 && (size_t)k < n)
                taken = (size_t)k;
        }
        Py_DECREF(res);
        if (taken == 0) {  /* would loop for ever: a stream that takes nothing is broken */
            PyErr_SetString(PyExc_OSError, "the trace's write() took no bytes");
            goto fail;
        }
        /* Lines a nested call added went behind the chunk: drop only what was
         * written, from the front. */
        memmove(w->buf, w->buf + taken, w->len - taken);
        w->len -= taken;
    }
    w->flushing = 0;
    return 0;
fail:
    w->flushing = 0;
    return -1;
}

static int buf_reserve(Writer *w, size_t need)
{
    if (need <= w->cap)
        return 0;
    size_t ncap = w->cap ? w->cap : 256;
    while (ncap < need) {
        if (ncap > ((size_t)PY_SSIZE_T_MAX) / 2) {
            ncap = need;
            break;
        }
        ncap *= 2;
    }
    char *nb = PyMem_Realloc(w->buf, ncap);
    if (nb == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    w->buf = nb;
    w->cap = ncap;
    return 0;
}

static int check_open(Writer *w)
{
    if (w->done) {
        PyErr_SetString(PyExc_ValueError, "the trace is sealed: no line follows the summary");
        return -1;
    }
    return 0;
}

/* Make room for a line of `total` bytes: flush first when it would not fit
 * (this runs `write`, so Python code), then grow the buffer.  After it
 * returns 0 nothing may fail or run Python code until the line is sealed. */
static int prepare(Writer *w, size_t total)
{
    if (check_open(w) < 0)
        return -1;
    if (w->len > 0 && w->len + total > w->limit) {
        if (writer_flush_impl(w) < 0)
            return -1;
        if (check_open(w) < 0)  /* sealed by code the flush ran */
            return -1;
    }
    if (total > PY_SSIZE_T_MAX - w->len) {
        PyErr_NoMemory();
        return -1;
    }
    return buf_reserve(w, w->len + total);
}

/* -- sealing -------------------------------------------------------------- */

/* The body of `blen` bytes is in the buffer at buf + len, with room behind it
 * for the tail.  Hash it, add the tail, advance the chain.  Cannot fail. */
static void commit(Writer *w, size_t blen, int last)
{
    uint8_t *body = (uint8_t *)w->buf + w->len;
    uint8_t digest[32];
    if (last || w->in_leaf == 0) {
        sha_ctx link;
        uint8_t head[33];
        head[0] = 0x02;
        memcpy(head + 1, w->prev, 32);
        sha_init(&link);
        sha_update(&link, head, sizeof head);
        sha_update(&link, body, blen);
        sha_digest(&link, digest);
        if (!last)
            sha_update(&w->stream, body, blen);
    } else {
        sha_update(&w->stream, body, blen);
        sha_digest(&w->stream, digest);
    }
    char *tail = (char *)body + blen;
    memcpy(tail, TAIL_HEAD, TAIL_HEAD_LEN);
    hex32(digest, tail + TAIL_HEAD_LEN);
    tail[TAIL_HEAD_LEN + 64] = '"';
    tail[TAIL_HEAD_LEN + 65] = '}';
    tail[TAIL_HEAD_LEN + 66] = '\n';
    memcpy(w->prev, digest, 32);
    w->len += blen + TAIL_LEN;
    w->lines++;
    if (last) {
        w->done = 1;
    } else {
        sha_update(&w->stream, (const uint8_t *)tail, TAIL_LEN);
        w->in_leaf++;
    }
}

/* The leaf stream's digest is the leaf hash: into the tree, restart.  Cannot fail. */
static void finish_leaf(Writer *w)
{
    uint8_t h[32];
    sha_digest(&w->stream, h);
    uint64_t n = w->tree_size;
    while (n & 1) {
        w->depth--;
        node_hash(w->stack[w->depth], h, h);
        n >>= 1;
    }
    memcpy(w->stack[w->depth], h, 32);
    w->depth++;
    w->tree_size++;
    w->stream = FRESH_STREAM;
    w->in_leaf = 0;
}

static int call_on_leaf(Writer *w)
{
    if (w->on_leaf == NULL)
        return 0;
    PyObject *r = PyObject_CallNoArgs(w->on_leaf);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* After a line is committed: complete the leaf if it is full. */
static PyObject *after_line(Writer *w)
{
    if (w->per_leaf && w->in_leaf == w->per_leaf) {
        finish_leaf(w);
        if (call_on_leaf(w) < 0)
            return NULL;
    }
    Py_RETURN_NONE;
}

static int get_body(PyObject *arg, Py_buffer *view)
{
    if (PyObject_GetBuffer(arg, view, PyBUF_SIMPLE) < 0)
        return -1;
    if (memchr(view->buf, '\n', (size_t)view->len) != NULL) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "a line body cannot contain a newline");
        return -1;
    }
    return 0;
}

static PyObject *writer_line(Writer *w, PyObject *arg)
{
    Py_buffer view;
    if (check_open(w) < 0 || get_body(arg, &view) < 0)
        return NULL;
    size_t blen = (size_t)view.len;
    /* The buffer export keeps a bytearray from resizing while `write` runs. */
    if (prepare(w, blen + TAIL_LEN) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    memcpy(w->buf + w->len, view.buf, blen);
    commit(w, blen, 0);
    PyBuffer_Release(&view);
    return after_line(w);
}

static int close_leaf_impl(Writer *w)
{
    if (w->per_leaf && w->in_leaf) {
        finish_leaf(w);
        return call_on_leaf(w);
    }
    return 0;
}

static PyObject *writer_summary(Writer *w, PyObject *arg)
{
    Py_buffer view;
    if (check_open(w) < 0 || get_body(arg, &view) < 0)
        return NULL;
    size_t blen = (size_t)view.len;
    if (close_leaf_impl(w) < 0 || prepare(w, blen + TAIL_LEN) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    memcpy(w->buf + w->len, view.buf, blen);
    commit(w, blen, 1);
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

static PyObject *writer_close_leaf(Writer *w, PyObject *Py_UNUSED(ignored))
{
    if (close_leaf_impl(w) < 0)  /* after the summary there is no partial leaf */
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *writer_flush(Writer *w, PyObject *Py_UNUSED(ignored))
{
    if (writer_flush_impl(w) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *writer_root(Writer *w, PyObject *Py_UNUSED(ignored))
{
    uint8_t r[32];
    if (w->depth == 0) {
        memcpy(r, EMPTY_ROOT, 32);
    } else {
        memcpy(r, w->stack[w->depth - 1], 32);
        for (int i = w->depth - 2; i >= 0; i--)
            node_hash(w->stack[i], r, r);
    }
    return PyBytes_FromStringAndSize((const char *)r, 32);
}

static PyObject *writer_add_site(Writer *w, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "add_site() takes 4 arguments (%zd given)", nargs);
        return NULL;
    }
    if (!PyLong_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "add_site(): key must be an int (an id())");
        return NULL;
    }
    if (!PyBytes_Check(args[1]) || !PyBytes_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "add_site(): prefix and suffix must be bytes");
        return NULL;
    }
    if (memchr(PyBytes_AS_STRING(args[1]), '\n', (size_t)PyBytes_GET_SIZE(args[1])) ||
        memchr(PyBytes_AS_STRING(args[2]), '\n', (size_t)PyBytes_GET_SIZE(args[2]))) {
        PyErr_SetString(PyExc_ValueError, "add_site(): a line cannot contain a newline");
        return NULL;
    }
    unsigned long long k = PyLong_AsUnsignedLongLong(args[0]);
    if ((k == (unsigned long long)-1 && PyErr_Occurred()) || k > (unsigned long long)UINTPTR_MAX) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "add_site(): key must be an id(), an address");
        return NULL;
    }
    uintptr_t key = (uintptr_t)k;
    site_t *s = site_find(w, key);
    if (s != NULL) {  /* replace: store the new pieces first, then drop the old */
        PyObject *op = s->prefix, *os = s->suffix, *ok = s->keep;
        s->prefix = Py_NewRef(args[1]);
        s->suffix = Py_NewRef(args[2]);
        s->keep = Py_NewRef(args[3]);
        Py_DECREF(op);
        Py_DECREF(os);
        Py_DECREF(ok);
        Py_RETURN_NONE;
    }
    if (sites_reserve(w) < 0)
        return NULL;
    size_t i = site_slot(key, w->site_mask);
    while (w->sites[i].keep != NULL)
        i = (i + 1) & w->site_mask;
    w->sites[i].key = key;
    w->sites[i].prefix = Py_NewRef(args[1]);
    w->sites[i].suffix = Py_NewRef(args[2]);
    w->sites[i].keep = Py_NewRef(args[3]);
    w->site_count++;
    Py_RETURN_NONE;
}

static PyObject *writer_clear_sites(Writer *w, PyObject *Py_UNUSED(ignored))
{
    sites_clear(w);
    Py_RETURN_NONE;
}

/* -- the per-instruction path ---------------------------------------------- */

static PyObject *call_slow(Writer *w, PyObject *const *args)
{
    if (w->slow == NULL)
        Py_RETURN_NONE;
    PyObject *slow = Py_NewRef(w->slow);  /* the call may clear it */
    PyObject *r = PyObject_Vectorcall(slow, args, 2, NULL);
    Py_DECREF(slow);
    return r;
}

/* An exact int attribute of `vm` fitting a long long: 1; not one: 0; error: -1. */
static int read_int(PyObject *vm, PyObject *name, long long *out)
{
    PyObject *v = PyObject_GetAttr(vm, name);
    if (v == NULL)
        return -1;
    int ok = 0;
    if (PyLong_CheckExact(v)) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (x == -1 && PyErr_Occurred())
            PyErr_Clear();
        else if (!overflow) {
            *out = x;
            ok = 1;
        }
    }
    Py_DECREF(v);
    return ok;
}

static PyObject *writer_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames)
{
    Writer *w = (Writer *)self;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 2 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_SetString(PyExc_TypeError, "LineWriter() takes exactly 2 positional arguments (vm, event)");
        return NULL;
    }
    if (check_open(w) < 0)
        return NULL;
    if (site_find(w, (uintptr_t)args[1]) == NULL)
        return call_slow(w, args);
    long long gas, depth;
    int r = read_int(args[0], str_gas, &gas);
    if (r == 1)
        r = read_int(args[0], str_depth, &depth);
    if (r < 0)
        return NULL;
    /* Reading attributes may have run code: look the site up again. */
    site_t *s = r ? site_find(w, (uintptr_t)args[1]) : NULL;
    if (s == NULL)
        return call_slow(w, args);

    size_t plen = (size_t)PyBytes_GET_SIZE(s->prefix), slen = (size_t)PyBytes_GET_SIZE(s->suffix);
    unsigned long long g = gas < 0 ? 0ULL - (unsigned long long)gas : (unsigned long long)gas;
    unsigned long long d = depth < 0 ? 0ULL - (unsigned long long)depth : (unsigned long long)depth;
    size_t glen = 1;
    for (unsigned long long x = g >> 4; x; x >>= 4)
        glen++;
    size_t dlen = 1;
    for (unsigned long long x = d / 10; x; x /= 10)
        dlen++;
    size_t blen = plen + (gas < 0) + glen + MID_LEN + (depth < 0) + dlen + slen;
    size_t total = blen + TAIL_LEN;

    /* The pieces are held over prepare(): its flush runs Python code, which
     * may drop the site.  From here on nothing runs until the line is sealed. */
    PyObject *pref = Py_NewRef(s->prefix), *suff = Py_NewRef(s->suffix);
    if (prepare(w, total) < 0) {
        Py_DECREF(pref);
        Py_DECREF(suff);
        return NULL;
    }
    char *o = w->buf + w->len;
    memcpy(o, PyBytes_AS_STRING(pref), plen);
    o += plen;
    if (gas < 0)
        *o++ = '-';
    for (size_t i = glen; i > 0; i--) {
        o[i - 1] = HEXDIGITS[g & 15];
        g >>= 4;
    }
    o += glen;
    memcpy(o, MID, MID_LEN);
    o += MID_LEN;
    if (depth < 0)
        *o++ = '-';
    for (size_t i = dlen; i > 0; i--) {
        o[i - 1] = (char)('0' + d % 10);
        d /= 10;
    }
    o += dlen;
    memcpy(o, PyBytes_AS_STRING(suff), slen);
    commit(w, blen, 0);
    Py_DECREF(pref);
    Py_DECREF(suff);
    return after_line(w);
}

/* -- the type --------------------------------------------------------------- */

static PyObject *writer_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"write", "buffer_size", "lines_per_leaf", "slow", "on_leaf", NULL};
    PyObject *write, *slow = Py_None, *on_leaf = Py_None;
    Py_ssize_t buffer_size = 65536, per_leaf = 16;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$nnOO:LineWriter", kwlist, &write,
                                     &buffer_size, &per_leaf, &slow, &on_leaf))
        return NULL;
    if (!PyCallable_Check(write)) {
        PyErr_SetString(PyExc_TypeError, "LineWriter(): write must be callable");
        return NULL;
    }
    if ((slow != Py_None && !PyCallable_Check(slow)) ||
        (on_leaf != Py_None && !PyCallable_Check(on_leaf))) {
        PyErr_SetString(PyExc_TypeError, "LineWriter(): slow and on_leaf must be callable or None");
        return NULL;
    }
    if (buffer_size < 1 || per_leaf < 0) {
        PyErr_SetString(PyExc_ValueError,
                        "buffer_size must be positive and lines_per_leaf not negative");
        return NULL;
    }
    Writer *w = (Writer *)type->tp_alloc(type, 0);
    if (w == NULL)
        return NULL;
    w->vectorcall = writer_vectorcall;
    w->write = Py_NewRef(write);
    w->slow = slow == Py_None ? NULL : Py_NewRef(slow);
    w->on_leaf = on_leaf == Py_None ? NULL : Py_NewRef(on_leaf);
    w->buf = NULL;
    w->len = w->cap = 0;
    w->limit = (size_t)buffer_size;
    w->flushing = w->done = 0;
    w->per_leaf = (uint64_t)per_leaf;
    w->in_leaf = w->lines = w->tree_size = 0;
    memcpy(w->prev, H0, 32);
    w->stream = FRESH_STREAM;
    w->depth = 0;
    w->sites = NULL;
    w->site_mask = w->site_count = 0;
    return (PyObject *)w;
}

static int writer_traverse(Writer *w, visitproc visit, void *arg)
{
    Py_VISIT(w->write);
    Py_VISIT(w->slow);
    Py_VISIT(w->on_leaf);
    if (w->sites != NULL) {
        for (size_t i = 0; i <= w->site_mask; i++) {
            if (w->sites[i].keep != NULL) {
                Py_VISIT(w->sites[i].prefix);
                Py_VISIT(w->sites[i].suffix);
                Py_VISIT(w->sites[i].keep);
            }
        }
    }
    return 0;
}

static int writer_clear(Writer *w)
{
    sites_clear(w);
    Py_CLEAR(w->slow);
    Py_CLEAR(w->on_leaf);
    Py_CLEAR(w->write);
    return 0;
}

static void writer_dealloc(Writer *w)
{
    PyObject_GC_UnTrack(w);
    writer_clear(w);
    PyMem_Free(w->buf);
    w->buf = NULL;
    Py_TYPE(w)->tp_free((PyObject *)w);
}

static PyObject *writer_get_head(Writer *w, void *Py_UNUSED(closure))
{
    char hex[64];
    hex32(w->prev, hex);
    return PyUnicode_FromStringAndSize(hex, 64);
}

static PyObject *writer_get_lines(Writer *w, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(w->lines);
}

static PyObject *writer_get_tree_size(Writer *w, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(w->tree_size);
}

static PyObject *writer_get_buffered(Writer *w, void *Py_UNUSED(closure))
{
    return PyLong_FromSize_t(w->len);
}

static PyGetSetDef writer_getset[] = {
    {"head", (getter)writer_get_head, NULL, "Hex of the last line's hash (of H_0 before any line).", NULL},
    {"lines", (getter)writer_get_lines, NULL, "Lines sealed so far (the summary included).", NULL},
    {"tree_size", (getter)writer_get_tree_size, NULL, "Leaves in the Merkle tree so far.", NULL},
    {"buffered", (getter)writer_get_buffered, NULL, "Bytes not yet handed to write.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef writer_methods[] = {
    {"line", (PyCFunction)writer_line, METH_O,
     "line(body)\n--\n\nSeal and buffer one line of the tree; body is the line up to its hash member."},
    {"summary", (PyCFunction)writer_summary, METH_O,
     "summary(body)\n--\n\nClose a partial leaf, then seal and buffer the summary line (link form, "
     "not in the tree); nothing may follow it."},
    {"close_leaf", (PyCFunction)writer_close_leaf, METH_NOARGS,
     "close_leaf()\n--\n\nEnd a partial leaf now (no-op if none)."},
    {"flush", (PyCFunction)writer_flush, METH_NOARGS,
     "flush()\n--\n\nHand every buffered byte to write (not re-entrantly)."},
    {"root", (PyCFunction)writer_root, METH_NOARGS,
     "root()\n--\n\nThe RFC 9162 root of the leaves so far (SHA-256 of b'' for none)."},
    {"add_site", (PyCFunction)(void (*)(void))writer_add_site, METH_FASTCALL,
     "add_site(key, prefix, suffix, keep)\n--\n\nThe pieces of an instruction site's op line, "
     "for events whose id() is key; keep (the event) is held so the id stays valid."},
    {"clear_sites", (PyCFunction)writer_clear_sites, METH_NOARGS,
     "clear_sites()\n--\n\nForget every site."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject WriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "blocktrace.chain._cwriter.LineWriter",
    .tp_basicsize = sizeof(Writer),
    .tp_dealloc = (destructor)writer_dealloc,
    .tp_vectorcall_offset = offsetof(Writer, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "LineWriter(write, *, buffer_size=65536, lines_per_leaf=16, slow=None, on_leaf=None)\n"
              "--\n\n"
              "Seal lines per docs/FORMAT.md (version 2), buffer them and hand them to write;\n"
              "keep the Merkle tree of the leaves.  Calling it with (vm, event) writes the op\n"
              "line of a site added with add_site, or returns slow(vm, event).",
    .tp_traverse = (traverseproc)writer_traverse,
    .tp_clear = (inquiry)writer_clear,
    .tp_methods = writer_methods,
    .tp_getset = writer_getset,
    .tp_new = writer_new,
};

/* -- the module -------------------------------------------------------------- */

static PyObject *mod_sha256(PyObject *Py_UNUSED(module), PyObject *arg)
{
    Py_buffer view;
    uint8_t out[32];
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (view.len >= 8192) {  /* the export pins the memory while the GIL is released */
        Py_BEGIN_ALLOW_THREADS
        sha256_once(view.buf, (size_t)view.len, out);
        Py_END_ALLOW_THREADS
    } else {
        sha256_once(view.buf, (size_t)view.len, out);
    }
    PyBuffer_Release(&view);
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

static PyMethodDef module_methods[] = {
    {"sha256", mod_sha256, METH_O,
     "sha256(data)\n--\n\nSHA-256 of a bytes-like object, with this module's implementation."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cwriter_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "blocktrace.chain._cwriter",
    .m_doc = "The version-2 line writer and SHA-256 in C (see blocktrace.chain.writer).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__cwriter(void)
{
    const char *impl = "portable";
#ifdef BT_X86
    const char *force = getenv("BLOCKTRACE_SHA_PORTABLE");
    int forced = force != NULL && force[0] != '\0' && strcmp(force, "0") != 0;
    if (!forced && cpu_has_shani()) {
        compress = compress_shani;
        impl = "sha-ni";
    }
#endif
    for (int b = 0; b < 256; b++) {
        HEXPAIRS[2 * b] = HEXDIGITS[b >> 4];
        HEXPAIRS[2 * b + 1] = HEXDIGITS[b & 15];
    }
    static const uint8_t zero = 0x00;
    sha_init(&FRESH_STREAM);
    sha_update(&FRESH_STREAM, &zero, 1);
    sha256_once(DOMAIN, sizeof DOMAIN - 1, H0);
    sha256_once(NULL, 0, EMPTY_ROOT);

    if (str_gas == NULL && (str_gas = PyUnicode_InternFromString("gas")) == NULL)
        return NULL;
    if (str_depth == NULL && (str_depth = PyUnicode_InternFromString("depth")) == NULL)
        return NULL;
    if (str_characters_written == NULL &&
        (str_characters_written = PyUnicode_InternFromString("characters_written")) == NULL)
        return NULL;
    if (PyType_Ready(&WriterType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&cwriter_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddStringConstant(m, "IMPLEMENTATION", impl) < 0 ||
        PyModule_AddObjectRef(m, "LineWriter", (PyObject *)&WriterType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
