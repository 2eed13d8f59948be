/* blocktrace.format._cscan: the chain check of blocktrace.format.reader at
 * hashing speed.
 *
 * ChainScan walks the complete lines of a buffer, recomputes each line's hash
 * by its format version's rules (blocktrace.format.rules is the reference:
 * ChainHasher for version 1, LeafChain for versions 2, 3 and 4), compares it with
 * the hash the line carries, checks cheaply that the line is a JSON object, and
 * keeps the leaf hashes for the Merkle tree.  It stops at the first line it
 * cannot settle alone -- the header is parsed by Python before, the summary's
 * members and every tampered line's answer are Python's
 * (blocktrace.format.fastcheck) -- so the answers are the Python walk's own.
 *
 * The well-formedness check here only ever says "a JSON object msgspec accepts"
 * or "not sure": anything unusual (whitespace outside strings, a float, a long
 * number, a control character, an escaped surrogate, deep nesting, bad UTF-8)
 * goes back to Python, which decides with msgspec as the pure walk does. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "columns.h"
#include "hex.h"
#include "linekinds.h"
#include "members.h"
#include "pyutil.h"
#include "scanapi.h"
#include "sha256.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#define BT_SSE2 1
#endif

/* Why scan() stopped; blocktrace/format/fastcheck.py names them. */
enum {
    STOP_END = 0,       /* no complete line left at pos */
    STOP_TOO_LONG = 1,  /* the line at pos is longer than max_line */
    STOP_CR = 2,        /* ends with a carriage return */
    STOP_NO_HASH = 3,   /* does not end with a well-formed hash member */
    STOP_UNSURE = 4,    /* the JSON check needs Python (nothing was fed) */
    STOP_MISMATCH = 5,  /* the hash does not match */
    STOP_MALFORMED = 6, /* hash matches, but Python said it is not an object */
    STOP_SUMMARY = 7,   /* a summary whose hash matches: Python reads it */
    STOP_STEP = 8,      /* index: whether this op line starts a step is Python's to say */
    STOP_DIGESTS = 9,   /* compact: the hashes of the line at pos are still to be given */
};

#define HASH_FIELD BT_HASH_MEMBER
#define HASH_FIELD_LEN BT_HASH_MEMBER_LEN
#define HASH_HEX_LEN BT_HASH_HEX_LEN
#define TAIL_LEN BT_HASH_TAIL_LEN /* ,"hash":"<64 hex>"} without the newline */
#define COMPACT_EXTRA (TAIL_LEN - 1) /* ,"hash":"<64 hex>"} less the } a compact line keeps */
static const uint8_t DOMAIN_V1[] = "blocktrace-chain/1\n";
static const uint8_t DOMAIN_V2[] = "blocktrace-chain/2\n";
static const uint8_t DOMAIN_V4[] = "blocktrace-chain/4\n";
#define DOMAIN_LEN 19
#define MAX_DEPTH 64

/* -- the cheap JSON check ------------------------------------------------------ */

/* The end of a string whose opening quote is just before p, or NULL when unsure. */
static const uint8_t *
json_string(const uint8_t *p, const uint8_t *end)
{
    while (p < end) {
#ifdef BT_SSE2
        /* 16 plain bytes at a time: none a quote, a backslash, below 0x20 or above 0x7f */
        while (end - p >= 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)p);
            __m128i special = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
                             _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))),
                _mm_cmplt_epi8(x, _mm_set1_epi8(0x20))); /* signed: 0x80-0xff too */
            int mask = _mm_movemask_epi8(special);
            if (mask) {
                p += __builtin_ctz((unsigned)mask);
                break;
            }
            p += 16;
        }
        if (p >= end) {
            break;
        }
#endif
        uint8_t c = *p;
        if (c == '"') {
            return p + 1;
        }
        if (c >= 0x20 && c < 0x80 && c != '\\') {
            p++;
            continue;
        }
        if (c == '\\') {
            if (p + 1 >= end) {
                return NULL;
            }
            uint8_t e = p[1];
            if (e == 'u') {
                if (p + 6 > end) {
                    return NULL;
                }
                unsigned v = 0;
                for (int i = 2; i < 6; i++) {
                    uint8_t h = p[i];
                    v <<= 4;
                    if (h >= '0' && h <= '9') {
                        v |= (unsigned)(h - '0');
                    } else if (h >= 'a' && h <= 'f') {
                        v |= (unsigned)(h - 'a' + 10);
                    } else if (h >= 'A' && h <= 'F') {
                        v |= (unsigned)(h - 'A' + 10);
                    } else {
                        return NULL;
                    }
                }
                if (v >= 0xD800 && v <= 0xDFFF) {
                    return NULL; /* surrogates: msgspec's rules, Python's answer */
                }
                p += 6;
                continue;
            }
            if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n'
                || e == 'r' || e == 't') {
                p += 2;
                continue;
            }
            return NULL;
        }
        if (c < 0x20) {
            return NULL;
        }
        /* UTF-8, strictly (what bytes.decode("utf-8") accepts) */
        Py_ssize_t left = end - p;
        if (c >= 0xC2 && c <= 0xDF) {
            if (left < 2 || (p[1] & 0xC0) != 0x80) {
                return NULL;
            }
            p += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (left < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80
                || (c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F)) {
                return NULL;
            }
            p += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (left < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80
                || (p[3] & 0xC0) != 0x80 || (c == 0xF0 && p[1] < 0x90)
                || (c == 0xF4 && p[1] > 0x8F)) {
                return NULL;
            }
            p += 4;
        } else {
            return NULL;
        }
    }
    return NULL;
}

/* 1 when [p, end) is a JSON object msgspec accepts, 0 when not sure. */
static int
plain_json_object(const uint8_t *p, const uint8_t *end)
{
    uint8_t kind[MAX_DEPTH];
    int depth = 0;
    if (p >= end || *p != '{') {
        return 0;
    }
value:
    if (p >= end) {
        return 0;
    }
    switch (*p) {
    case '{':
        if (depth == MAX_DEPTH) {
            return 0;
        }
        kind[depth++] = '{';
        p++;
        if (p < end && *p == '}') {
            p++;
            depth--;
            goto after;
        }
        goto key;
    case '[':
        if (depth == MAX_DEPTH) {
            return 0;
        }
        kind[depth++] = '[';
        p++;
        if (p < end && *p == ']') {
            p++;
            depth--;
            goto after;
        }
        goto value;
    case '"':
        p = json_string(p + 1, end);
        if (p == NULL) {
            return 0;
        }
        goto after;
    case 't':
        if (end - p < 4 || memcmp(p, "true", 4) != 0) {
            return 0;
        }
        p += 4;
        goto after;
    case 'f':
        if (end - p < 5 || memcmp(p, "false", 5) != 0) {
            return 0;
        }
        p += 5;
        goto after;
    case 'n':
        if (end - p < 4 || memcmp(p, "null", 4) != 0) {
            return 0;
        }
        p += 4;
        goto after;
    default: {
        /* integers of up to 18 digits only; fractions and exponents: Python */
        const uint8_t *start;
        if (*p == '-') {
            p++;
        }
        start = p;
        if (p >= end || *p < '0' || *p > '9') {
            return 0;
        }
        if (*p == '0') {
            p++;
        } else {
            while (p < end && *p >= '0' && *p <= '9') {
                p++;
            }
        }
        if (p - start > 18) {
            return 0;
        }
        goto after;
    }
    }
key:
    if (p >= end || *p != '"') {
        return 0;
    }
    p = json_string(p + 1, end);
    if (p == NULL || p >= end || *p != ':') {
        return 0;
    }
    p++;
    goto value;
after:
    if (depth == 0) {
        return p == end;
    }
    if (p >= end) {
        return 0;
    }
    if (*p == ',') {
        p++;
        if (kind[depth - 1] == '{') {
            goto key;
        }
        goto value;
    }
    if (*p == (kind[depth - 1] == '{' ? '}' : ']')) {
        p++;
        depth--;
        goto after;
    }
    return 0;
}

/* -- the scanner ----------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    int version;
    Py_ssize_t per_leaf;
    Py_ssize_t max_line;
    int want_leaves;
    int hashed; /* the hashes were put in by an Expander (compact frames): not rechecked */
    /* compact: the lines are compact lines (blocktrace.format.compact), each as its full
     * line less COMPACT_EXTRA bytes; their hashes, computed by the Expander, are given
     * with digests() (lines dg_first .. dg_first + dg_count - 1) */
    int compact;
    uint8_t *dg;
    size_t dg_cap;
    long long dg_first, dg_count;
    sha256_ctx running; /* version 1: the chain */
    uint8_t prev[32];   /* versions 2-4: the last line's hash */
    sha256_ctx stream;  /* the open leaf's stream (every version; version 4: once its
                           first line is fed, 0x00 || the hash before the leaf || ...) */
    Py_ssize_t in_leaf;
    long long lines;    /* the number of the last line that checked, 0 if none */
    char head[HASH_HEX_LEN];
    uint8_t *leaves;    /* leaf hashes not yet taken */
    size_t nleaves, cap;
    int failed;         /* out of memory */
    /* the index (blocktrace.format.index.IndexBuilder's bookkeeping), when every > 0 */
    long long every;
    unsigned long long offset;      /* uncompressed offset of the next line */
    unsigned long long last_offset; /* of the last line that checked */
    unsigned long long steps;
    uint64_t *cps;                  /* (offset, steps before, first step's line) triples */
    size_t ncps, cpcap;
    int waiting;                    /* the last checkpoint's first step is still to come */
    int last_plain;                 /* the last step is a plain op line */
    int decided;                    /* Python's answer for the line at pos: 0, 1 step, 2 not */
    const uint8_t *step;            /* the last step's line (newline included), or NULL */
    size_t step_len;
    uint8_t *step_own;              /* its copy once the caller's buffer goes */
    size_t step_cap;
    /* lines the caller's own parser read whole (known()): bit k for line known_first + k */
    uint8_t *known;
    size_t known_len, known_cap;
    long long known_first;
    int exact; /* scan_lines: the buffer from pos is one line (api_line) */
} ScanObject;

/* 1 when known() said line n is a JSON object msgspec accepts */
static inline int
is_known(const ScanObject *s, long long n)
{
    long long k = n - s->known_first;
    return k >= 0 && (unsigned long long)(k >> 3) < s->known_len
           && (s->known[k >> 3] >> (k & 7)) & 1;
}

static void
leaf_reset(ScanObject *s)
{
    static const uint8_t zero = 0x00;
    sha256_init(&s->stream);
    sha256_update(&s->stream, &zero, 1);
    s->in_leaf = 0;
}

static void
leaf_emit(ScanObject *s)
{
    if (s->want_leaves && !s->failed) {
        if (s->nleaves == s->cap) {
            size_t cap = s->cap ? 2 * s->cap : 1024;
            uint8_t *more = PyMem_RawRealloc(s->leaves, cap * 32);
            if (more == NULL) {
                s->failed = 1;
                return;
            }
            s->leaves = more;
            s->cap = cap;
        }
        if (s->version == 4) { /* the stream ended with its last line's newline */
            memcpy(s->leaves + 32 * s->nleaves, s->prev, 32);
        } else {
            sha256_digest(&s->stream, s->leaves + 32 * s->nleaves);
        }
        s->nleaves++;
    }
    leaf_reset(s);
}

/* LeafChain.close_leaf */
static void
close_leaf(ScanObject *s)
{
    if (s->in_leaf && s->per_leaf) {
        leaf_emit(s);
    }
}

/* SHA-256(0x02 || prev || body) */
static void
link_hash(const uint8_t prev[32], const uint8_t *body, size_t len, uint8_t out[32])
{
    static const uint8_t two = 0x02;
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, &two, 1);
    sha256_update(&c, prev, 32);
    sha256_update(&c, body, len);
    sha256_digest(&c, out);
}

/* The hash line [raw, raw + rawlen) (newline included; body its first
 * bodylen bytes) must carry, by the version's rules, feeding the state. */
static void
chain_line(ScanObject *s, const uint8_t *raw, size_t rawlen, size_t bodylen, int summary,
           uint8_t out[32])
{
    if (s->version == 1) {
        static const uint8_t close[2] = {'}', '\n'};
        sha256_update(&s->running, raw, bodylen);
        sha256_update(&s->running, close, 2);
        sha256_digest(&s->running, out);
        return;
    }
    if (summary && s->version == 2) { /* LeafChain.check_summary */
        close_leaf(s);
        link_hash(s->prev, raw, bodylen, out);
        memcpy(s->prev, out, 32);
        return;
    }
    if (s->version == 4) { /* LeafChain.check, version 4: the digits are never fed */
        static const uint8_t newline = '\n';
        if (s->in_leaf == 0) {
            sha256_update(&s->stream, s->prev, 32); /* after the 0x00 of leaf_reset */
        }
        sha256_update(&s->stream, raw, bodylen);
        sha256_update(&s->stream, &newline, 1);
        sha256_digest(&s->stream, out);
        memcpy(s->prev, out, 32);
        if (++s->in_leaf == s->per_leaf) {
            close_leaf(s);
        }
        return;
    }
    /* LeafChain.check */
    sha256_update(&s->stream, raw, bodylen);
    if (s->in_leaf == 0) {
        link_hash(s->prev, raw, bodylen, out);
    } else {
        sha256_digest(&s->stream, out);
    }
    sha256_update(&s->stream, raw + bodylen, rawlen - bodylen);
    memcpy(s->prev, out, 32);
    s->in_leaf++;
    if (s->in_leaf == s->per_leaf) {
        close_leaf(s);
    }
}

/* -- steps (blocktrace.format.index.StepCounter) ---------------------------------- */

static const uint8_t PLAIN_OP[] = "\"gasCost\":\"0x1\"";
#define PLAIN_OP_LEN 15
#define HEAD_SCAN 160

enum { F_GAS, F_EVENT, F_PC, F_DEPTH, F_CODE, F_THREAD, F_COUNT };
static const char *const FIELD_NAMES[F_COUNT] = {"gas", "event", "pc", "depth", "code", "thread"};

typedef struct {
    const uint8_t *at[F_COUNT]; /* the value's bytes; NULL: absent or null */
    size_t len[F_COUNT];
} Fields;

/* The end of the JSON value at p (not validated: the line is checked apart),
 * or NULL when it is not one whose bytes compare as its value does: only
 * strings without escapes, integers other than -0 and null are. *null is set
 * for null. */
static const uint8_t *
simple_value(const uint8_t *p, const uint8_t *end, int *null)
{
    *null = 0;
    if (p >= end) {
        return NULL;
    }
    if (*p == '"') {
        const uint8_t *q = p + 1;
        while (q < end && *q != '"') {
            if (*q == '\\') {
                return NULL;
            }
            q++;
        }
        return q < end ? q + 1 : NULL;
    }
    if (*p == 'n') {
        if (end - p >= 4 && memcmp(p, "null", 4) == 0) {
            *null = 1;
            return p + 4;
        }
        return NULL;
    }
    const uint8_t *q = p;
    if (*q == '-') {
        q++;
    }
    const uint8_t *digits = q;
    while (q < end && *q >= '0' && *q <= '9') {
        q++;
    }
    if (q == digits || (*digits == '0' && q - digits > 1) || (digits != p && *digits == '0')) {
        return NULL; /* no digits, a leading zero, or -0 */
    }
    if (q < end && (*q == '.' || *q == 'e' || *q == 'E')) {
        return NULL;
    }
    return q;
}

/* The end of any JSON value at p, skipped without judging it (strings with
 * their escapes, nesting by brackets outside strings), or NULL. */
static const uint8_t *
skip_value(const uint8_t *p, const uint8_t *end)
{
    int depth = 0;
    while (p < end) {
        uint8_t c = *p;
        if (c == '"') {
            p++;
            while (p < end && *p != '"') {
                p += *p == '\\' ? 2 : 1;
            }
            if (p >= end) {
                return NULL;
            }
            p++;
        } else if (c == '{' || c == '[') {
            depth++;
            p++;
        } else if (c == '}' || c == ']' || c == ',') {
            if (depth == 0) {
                return p;
            }
            depth -= c != ',';
            p++;
        } else {
            p++;
        }
    }
    return NULL;
}

/* The six members a step's merge looks at, from the top level of the object
 * [p, end); 0 when not sure (escaped or repeated keys, whitespace, a value of
 * those members that is not a plain string, integer or null). */
static int
step_fields(const uint8_t *p, const uint8_t *end, Fields *f)
{
    memset(f, 0, sizeof *f);
    unsigned seen = 0;
    if (p >= end || *p != '{') {
        return 0;
    }
    p++;
    if (p < end && *p == '}') {
        return 1;
    }
    for (;;) {
        if (p >= end || *p != '"') {
            return 0;
        }
        const uint8_t *key = ++p;
        while (p < end && *p != '"') {
            if (*p == '\\') {
                return 0;
            }
            p++;
        }
        if (p + 1 >= end || p[1] != ':') {
            return 0;
        }
        size_t klen = (size_t)(p - key);
        p += 2;
        int which = -1;
        for (int i = 0; i < F_COUNT; i++) {
            if (strlen(FIELD_NAMES[i]) == klen && memcmp(FIELD_NAMES[i], key, klen) == 0) {
                which = i;
                break;
            }
        }
        const uint8_t *after;
        if (which >= 0) {
            int null;
            if (seen & (1u << which)) {
                return 0;
            }
            seen |= 1u << which;
            after = simple_value(p, end, &null);
            if (after == NULL) {
                return 0;
            }
            if (!null) {
                f->at[which] = p;
                f->len[which] = (size_t)(after - p);
            }
        } else {
            after = skip_value(p, end);
            if (after == NULL) {
                return 0;
            }
        }
        p = after;
        if (p >= end) {
            return 0;
        }
        if (*p == '}') {
            return p + 1 == end;
        }
        if (*p != ',') {
            return 0;
        }
        p++;
    }
}

static int
same_field(const Fields *a, const Fields *b, int i)
{
    if (a->at[i] == NULL || b->at[i] == NULL) {
        return a->at[i] == b->at[i];
    }
    return a->len[i] == b->len[i] && memcmp(a->at[i], b->at[i], a->len[i]) == 0;
}

/* index._merges: 1 when the line [p, p + len) belongs to the step s->step, 0
 * when it starts its own, -1 when Python must say. */
static int
merges(const ScanObject *s, const uint8_t *p, size_t len)
{
    if (s->step == NULL) {
        return 0;
    }
    Fields line, step;
    if (!step_fields(p, p + len, &line) || !step_fields(s->step, s->step + s->step_len - 1, &step)) {
        return -1;
    }
    if (!same_field(&line, &step, F_GAS) && line.at[F_EVENT] == NULL) {
        return 0;
    }
    return same_field(&line, &step, F_PC) && same_field(&line, &step, F_DEPTH)
           && same_field(&line, &step, F_CODE) && same_field(&line, &step, F_THREAD);
}

static int
has_plain_op(const uint8_t *line, size_t rawlen)
{
    size_t n = rawlen < HEAD_SCAN ? rawlen : HEAD_SCAN;
    for (size_t i = 0; i + PLAIN_OP_LEN <= n; i++) {
        if (line[i] == '"' && memcmp(line + i, PLAIN_OP, PLAIN_OP_LEN) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Keep the last step's line past the caller's buffer [buf, buf + len). */
static void
keep_step(ScanObject *s, const uint8_t *buf, Py_ssize_t len)
{
    if (s->step == NULL || s->step < buf || s->step >= buf + len) {
        return;
    }
    if (s->step_cap < s->step_len) {
        uint8_t *more = PyMem_RawRealloc(s->step_own, s->step_len);
        if (more == NULL) {
            s->failed = 1;
            s->step = NULL;
            return;
        }
        s->step_own = more;
        s->step_cap = s->step_len;
    }
    memcpy(s->step_own, s->step, s->step_len);
    s->step = s->step_own;
}

/* IndexBuilder._checkpoint */
static void
checkpoint(ScanObject *s)
{
    if (s->ncps == s->cpcap) {
        size_t cap = s->cpcap ? 2 * s->cpcap : 256;
        uint64_t *more = PyMem_RawRealloc(s->cps, cap * 3 * sizeof(uint64_t));
        if (more == NULL) {
            s->failed = 1;
            return;
        }
        s->cps = more;
        s->cpcap = cap;
    }
    uint64_t *cp = s->cps + 3 * s->ncps++;
    cp[0] = s->offset;
    cp[1] = s->steps;
    cp[2] = 0;
    s->waiting = 1;
}

static int
scan_lines(ScanObject *s, const uint8_t *buf, Py_ssize_t len, Py_ssize_t *pos,
           long long *number, int trust)
{
    Py_ssize_t at = *pos;
    long long n = *number;
    int code = STOP_END;
    const int compact = s->compact;
    const size_t extra = compact ? COMPACT_EXTRA : 0; /* what the full line has more */
    while (at < len) {
        const uint8_t *line = buf + at;
        /* exact: [at, len) is one line (the caller found its newline) */
        const uint8_t *nl = s->exact ? buf + len - 1 : memchr(line, '\n', (size_t)(len - at));
        if (nl == NULL) {
            break;
        }
        size_t rawlen = (size_t)(nl - line) + 1;
        size_t linelen = rawlen - 1;
        size_t bodylen;
        const uint8_t *stored = NULL;
        if (compact) {
            /* the full line is the body, the hash member the Expander computed, "}\n":
             * it cannot end with CR or lack its hash member */
            if (n - s->dg_first >= s->dg_count || n < s->dg_first) {
                code = STOP_DIGESTS;
                break;
            }
            if ((Py_ssize_t)(rawlen + extra) > s->max_line) {
                code = STOP_TOO_LONG;
                break;
            }
            if (linelen < 1 || line[linelen - 1] != '}') { /* FrameStream hands out none */
                code = STOP_NO_HASH;
                break;
            }
            bodylen = linelen - 1;
        } else {
            if ((Py_ssize_t)rawlen > s->max_line) {
                code = STOP_TOO_LONG;
                break;
            }
            if (linelen && line[linelen - 1] == '\r') {
                code = STOP_CR;
                break;
            }
            ptrdiff_t body = bt_hash_body_len(line, linelen);
            if (body < 0 || (!s->hashed && !bt_lower_hex64(line + body + HASH_FIELD_LEN))) {
                code = STOP_NO_HASH;
                break;
            }
            bodylen = (size_t)body;
            stored = line + bodylen + HASH_FIELD_LEN;
        }
        int op = 0, plain = 0, step = 0;
        if (s->every && linelen >= LINE_OP_PREFIX_LEN
            && memcmp(line, LINE_OP_PREFIX, LINE_OP_PREFIX_LEN) == 0) {
            op = 1;
            plain = has_plain_op(line, rawlen);
            if (s->decided) {
                step = s->decided == 1;
            } else if (plain && s->last_plain) {
                step = 1;
            } else {
                int m = merges(s, line, linelen);
                if (m < 0) {
                    code = STOP_STEP;
                    break;
                }
                step = !m;
            }
        }
        /* a compact line {} is the full line {,"hash":...}: no object (Python says so) */
        int wellformed = trust ? trust == 1
                               : is_known(s, n)
                                     || (plain_json_object(line, line + linelen)
                                         && !(compact && bodylen == 1));
        if (!trust && !wellformed) {
            code = STOP_UNSURE;
            break;
        }
        trust = 0;
        int summary = bodylen >= LINE_SUMMARY_PREFIX_LEN
                      && memcmp(line, LINE_SUMMARY_PREFIX, LINE_SUMMARY_PREFIX_LEN) == 0;
        if (!s->hashed && !compact) {
            uint8_t digest[32];
            char hexed[HASH_HEX_LEN];
            chain_line(s, line, rawlen, bodylen, summary, digest);
            hex32(digest, hexed);
            if (memcmp(hexed, stored, HASH_HEX_LEN) != 0) {
                code = STOP_MISMATCH;
                break;
            }
        }
        if (!wellformed) {
            code = STOP_MALFORMED;
            break;
        }
        if (summary) {
            if (s->version == 1) {
                if (s->in_leaf) {
                    leaf_emit(s); /* the lines before the summary */
                }
            } else if (s->version >= 3) {
                close_leaf(s);
            }
            code = STOP_SUMMARY;
            break;
        }
        if (s->version == 1) { /* leaves are groups of raw lines, apart from the chain */
            sha256_update(&s->stream, line, rawlen);
            s->in_leaf++;
            if (s->in_leaf == s->per_leaf) {
                leaf_emit(s);
            }
        }
        if (s->every) {
            if ((n - 1) % s->every == 0) {
                checkpoint(s);
            }
            if (op && step) {
                s->steps++;
                s->last_plain = plain;
                s->step = line;
                s->step_len = rawlen;
                if (s->waiting && s->ncps) {
                    s->cps[3 * s->ncps - 1] = (uint64_t)n;
                    s->waiting = 0;
                }
            }
            s->decided = 0;
            s->last_offset = s->offset;
            s->offset += rawlen + extra;
        }
        if (!compact) {
            memcpy(s->head, stored, HASH_HEX_LEN);
        }
        s->lines = n;
        at += (Py_ssize_t)rawlen;
        n++;
    }
    if (compact && n > *number) { /* the last line's hash, in hex, once per pass */
        hex32(s->dg + 32 * (n - 1 - s->dg_first), s->head);
    }
    if (s->every) {
        keep_step(s, buf, len);
    }
    *pos = at;
    *number = n;
    return code;
}

static PyObject *
scan_scan(ScanObject *s, PyObject *const *args, Py_ssize_t nargs)
{
    if (!bt_nargs(nargs, 4, "scan(buffer, pos, number, trust)")) {
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    long long number = PyLong_AsLongLong(args[2]);
    long trust = PyLong_AsLong(args[3]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (pos < 0 || pos > view.len || trust < 0 || trust > 2) {
        return bt_release_raise(&view, PyExc_ValueError,
                                "pos outside the buffer, or trust not 0, 1 or 2");
    }
    int code;
    Py_BEGIN_ALLOW_THREADS
    code = scan_lines(s, view.buf, view.len, &pos, &number, (int)trust);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (s->failed) {
        return PyErr_NoMemory();
    }
    return Py_BuildValue("(inL)", code, pos, number);
}

static PyObject *
scan_take_leaves(ScanObject *s, PyObject *unused)
{
    PyObject *out = PyBytes_FromStringAndSize((const char *)s->leaves, (Py_ssize_t)(32 * s->nleaves));
    if (out != NULL) {
        s->nleaves = 0;
    }
    return out;
}

static PyObject *
scan_get_lines(ScanObject *s, void *closure)
{
    return PyLong_FromLongLong(s->lines);
}

static PyObject *
scan_get_head(ScanObject *s, void *closure)
{
    if (s->lines == 0) {
        return PyUnicode_FromStringAndSize("", 0);
    }
    return PyUnicode_FromStringAndSize(s->head, HASH_HEX_LEN);
}

static PyObject *
scan_decide(ScanObject *s, PyObject *arg)
{
    int yes = PyObject_IsTrue(arg);
    if (yes < 0) {
        return NULL;
    }
    s->decided = yes ? 1 : 2;
    Py_RETURN_NONE;
}

/* Copies a buffer argument into an array the scanner owns (*own, grown to *cap when
 * short), for known() and digests(): the caller's object may go before scan() reads it.
 * The length must be a multiple of unit, and valid true, else ValueError `invalid`.
 * Returns the length, or -1 with an exception set. */
static Py_ssize_t
copy_owned(PyObject *arg, Py_ssize_t unit, int valid, const char *invalid, uint8_t **own,
           size_t *cap)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    Py_ssize_t len = view.len;
    if (len % unit || !valid) {
        bt_release_raise(&view, PyExc_ValueError, invalid);
        return -1;
    }
    if ((size_t)len > *cap) {
        uint8_t *more = PyMem_RawRealloc(*own, (size_t)len);
        if (more == NULL) {
            PyBuffer_Release(&view);
            PyErr_NoMemory();
            return -1;
        }
        *own = more;
        *cap = (size_t)len;
    }
    if (len) {
        memcpy(*own, view.buf, (size_t)len);
    }
    PyBuffer_Release(&view);
    return len;
}

static PyObject *
scan_known(ScanObject *s, PyObject *const *args, Py_ssize_t nargs)
{
    if (!bt_nargs(nargs, 2, "known(first, bits)")) {
        return NULL;
    }
    long long first = PyLong_AsLongLong(args[0]);
    if (first == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t len = copy_owned(args[1], 1, 1, NULL, &s->known, &s->known_cap);
    if (len < 0) {
        return NULL;
    }
    s->known_len = (size_t)len;
    s->known_first = first;
    Py_RETURN_NONE;
}

static PyObject *
scan_digests(ScanObject *s, PyObject *const *args, Py_ssize_t nargs)
{
    if (!bt_nargs(nargs, 2, "digests(first, hashes)")) {
        return NULL;
    }
    long long first = PyLong_AsLongLong(args[0]);
    if (first == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (!s->compact) {
        PyErr_SetString(PyExc_ValueError, "digests: a compact scan's");
        return NULL;
    }
    Py_ssize_t len = copy_owned(args[1], 32, first >= 1,
                                "digests: 32 bytes a line, from line 1 on", &s->dg, &s->dg_cap);
    if (len < 0) {
        return NULL;
    }
    s->dg_first = first;
    s->dg_count = len / 32;
    Py_RETURN_NONE;
}

static PyObject *
scan_full(ScanObject *s, PyObject *unused)
{
    s->compact = 0;
    Py_RETURN_NONE;
}

static PyObject *
scan_hash_of(ScanObject *s, PyObject *arg)
{
    long long n = PyLong_AsLongLong(arg);
    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (!s->compact || n < s->dg_first || n - s->dg_first >= s->dg_count) {
        PyErr_SetString(PyExc_IndexError, "hash_of: no hash given for that line");
        return NULL;
    }
    char hexed[HASH_HEX_LEN];
    hex32(s->dg + 32 * (n - s->dg_first), hexed);
    return PyUnicode_FromStringAndSize(hexed, HASH_HEX_LEN);
}

static PyObject *
scan_checkpoint_offset(ScanObject *s, PyObject *arg)
{
    Py_ssize_t k = PyLong_AsSsize_t(arg);
    if (k == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (k < 0 || (size_t)k >= s->ncps) {
        PyErr_SetString(PyExc_IndexError, "no such checkpoint");
        return NULL;
    }
    return PyLong_FromUnsignedLongLong(s->cps[3 * k]);
}

static PyObject *
scan_index_state(ScanObject *s, PyObject *unused)
{
    PyObject *cps = PyBytes_FromStringAndSize((const char *)s->cps,
                                              (Py_ssize_t)(3 * sizeof(uint64_t) * s->ncps));
    if (cps == NULL) {
        return NULL;
    }
    return Py_BuildValue("(KKKiN)", s->steps, s->offset, s->last_offset, s->waiting, cps);
}

static PyObject *
scan_get_last_step(ScanObject *s, void *closure)
{
    if (s->step == NULL) {
        Py_RETURN_NONE;
    }
    return PyBytes_FromStringAndSize((const char *)s->step, (Py_ssize_t)s->step_len);
}

static PyObject *
scan_get_checkpoints(ScanObject *s, void *closure)
{
    return PyLong_FromSize_t(s->ncps);
}

static int
scan_init(ScanObject *s, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"version", "per_leaf", "max_line", "leaves", "every", "hashed",
                            "compact", NULL};
    int version, leaves, hashed = 0, compact = 0;
    Py_ssize_t per_leaf, max_line, every = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "innp|npp", names, &version, &per_leaf,
                                     &max_line, &leaves, &every, &hashed, &compact)) {
        return -1;
    }
    if (compact && !hashed) {
        PyErr_SetString(PyExc_ValueError, "compact lines are hashed by the Expander");
        return -1;
    }
    if (hashed && (version < 3 || leaves)) {
        PyErr_SetString(PyExc_ValueError, "hashed: version 3 or 4, leaves from the Expander");
        return -1;
    }
    if (version < 1 || version > 4 || per_leaf < 1 || max_line < 1 || every < 0) {
        PyErr_SetString(PyExc_ValueError,
                        "version 1-4, per_leaf and max_line positive, every not negative");
        return -1;
    }
    if (s->leaves != NULL || s->cps != NULL || s->step_own != NULL || s->known != NULL
        || s->dg != NULL) {
        PyErr_SetString(PyExc_TypeError, "a ChainScan is initialised once");
        return -1;
    }
    s->every = every;
    s->offset = s->last_offset = s->steps = 0;
    s->ncps = s->cpcap = 0;
    s->waiting = 0;
    s->last_plain = 1;
    s->decided = 0;
    s->step = NULL;
    s->step_len = s->step_cap = 0;
    s->known = NULL;
    s->known_len = s->known_cap = 0;
    s->known_first = 0;
    s->exact = 0;
    s->version = version;
    s->per_leaf = per_leaf;
    s->max_line = max_line;
    s->want_leaves = leaves;
    s->hashed = hashed;
    s->compact = compact;
    s->dg = NULL;
    s->dg_cap = 0;
    s->dg_first = 1;
    s->dg_count = 0;
    sha256_init(&s->running);
    sha256_update(&s->running, DOMAIN_V1, DOMAIN_LEN);
    sha256_once(version == 4 ? DOMAIN_V4 : DOMAIN_V2, DOMAIN_LEN, s->prev);
    leaf_reset(s);
    s->lines = 0;
    s->nleaves = 0;
    s->failed = 0;
    return 0;
}

static void
scan_dealloc(ScanObject *s)
{
    PyMem_RawFree(s->leaves);
    PyMem_RawFree(s->cps);
    PyMem_RawFree(s->step_own);
    PyMem_RawFree(s->known);
    PyMem_RawFree(s->dg);
    bt_free_instance((PyObject *)s);
}

static PyMethodDef scan_methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan_scan, METH_FASTCALL,
     "scan($self, buffer, pos, number, trust, /)\n--\n\nCheck the complete lines of buffer from byte "
     "pos (line number `number`); returns (stop code, pos, number) of the line it stopped at. "
     "trust: 0, or 1/2 when Python found the first line a JSON object / not one."},
    {"take_leaves", (PyCFunction)scan_take_leaves, METH_NOARGS,
     "take_leaves($self, /)\n--\n\nThe leaf hashes completed since the last call, 32 bytes each."},
    {"decide", (PyCFunction)scan_decide, METH_O,
     "decide($self, starts_step, /)\n--\n\nAfter STEP: whether the line scan stopped at starts "
     "a step."},
    {"known", (PyCFunction)(void (*)(void))scan_known, METH_FASTCALL,
     "known($self, first, bits, /)\n--\n\nLines first + k whose bit k (bits[k >> 3] >> (k & 7) "
     "& 1) is set are JSON objects msgspec accepts (the caller's parser read them whole): scan "
     "skips its JSON test for them.  Each call replaces the map."},
    {"digests", (PyCFunction)(void (*)(void))scan_digests, METH_FASTCALL,
     "digests($self, first, hashes, /)\n--\n\nCompact: the hashes (32 bytes each) of lines "
     "first, first + 1, ...; scan stops with DIGESTS at a line past them."},
    {"full", (PyCFunction)scan_full, METH_NOARGS,
     "full($self, /)\n--\n\nCompact: the lines from here on are full lines (hashes in, put "
     "there by the Expander), for good."},
    {"hash_of", (PyCFunction)scan_hash_of, METH_O,
     "hash_of($self, number, /)\n--\n\nCompact: the hash of line number (hex), given with "
     "digests()."},
    {"checkpoint_offset", (PyCFunction)scan_checkpoint_offset, METH_O,
     "checkpoint_offset($self, k, /)\n--\n\nThe uncompressed offset of checkpoint k's line."},
    {"index_state", (PyCFunction)scan_index_state, METH_NOARGS,
     "index_state($self, /)\n--\n\n(steps, offset, last line's offset, waiting, checkpoints: "
     "(offset, steps before, first step's line) as native uint64 triples)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef scan_getset[] = {
    {"lines", (getter)scan_get_lines, NULL, "number of the last line that checked (0: none)", NULL},
    {"head", (getter)scan_get_head, NULL, "hash of the last line that checked ('' if none)", NULL},
    {"last_step", (getter)scan_get_last_step, NULL, "the last step's line (index), or None", NULL},
    {"checkpoints", (getter)scan_get_checkpoints, NULL, "checkpoints so far (index)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot scan_slots[] = {
    {Py_tp_init, scan_init},
    {Py_tp_dealloc, scan_dealloc},
    {Py_tp_methods, scan_methods},
    {Py_tp_getset, scan_getset},
    {Py_tp_doc, "ChainScan(version, per_leaf, max_line, leaves, every=0, hashed=False, "
                "compact=False)\n--\n\n"
                "The chain check of one "
                "trace (see blocktrace.format.fastcheck)."},
    {0, NULL},
};

static PyType_Spec scan_spec = {
    .name = "blocktrace.format._cscan.ChainScan",
    .basicsize = sizeof(ScanObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = scan_slots,
};


/* -- compact frames (blocktrace.format.compact): hash members out and back in ---- */


/* The number of the first line of [p, end) lacking a well-formed hash member
 * (1-based), or 0 when every line has one; *lines counts the lines. */
static Py_ssize_t
strip_lines(const uint8_t *p, const uint8_t *end, uint8_t *out, size_t *outlen,
            const uint8_t **last_hash, Py_ssize_t *lines)
{
    uint8_t *o = out;
    Py_ssize_t n = 0;
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        n++;
        if (nl == NULL) {
            return n;
        }
        size_t linelen = (size_t)(nl - p);
        ptrdiff_t body = bt_hash_body_len(p, linelen);
        if (body < 1 || !bt_lower_hex64(p + body + HASH_FIELD_LEN)) {
            return n;
        }
        size_t bodylen = (size_t)body;
        memcpy(o, p, bodylen);
        o += bodylen;
        *o++ = '}';
        *o++ = '\n';
        *last_hash = p + bodylen + HASH_FIELD_LEN;
        p = nl + 1;
    }
    *outlen = (size_t)(o - out);
    *lines = n;
    return 0;
}

static PyObject *
mod_strip(PyObject *m, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, view.len);
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    const uint8_t *last = NULL;
    size_t outlen = 0;
    Py_ssize_t lines = 0, bad;
    Py_BEGIN_ALLOW_THREADS
    bad = strip_lines(view.buf, (const uint8_t *)view.buf + view.len,
                      (uint8_t *)PyBytes_AS_STRING(out), &outlen, &last, &lines);
    Py_END_ALLOW_THREADS
    PyObject *hash = NULL;
    if (bad) {
        PyErr_Format(PyExc_ValueError, "line %zd of the buffer has no hash member", bad);
    } else {
        hash = last ? PyBytes_FromStringAndSize((const char *)last, HASH_HEX_LEN)
                    : PyBytes_FromStringAndSize(NULL, 0);
    }
    PyBuffer_Release(&view);
    if (hash == NULL || _PyBytes_Resize(&out, (Py_ssize_t)outlen) < 0) {
        Py_XDECREF(hash);
        Py_XDECREF(out);
        return NULL;
    }
    return Py_BuildValue("(NNn)", out, hash, lines);
}

typedef struct {
    PyObject_HEAD
    int version;       /* 3 or 4: the chain's rules */
    sha256_ctx stream; /* the open leaf's: 0x00 and its full lines (version 3), or 0x00, the
                          hash before the leaf, and each body and a newline (version 4) */
    uint8_t prev[32];
    uint8_t start[32]; /* version 4: the hash of line lines - lines % per_leaf (H_0 for line
                          0): where the leaf open by the lines' numbers starts, as a head
                          frame stores it (the summary's closing a leaf early aside) */
    Py_ssize_t in_leaf, per_leaf;
    long long lines;
    int broken;        /* a line that is no compact line was met: the rest is copied */
    int want_leaves;
    uint8_t *leaves;   /* every leaf hash completed (a verify keeps them: 2 MB per 1 M leaves) */
    size_t nleaves, cap;
    long long base;    /* the number (from the trace's start) of the first leaf kept */
    uint8_t *scratch;  /* version 4, hash(): a line's body and tail, for sha256_line4 */
    size_t scratch_cap;
} ExpandObject;

/* The leaf hashes one expand() call completes: filled without the GIL, then
 * appended to the expander's own (which take_leaves reads with the GIL). */
typedef struct {
    uint8_t *p;
    size_t n, cap;
} LeafOut;

static void
expand_leaf(ExpandObject *e, LeafOut *out)
{
    if (out != NULL && out->n < out->cap) {
        if (e->version == 4) { /* the stream ended with its last line's newline */
            memcpy(out->p + 32 * out->n, e->prev, 32);
        } else {
            sha256_digest(&e->stream, out->p + 32 * out->n);
        }
        out->n++;
    }
    static const uint8_t zero = 0x00;
    sha256_init(&e->stream);
    sha256_update(&e->stream, &zero, 1);
    e->in_leaf = 0;
}

/* The chain (version 3 or 4) over compact lines [p, end), writing the full lines to o;
 * returns the end of what it wrote.  Without o (hash()): writes each line's hash
 * to digests instead, and stops at a line that is no compact line. */
static uint8_t *
expand_lines(ExpandObject *e, const uint8_t *p, const uint8_t *end, uint8_t *o, LeafOut *leaves,
             uint8_t *digests)
{
    uint8_t own_tail[TAIL_LEN + 1];
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t rawlen = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        if (e->broken || nl == NULL || rawlen < 2 || p[rawlen - 2] != '}') {
            /* not a compact line: copied as it is (the chain check says what it is) */
            e->broken = 1;
            if (o == NULL) {
                return digests;
            }
            memcpy(o, p, (size_t)(end - p));
            return o + (end - p);
        }
        size_t bodylen = rawlen - 2;
        uint8_t digest[32];
        const int v4 = e->version == 4;
        int tailed = 0; /* sha256_line4 wrote the body (at o) and the tail */
        if (v4) { /* LeafChain.check, version 4: body and newline, never the digits */
            static const uint8_t newline = '\n';
            if (e->in_leaf == 0) {
                sha256_update(&e->stream, e->prev, 32);
            }
            uint8_t *at = o; /* the writer's line function, on the line being written */
            if (at == NULL && e->scratch_cap < bodylen + TAIL_LEN + 1) {
                uint8_t *more = PyMem_RawRealloc(e->scratch, bodylen + TAIL_LEN + 1);
                if (more != NULL) { /* (else the composition below, no copy) */
                    e->scratch = more;
                    e->scratch_cap = bodylen + TAIL_LEN + 1;
                }
            }
            if (at == NULL && e->scratch_cap >= bodylen + TAIL_LEN + 1) {
                at = e->scratch;
            }
            if (at != NULL) {
                memcpy(at, p, bodylen);
                sha256_line4(&e->stream, at, bodylen, digest);
                tailed = 1; /* (hash(): nothing reads the tail) */
            } else {
                sha256_update(&e->stream, p, bodylen);
                sha256_update(&e->stream, &newline, 1);
                sha256_digest(&e->stream, digest);
            }
        } else {
            sha256_update(&e->stream, p, bodylen);
            if (e->in_leaf == 0) {
                link_hash(e->prev, p, bodylen, digest);
            } else {
                sha256_digest(&e->stream, digest);
            }
        }
        uint8_t *tail = own_tail;
        if (o != NULL) {
            if (!tailed) {
                memcpy(o, p, bodylen);
            }
            tail = o + bodylen;
        }
        if (!tailed) {
            memcpy(tail, HASH_FIELD, HASH_FIELD_LEN);
            hex32(digest, (char *)tail + HASH_FIELD_LEN);
            tail[HASH_FIELD_LEN + HASH_HEX_LEN] = '"';
            tail[HASH_FIELD_LEN + HASH_HEX_LEN + 1] = '}';
            tail[HASH_FIELD_LEN + HASH_HEX_LEN + 2] = '\n';
        }
        if (!v4) {
            sha256_update(&e->stream, tail, TAIL_LEN + 1);
        }
        memcpy(e->prev, digest, 32);
        if (o != NULL) {
            o += bodylen + TAIL_LEN + 1;
        } else {
            memcpy(digests, digest, 32);
            digests += 32;
        }
        e->lines++;
        e->in_leaf++;
        if (v4 && e->lines % e->per_leaf == 0) {
            memcpy(e->start, digest, 32);
        }
        if (e->in_leaf == e->per_leaf
            || (bodylen >= LINE_SUMMARY_PREFIX_LEN
                && memcmp(p, LINE_SUMMARY_PREFIX, LINE_SUMMARY_PREFIX_LEN) == 0)) {
            expand_leaf(e, leaves); /* versions 3, 4: the summary closes the last leaf */
        }
        p += rawlen;
    }
    return o != NULL ? o : digests;
}

/* The newlines in [p, end): sixteen bytes at a time where SSE2 is there (byte
 * counters summed every 255 blocks: no popcount, which x86-64's baseline lacks). */
static size_t
count_newlines(const uint8_t *p, const uint8_t *end)
{
    size_t count = 0;
#ifdef BT_SSE2
    const __m128i nl = _mm_set1_epi8('\n');
    const __m128i zero = _mm_setzero_si128();
    while (end - p >= 16) {
        __m128i acc = zero;
        for (int k = 0; k < 255 && end - p >= 16; k++, p += 16) {
            acc = _mm_sub_epi8(acc, _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)p), nl));
        }
        __m128i sums = _mm_sad_epu8(acc, zero);
        count += (size_t)_mm_cvtsi128_si32(sums) + (size_t)_mm_cvtsi128_si32(_mm_srli_si128(sums, 8));
    }
#endif
    for (; p < end; p++) {
        count += *p == '\n';
    }
    return count;
}

/* leaf_cut(buffer, lines_before, per_leaf): where a frame of whole leaves can end */
static PyObject *
mod_leaf_cut(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    if (!bt_nargs(nargs, 3, "leaf_cut(buffer, lines_before, per_leaf)")) {
        return NULL;
    }
    long long before = PyLong_AsLongLong(args[1]);
    long long per = PyLong_AsLongLong(args[2]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (before < 0 || per < 1) {
        PyErr_SetString(PyExc_ValueError, "lines_before >= 0, per_leaf >= 1");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const uint8_t *start = view.buf, *p = start + view.len;
    /* with the GIL (a frame's count takes microseconds): each release and take-back
     * would cost the program's thread a switch */
    long long count, whole;
    count = (long long)count_newlines(start, p);
    whole = count - (before + count) % per;
    if (whole > 0) {
        /* back over the newlines after the whole-th one */
        for (long long k = count; k >= whole; k--) {
            while (p > start && p[-1] != '\n') {
                p--;
            }
            if (k > whole) {
                p--;
            }
        }
    }
    PyBuffer_Release(&view);
    if (whole <= 0) {
        return Py_BuildValue("(nL)", (Py_ssize_t)0, 0LL);
    }
    return Py_BuildValue("(nL)", (Py_ssize_t)(p - start), whole);
}

/* expand() (full lines out) or, hashing, hash() (the lines' hashes out) */
static PyObject *
expand_run(ExpandObject *e, PyObject *arg, int hashing)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const uint8_t *p = view.buf, *end = p + view.len;
    size_t count = count_newlines(p, end);
    PyObject *out = PyBytes_FromStringAndSize(
        NULL, hashing ? (Py_ssize_t)(32 * count) : view.len + (Py_ssize_t)(count * COMPACT_EXTRA));
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    /* at most one leaf per line, and fewer by far: lines / per_leaf + every summary */
    LeafOut leaves = {NULL, 0, 0};
    if (e->want_leaves) {
        leaves.cap = count; /* a summary may close a leaf on any line */
        if (leaves.cap && (leaves.p = PyMem_RawMalloc(leaves.cap * 32)) == NULL) {
            PyBuffer_Release(&view);
            Py_DECREF(out);
            return PyErr_NoMemory();
        }
    }
    uint8_t *o = (uint8_t *)PyBytes_AS_STRING(out), *done;
    Py_BEGIN_ALLOW_THREADS
    done = hashing ? expand_lines(e, p, end, NULL, e->want_leaves ? &leaves : NULL, o)
                   : expand_lines(e, p, end, o, e->want_leaves ? &leaves : NULL, NULL);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (leaves.n) {
        if (e->nleaves + leaves.n > e->cap) {
            size_t cap = e->cap ? e->cap : 1024;
            while (cap < e->nleaves + leaves.n) {
                cap *= 2;
            }
            uint8_t *more = PyMem_RawRealloc(e->leaves, cap * 32);
            if (more == NULL) {
                PyMem_RawFree(leaves.p);
                Py_DECREF(out);
                return PyErr_NoMemory();
            }
            e->leaves = more;
            e->cap = cap;
        }
        memcpy(e->leaves + 32 * e->nleaves, leaves.p, 32 * leaves.n);
        e->nleaves += leaves.n;
    }
    PyMem_RawFree(leaves.p);
    if (_PyBytes_Resize(&out, (Py_ssize_t)(done - o)) < 0) {
        return NULL;
    }
    return out;
}

static PyObject *
expand_expand(ExpandObject *e, PyObject *arg)
{
    return expand_run(e, arg, 0);
}

static PyObject *
expand_hash(ExpandObject *e, PyObject *arg)
{
    return expand_run(e, arg, 1);
}

static PyObject *
expand_get_broken(ExpandObject *e, void *closure)
{
    return PyBool_FromLong(e->broken);
}

static PyObject *
expand_take_leaves(ExpandObject *e, PyObject *arg)
{
    long long upto = PyLong_AsLongLong(arg);
    if (upto == -1 && PyErr_Occurred()) {
        return NULL;
    }
    size_t k = e->nleaves;
    if (upto >= 0) {
        k = upto <= e->base ? 0 : (size_t)(upto - e->base) < k ? (size_t)(upto - e->base) : k;
    }
    PyObject *out = PyBytes_FromStringAndSize((const char *)e->leaves, (Py_ssize_t)(32 * k));
    if (out != NULL && k) {
        memmove(e->leaves, e->leaves + 32 * k, 32 * (e->nleaves - k));
        e->nleaves -= k;
        e->base += (long long)k;
    }
    return out;
}

static PyObject *
expand_get_head(ExpandObject *e, void *closure)
{
    return PyBytes_FromStringAndSize((const char *)e->prev, 32);
}

static PyObject *
expand_get_start(ExpandObject *e, void *closure)
{
    if (e->version != 4) {
        return PyBytes_FromStringAndSize(NULL, 0);
    }
    return PyBytes_FromStringAndSize((const char *)e->start, 32);
}

static PyObject *
expand_get_version(ExpandObject *e, void *closure)
{
    return PyLong_FromLong(e->version);
}

static PyObject *
expand_get_lines(ExpandObject *e, void *closure)
{
    return PyLong_FromLongLong(e->lines);
}

static int
expand_init(ExpandObject *e, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"prev", "carry", "lines", "per_leaf", "leaves", "version", "start",
                            NULL};
    Py_buffer prev, carry, start = {0};
    long long lines;
    Py_ssize_t per_leaf;
    int leaves = 0, version = 3;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*y*Ln|piy*", names, &prev, &carry, &lines,
                                     &per_leaf, &leaves, &version, &start)) {
        return -1;
    }
    int v4 = version == 4;
    /* version 4: the hash before the carry's first line (start), given with a carry */
    int bad = (prev.len != 0 && prev.len != 32) || per_leaf < 1 || lines < 0
              || (version != 3 && !v4) || (v4 && carry.len && start.len != 32)
              || (start.len && (!v4 || start.len != 32));
    if (!bad) {
        if (prev.len) {
            memcpy(e->prev, prev.buf, 32);
        } else {
            sha256_once(v4 ? DOMAIN_V4 : DOMAIN_V2, DOMAIN_LEN, e->prev);
        }
        e->version = version;
        e->per_leaf = per_leaf;
        e->lines = lines;
        e->broken = 0;
        e->want_leaves = leaves;
        e->nleaves = 0;
        e->base = lines / per_leaf;
        expand_leaf(e, NULL);
        const uint8_t *c = carry.buf, *cend = c + carry.len;
        memcpy(e->start, start.len ? start.buf : e->prev, 32);
        if (v4 && carry.len) {
            sha256_update(&e->stream, e->start, 32);
        }
        while (c < cend && !bad) {
            const uint8_t *nl = memchr(c, '\n', (size_t)(cend - c));
            const uint8_t *stop = nl ? nl + 1 : cend;
            if (v4) { /* a full line: its body and newline are what the stream was fed */
                size_t rawlen = (size_t)(stop - c);
                bad = nl == NULL || rawlen < TAIL_LEN + 1
                      || memcmp(c + rawlen - TAIL_LEN - 1, HASH_FIELD, HASH_FIELD_LEN) != 0;
                if (!bad) {
                    static const uint8_t newline = '\n';
                    sha256_update(&e->stream, c, rawlen - TAIL_LEN - 1);
                    sha256_update(&e->stream, &newline, 1);
                }
            } else {
                sha256_update(&e->stream, c, (size_t)(stop - c));
            }
            e->in_leaf++;
            c = stop;
        }
        bad = bad || e->in_leaf >= per_leaf;
    }
    PyBuffer_Release(&prev);
    PyBuffer_Release(&carry);
    if (start.obj != NULL) {
        PyBuffer_Release(&start);
    }
    if (bad) {
        PyErr_SetString(PyExc_ValueError,
                        "prev: 32 bytes or none; carry: fewer lines than per_leaf, full lines "
                        "(version 4: after start, the 32-byte hash before them); lines >= 0; "
                        "version 3 or 4");
        return -1;
    }
    return 0;
}

static void
expand_dealloc(ExpandObject *e)
{
    PyMem_RawFree(e->leaves);
    PyMem_RawFree(e->scratch);
    bt_free_instance((PyObject *)e);
}

static PyMethodDef expand_methods[] = {
    {"expand", (PyCFunction)expand_expand, METH_O,
     "expand($self, compact, /)\n--\n\nThe full lines of compact lines (hash members put back)."},
    {"hash", (PyCFunction)expand_hash, METH_O,
     "hash($self, compact, /)\n--\n\nWhat expand() computes, without the lines: each line's "
     "hash (32 bytes); stops at a line that is no compact line (broken from there on)."},
    {"take_leaves", (PyCFunction)expand_take_leaves, METH_O,
     "take_leaves($self, upto, /)\n--\n\nThe leaf hashes not yet taken, up to the upto-th leaf "
     "of the trace (-1: all)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef expand_getset[] = {
    {"head", (getter)expand_get_head, NULL, "the last line's hash (32 bytes)", NULL},
    {"lines", (getter)expand_get_lines, NULL, "lines so far, counted from the trace's start", NULL},
    {"start", (getter)expand_get_start, NULL,
     "version 4: the hash of line lines - lines % per_leaf (32 bytes), where the open leaf "
     "starts; version 3: b''", NULL},
    {"version", (getter)expand_get_version, NULL, "the chain's format version (3 or 4)", NULL},
    {"broken", (getter)expand_get_broken, NULL, "a line that is no compact line was met", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot expand_slots[] = {
    {Py_tp_init, expand_init},
    {Py_tp_dealloc, expand_dealloc},
    {Py_tp_methods, expand_methods},
    {Py_tp_getset, expand_getset},
    {Py_tp_doc, "Expander(prev, carry, lines, per_leaf, leaves=False, version=3, start=b'')\n"
                "--\n\nPuts the hash members back into compact lines (see "
                "blocktrace.format.compact)."},
    {0, NULL},
};

static PyType_Spec expand_spec = {
    .name = "blocktrace.format._cscan.Expander",
    .basicsize = sizeof(ExpandObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = expand_slots,
};

static PyObject *
mod_plain_json_object(PyObject *m, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    int ok = plain_json_object(view.buf, (const uint8_t *)view.buf + view.len);
    PyBuffer_Release(&view);
    return PyBool_FromLong(ok);
}

static PyObject *
mod_perfect_roots(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    static const uint8_t one = 0x01;
    if (!bt_nargs(nargs, 2, "perfect_roots(hashes, per)")) {
        return NULL;
    }
    Py_ssize_t per = PyLong_AsSsize_t(args[1]);
    if (per == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (per < 1 || per > 1024 || (per & (per - 1))) {
        PyErr_SetString(PyExc_ValueError, "per: a power of two up to 1024");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    Py_ssize_t groups = view.len / (32 * per);
    PyObject *out = PyBytes_FromStringAndSize(NULL, groups * 32);
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    uint8_t *dst = (uint8_t *)PyBytes_AS_STRING(out);
    const uint8_t *src = view.buf;
    uint8_t level[1024 * 32];
    for (Py_ssize_t g = 0; g < groups; g++) {
        memcpy(level, src + g * 32 * per, (size_t)(32 * per));
        for (Py_ssize_t n = per; n > 1; n /= 2) {
            for (Py_ssize_t i = 0; i < n / 2; i++) {
                sha256_ctx c;
                sha256_init(&c);
                sha256_update(&c, &one, 1);
                sha256_update(&c, level + 64 * i, 64);
                sha256_digest(&c, level + 32 * i);
            }
        }
        memcpy(dst + 32 * g, level, 32);
    }
    PyBuffer_Release(&view);
    return out;
}

/* -- for other extensions (scanapi.h) ---------------------------------------------- */

static void *
api_plain(PyObject *scan)
{
    if (Py_TYPE(scan)->tp_dealloc != (destructor)scan_dealloc) {
        return NULL;
    }
    ScanObject *s = (ScanObject *)scan;
    if (s->want_leaves || s->every || s->hashed || s->compact) {
        return NULL;
    }
    return s;
}

static int
api_lines(void *scanner, const uint8_t *buf, Py_ssize_t len, Py_ssize_t *pos, long long *number,
          int trust)
{
    return scan_lines((ScanObject *)scanner, buf, len, pos, number, trust);
}

static int
api_line(void *scanner, const uint8_t *buf, Py_ssize_t len, Py_ssize_t *pos, long long *number,
         int trust)
{
    ScanObject *s = scanner;
    s->exact = 1;
    int code = scan_lines(s, buf, len, pos, number, trust);
    s->exact = 0;
    return code;
}

static const BtScanAPI scan_api = {api_plain, api_lines, api_line};

static PyMethodDef module_methods[] = {
    {"perfect_roots", (PyCFunction)(void (*)(void))mod_perfect_roots, METH_FASTCALL,
     "perfect_roots(hashes, per, /)\n--\n\nThe Merkle root (RFC 9162) of each complete group of "
     "`per` (a power of two) 32-byte leaf hashes."},
    {"leaf_cut", (PyCFunction)(void (*)(void))mod_leaf_cut, METH_FASTCALL,
     "leaf_cut(buffer, lines_before, per_leaf, /)\n--\n\n(cut, lines): the end of the last "
     "whole line of buffer after which lines_before + lines is a multiple of per_leaf, and "
     "that many lines; (0, 0) when no line of buffer ends a leaf."},
    {"strip", mod_strip, METH_O,
     "strip(full, /)\n--\n\n(compact lines, the last line's hash as hex bytes, lines): the hash "
     "members taken out of whole lines; ValueError for a line without one."},
    {"plain_json_object", mod_plain_json_object, METH_O,
     "plain_json_object(line, /)\n--\n\nFor tests: True when the C check settles that line is a "
     "JSON object msgspec accepts, False when it leaves the answer to Python."},
    {NULL, NULL, 0, NULL},
};

static int
cscan_exec(PyObject *m)
{
    const char *impl = sha256_select_from_env();
    columns_init_tables();
    if (bt_add_type(m, &scan_spec, "ChainScan") < 0 || bt_add_type(m, &expand_spec, "Expander") < 0
        || bt_add_type(m, &columns_spec, "OpColumns") < 0
        || PyModule_AddStringConstant(m, "IMPLEMENTATION", impl) < 0
        || PyModule_AddIntConstant(m, "END", STOP_END) < 0
        || PyModule_AddIntConstant(m, "TOO_LONG", STOP_TOO_LONG) < 0
        || PyModule_AddIntConstant(m, "CR", STOP_CR) < 0
        || PyModule_AddIntConstant(m, "NO_HASH", STOP_NO_HASH) < 0
        || PyModule_AddIntConstant(m, "UNSURE", STOP_UNSURE) < 0
        || PyModule_AddIntConstant(m, "MISMATCH", STOP_MISMATCH) < 0
        || PyModule_AddIntConstant(m, "MALFORMED", STOP_MALFORMED) < 0
        || PyModule_AddIntConstant(m, "SUMMARY", STOP_SUMMARY) < 0
        || PyModule_AddIntConstant(m, "STEP", STOP_STEP) < 0
        || PyModule_AddIntConstant(m, "DIGESTS", STOP_DIGESTS) < 0) {
        return -1;
    }
    PyObject *api = PyCapsule_New((void *)&scan_api, BT_SCAN_API_NAME, NULL);
    if (api == NULL) {
        return -1;
    }
    int added = PyModule_AddObjectRef(m, "_scan_api", api);
    Py_DECREF(api);
    if (added < 0) {
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot cscan_slots[] = {
    {Py_mod_exec, cscan_exec},
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
    {0, NULL},
};

static struct PyModuleDef cscan_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "blocktrace.format._cscan",
    .m_doc = "The chain check at hashing speed (see blocktrace.format.fastcheck).",
    .m_size = 0,
    .m_methods = module_methods,
    .m_slots = cscan_slots,
};

PyMODINIT_FUNC
PyInit__cscan(void)
{
    return PyModuleDef_Init(&cscan_module);
}
