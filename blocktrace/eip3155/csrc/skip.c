/* The diff's common-run skip over two blocktrace traces (blocktrace.eip3155._cskip).
 *
 * Two traces that agree are walked line by line in lockstep as bytes: an op line
 * equal in both but for its hash member (and its gas when gas is not compared)
 * is the same step in both, so no step object is made and nothing is decoded.
 * Only lines whose meaning is known from their bytes are passed over:
 *
 *   - op lines  ({"pc":N,"op":N,"gas":"0x..",...} with no "event" or "error"
 *     member: no exception line, which merges into the op before it), whose gas
 *     differs from the op line before them in the same trace (a line with the
 *     same gas could merge too);
 *   - call lines whose code, name and file values (as bytes) are those of the call
 *     line last read for that code number in their trace (the caller's set:
 *     reading them again would not change the code table);
 *   - return lines (read as ignored lines; their content does not matter).
 *
 * The two traces' lines are taken in pairs: an op line must be in both, the
 * others may pair with one another in any mix.
 *
 * A line passed over is one the reference reads, never one it refuses: each member of
 * it is of a JSON kind the reference's decoder takes (kinds_from; the same malformed
 * line in both traces is the reference's to refuse, exit 2), judged once for the bytes
 * a loop's lines repeat (KnownSet).
 *
 * Given a judge (the differ keeps no more hunks in full), a pair of op lines that
 * differ, judged steps that differ, with SYNC pairs in common after it, is passed
 * over as a hunk of one step on each side (see skip_in).
 *
 * Anything else -- a line that differs, another kind of line, a line too long, the
 * end of the buffer -- ends the walk.  The walk then gives back everything before
 * the second-to-last op line it passed: the caller's reference path reads on from
 * there, so the last common step and whatever follows are its own work (see
 * blocktrace/eip3155/skip.py, which holds the rules' other half).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "linekinds.h"
#include "pyutil.h"
#include "scanapi.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define REASON_STOP 0   /* a line the walk does not pass over */
#define REASON_MORE 1   /* a line runs past the end of a buffer */

static int
starts(const char *s, Py_ssize_t n, const char *prefix, Py_ssize_t k)
{
    return n >= k && memcmp(s, prefix, (size_t)k) == 0;
}

/* Whether s[0:n] holds "<one of the keys>": (each key given with its quotes and colon,
 * all starting with '"' and the same second byte); one pass, no memmem (glibc's
 * costs ~1 ns a byte on these short lines, more than the rest of the walk). */
static int
has_key(const char *s, Py_ssize_t n, const char *k1, Py_ssize_t n1, const char *k2,
        Py_ssize_t n2)
{
    const char second = k1[1];
    const char *end = s + n - 1, *p = s;
#if defined(__SSE2__)
    /* sixteen places at a time where a quote is followed by the keys' second byte
     * (an op line has a score of quotes: a memchr call for each cost more) */
    const __m128i quote = _mm_set1_epi8('"'), next = _mm_set1_epi8(second);
    for (; end - p >= 16; p += 16) {
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_and_si128(
            _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)p), quote),
            _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(p + 1)), next)));
        while (m) {
            const char *q = p + __builtin_ctz(m);
            Py_ssize_t left = s + n - q;
            if ((left >= n1 && memcmp(q, k1, (size_t)n1) == 0) ||
                (k2 != NULL && left >= n2 && memcmp(q, k2, (size_t)n2) == 0))
                return 1;
            m &= m - 1;
        }
    }
#endif
    while (p < end && (p = memchr(p, '"', (size_t)(end - p))) != NULL) {
        Py_ssize_t left = s + n - p;
        if (p[1] == second && ((left >= n1 && memcmp(p, k1, (size_t)n1) == 0) ||
                               (k2 != NULL && left >= n2 && memcmp(p, k2, (size_t)n2) == 0)))
            return 1;
        p++;
    }
    return 0;
}

/* The first newline in [p, end), or NULL: sixteen bytes at a time inline (libc's memchr,
 * called with the whole rest of a buffer, costs several times more on lines this short). */
static inline const char *
newline(const char *p, const char *end)
{
#if defined(__SSE2__)
    const __m128i nl = _mm_set1_epi8('\n');
    for (; end - p >= 16; p += 16) {
        unsigned m = (unsigned)_mm_movemask_epi8(
            _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)p), nl));
        if (m) {
            return p + __builtin_ctz(m);
        }
    }
#endif
    return memchr(p, '\n', (size_t)(end - p));
}

typedef struct {
    const char *at;
    Py_ssize_t n;
} Span;

/* The end of the JSON string starting at s[i] == '"' (the index after its closing
 * quote), or -1.  Sixteen bytes at a time to the next quote or backslash (a line's
 * "hash" member alone is 66 bytes: byte by byte, this loop was a third of the walks'
 * cost), then the bytes left one by one. */
static Py_ssize_t
string_end(const char *s, Py_ssize_t n, Py_ssize_t i)
{
    i++;
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
    while (n - i >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(s + i));
        unsigned m = (unsigned)_mm_movemask_epi8(
            _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)));
        if (m == 0) {
            i += 16;
            continue;
        }
        i += __builtin_ctz(m);
        if (s[i] == '"')
            return i + 1;
        i += 2; /* the backslash and the byte it escapes */
    }
#endif
    for (; i < n; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return -1;
}

/* A call line read as a flat object: the raw values of "code", "name" and "file"
 * (absent: n == 0).  0 when it is not one (a nested value, a repeated member, a
 * header's member, both "pc" and "op": the reference would read it otherwise). */
static int
call_members(const char *s, Py_ssize_t n, Span *code, Span *name, Span *file)
{
    Span found[3] = {{NULL, 0}, {NULL, 0}, {NULL, 0}};
    int pc = 0, op = 0, event = 0;
    Py_ssize_t i = 1;
    if (n < 2 || s[0] != '{' || s[n - 1] != '}')
        return 0;
    for (;;) {
        if (i >= n || s[i] != '"')
            return 0;
        Py_ssize_t k = i, ke = string_end(s, n, i);
        if (ke < 0 || ke >= n || s[ke] != ':')
            return 0;
        Py_ssize_t v = ke + 1, ve;
        if (v >= n)
            return 0;
        if (s[v] == '"') {
            ve = string_end(s, n, v);
            if (ve < 0)
                return 0;
        } else {
            if (s[v] == '{' || s[v] == '[')
                return 0;
            ve = v;
            while (ve < n && s[ve] != ',' && s[ve] != '}')
                ve++;
        }
        const char *key = s + k + 1;
        Py_ssize_t kn = ke - k - 2;
        int slot = -1;
        if (kn == 4 && memcmp(key, "code", 4) == 0)
            slot = 0;
        else if (kn == 4 && memcmp(key, "name", 4) == 0)
            slot = 1;
        else if (kn == 4 && memcmp(key, "file", 4) == 0)
            slot = 2;
        else if (kn == 10 && memcmp(key, "blocktrace", 10) == 0)
            return 0;
        else if (kn == 2 && memcmp(key, "pc", 2) == 0)
            pc++;
        else if (kn == 2 && memcmp(key, "op", 2) == 0)
            op++;
        else if (kn == 5 && memcmp(key, "event", 5) == 0)
            event++;
        if (slot >= 0) {
            if (found[slot].at != NULL)
                return 0;
            found[slot] = (Span){s + v, ve - v};
        }
        if (ve >= n)
            return 0;
        if (s[ve] == '}') {
            if (ve != n - 1)
                return 0;
            break;
        }
        i = ve + 1; /* after the comma */
    }
    if ((pc && op) || event != 1 || found[0].at == NULL)
        return 0;
    *code = found[0];
    *name = found[1];
    *file = found[2];
    return 1;
}

/* What a call line does to the code table, as bytes: its code, name and file values
 * (NULL when it is not a call line the walk can read; a new reference). */
static PyObject *
call_identity(const char *s, Py_ssize_t n)
{
    Span code, name, file;
    if (!call_members(s, n, &code, &name, &file))
        Py_RETURN_NONE;
    PyObject *out = PyBytes_FromStringAndSize(NULL, code.n + name.n + file.n + 2);
    if (out == NULL)
        return NULL;
    char *p = PyBytes_AS_STRING(out);
    memcpy(p, code.at, (size_t)code.n);
    p += code.n;
    *p++ = 0;
    if (name.n)
        memcpy(p, name.at, (size_t)name.n);
    p += name.n;
    *p++ = 0;
    if (file.n)
        memcpy(p, file.at, (size_t)file.n);
    return out;
}

/* Where the line's body ends: before a final ,"hash":"<hex>"} member (the line
 * without its newline is s[0:n]); n when it has none. */
static Py_ssize_t
body_end(const char *s, Py_ssize_t n)
{
    static const char member[] = ",\"hash\":\"";
    const Py_ssize_t m = (Py_ssize_t)sizeof(member) - 1;
    if (n < m + 2 || s[n - 1] != '}' || s[n - 2] != '"')
        return n;
    /* the usual digest, 64 digits (SHA-256): a plain string there (no quote, no
     * escape) is enough for the member to be the object's own, its last */
    if (n >= m + 66 && memcmp(s + n - 66 - m, member, (size_t)m) == 0 &&
        memchr(s + n - 66, '"', 64) == NULL && memchr(s + n - 66, '\\', 64) == NULL)
        return n - 66 - m;
    Py_ssize_t i = n - 3;
    while (i >= 0 && ((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
        i--;
    /* s[i] is the opening quote of the hex digits */
    if (i < m - 1 || i == n - 3 || memcmp(s + i - (m - 1), member, (size_t)m) != 0)
        return n;
    return i - (m - 1);
}

/* The end *g1 of gas digits starting at s[g0] (up to their closing quote), or 0. */
static inline int
gas_end(const char *s, Py_ssize_t n, Py_ssize_t g0, Py_ssize_t *g1)
{
    Py_ssize_t i = g0;
    while (i < n && ((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || s[i] == 'x'))
        i++;
    if (i >= n || s[i] != '"' || i == g0)
        return 0;
    *g1 = i;
    return 1;
}

/* An op line's gas digits [*g0, *g1): {"pc":D,"op":D,"gas":"<0x hex>" starts the line. */
static int
op_gas(const char *s, Py_ssize_t n, Py_ssize_t *g0, Py_ssize_t *g1)
{
    Py_ssize_t i = LINE_OP_PREFIX_LEN; /* after {"pc": */
    if (!starts(s, n, LINE_OP_PREFIX, LINE_OP_PREFIX_LEN))
        return 0;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    if (i == LINE_OP_PREFIX_LEN || !starts(s + i, n - i, ",\"op\":", 6))
        return 0;
    i += 6;
    Py_ssize_t d = i;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    if (i == d || !starts(s + i, n - i, ",\"gas\":\"", 8))
        return 0;
    i += 8;
    *g0 = i;
    return gas_end(s, n, i, g1);
}

/* 1 when s[0:n] is a call line whose identity is in ``set``, 0 when not, -1 on error. */
static int
known_call(PyObject *set, const char *s, Py_ssize_t n)
{
    PyObject *identity = call_identity(s, n);
    if (identity == NULL)
        return -1;
    int found = identity == Py_None ? 0 : PySet_Contains(set, identity);
    Py_DECREF(identity);
    return found;
}

/* Whether each member of the line s[0:n] is of a kind the reference's decoder takes
 * (members, below): a line passed over unread must be one the reference reads too,
 * not one it refuses (exit 2) -- also when both traces hold the same such line. */
static int
kinds_ok(const char *s, Py_ssize_t n);

/* Lines (op lines from their gas on, call and return lines up to their hash member)
 * whose members' kinds a walk found good, by a hash of their bytes: a loop's lines
 * repeat those bytes (a site's op line but for its gas and hash), so each is judged
 * once and then found here (one memcmp of bytes in cache).  Each entry points into
 * the walk's buffers, which hold still while it runs: per walk (the GIL is let go, so
 * nothing is shared between walks), 4 ways in each of 64 sets. */
#define KNOWN_SETS 64
#define KNOWN_WAYS 4
typedef struct {
    const char *at[KNOWN_WAYS];
    Py_ssize_t n[KNOWN_WAYS]; /* 0: empty */
    unsigned next;            /* the way the next line goes to */
} KnownSet;

static inline uint64_t
word_at(const char *s, Py_ssize_t n, Py_ssize_t at)
{
    uint64_t w = 0;
    if (at + 8 <= n)
        memcpy(&w, s + at, 8);
    return w;
}

static inline KnownSet *
known_set(KnownSet *known, const char *s, Py_ssize_t n)
{
    /* (a loop's op lines differ in their opName, line and code: words spread over them) */
    uint64_t h = (uint64_t)n * 0x9E3779B97F4A7C15ULL;
    h = (h ^ word_at(s, n, n / 3)) * 0xC2B2AE3D27D4EB4FULL;
    h = (h ^ word_at(s, n, 2 * n / 3)) * 0x9E3779B97F4A7C15ULL;
    h = (h ^ word_at(s, n, n - 8)) * 0xC2B2AE3D27D4EB4FULL;
    return &known[(h >> 40) % KNOWN_SETS];
}

/* Whether s[0:n] was judged good before (known: NULL, no memory of it). */
static inline int
known_good(KnownSet *known, const char *s, Py_ssize_t n)
{
    if (known == NULL || n == 0)
        return 0;
    KnownSet *set = known_set(known, s, n);
    for (int w = 0; w < KNOWN_WAYS; w++) {
        if (set->n[w] == n && memcmp(set->at[w], s, (size_t)n) == 0)
            return 1;
    }
    return 0;
}

static inline void
remember_good(KnownSet *known, const char *s, Py_ssize_t n)
{
    if (known == NULL || n == 0)
        return;
    KnownSet *set = known_set(known, s, n);
    unsigned w = set->next++ % KNOWN_WAYS;
    set->at[w] = s;
    set->n[w] = n;
}

/* kinds_ok, remembered in ``known`` (may be NULL). */
static int
kinds_known(KnownSet *known, const char *s, Py_ssize_t n)
{
    if (n < 1 || s[n - 1] != '}')
        return 0;
    Py_ssize_t body = body_end(s, n);
    if (known_good(known, s, body))
        return 1;
    if (!kinds_ok(s, n))
        return 0;
    remember_good(known, s, body);
    return 1;
}

#define CALL 1    /* a call line that leaves the code table as it is */
#define IGNORED 2 /* a return line: read and ignored */

/* What the reference does with a line that is not an op line, when it makes no
 * step and changes nothing the steps are made of: CALL, IGNORED, else 0 (-1: error). */
static int
passable_known(PyObject *calls, const char *s, Py_ssize_t n, KnownSet *known)
{
    if (starts(s, n, LINE_CALL_PREFIX ",", LINE_CALL_PREFIX_LEN + 1))
    {
        int found = known_call(calls, s, n);
        if (found > 0 && !kinds_known(known, s, n))
            return 0;
        return found > 0 ? CALL : found;
    }
    if (starts(s, n, LINE_RETURN_PREFIX ",", LINE_RETURN_PREFIX_LEN + 1) && s[n - 1] == '}' &&
        !has_key(s, n, "\"op\":", 5, NULL, 0) && !has_key(s, n, "\"blocktrace\":", 13, NULL, 0)
        && kinds_known(known, s, n))
        return IGNORED;
    return 0;
}

static int
passable(PyObject *calls, const char *s, Py_ssize_t n)
{
    return passable_known(calls, s, n, NULL);
}

typedef struct {
    Py_ssize_t a, b, lines, lines_b, ignored_a, ignored_b, steps, steps_b, hunks, since,
        diff_a, diff_b; /* (lines, steps: a's) */
} Mark;

/* A step both traces hold but that differs, passed over as a hunk of one step on each
 * side: the differ's answer for a changed step the next SYNC steps of both agree after
 * (blocktrace/eip3155/differ.py, _look_ahead's first case), once the hunks it keeps
 * are all found.  The next CONFIRM op lines must follow before it is given back (the
 * SYNC agreeing steps, and the line after them: none of them merges with another). */
#define SYNC 3
#define CONFIRM (SYNC + 1)

/* The chain check of trace a, fed by the walk (the golden comparison: the stored
 * golden is hashed while it is compared, one pass over its bytes).  The scanner
 * (blocktrace.format._cscan, scanapi.h) has checked a's lines before pos (line
 * number); code: 0 while it follows, else the stop code of the line at pos (the
 * caller's check goes on from there). */
typedef struct {
    const BtScanAPI *api;
    void *scanner; /* NULL: no check follows the walk */
    Py_ssize_t pos;
    long long number;
    int code;
} Follow;

static const BtScanAPI *scan_api;

/* The lines of a from f->pos up to end (the end of a line) checked; trust 1: the
 * line starting at f->pos is one the walk compared with b's as an op line (b's is
 * the writer's own JSON; the two differ only in hex digits), so its JSON test is
 * skipped.  Lines before f->pos were checked already. */
static inline void
follow_to(Follow *f, const char *a, Py_ssize_t end, int trust)
{
    if (f->scanner == NULL || f->code || f->pos >= end) {
        return;
    }
    f->code = f->api->lines(f->scanner, (const uint8_t *)a, end, &f->pos, &f->number, trust);
}

/* follow_to for the line a[at:end] the walk just passed (its newline at end - 1). */
static inline void
follow_line(Follow *f, const char *a, Py_ssize_t at, Py_ssize_t end, int trust)
{
    if (f->scanner == NULL || f->code || f->pos >= end) {
        return;
    }
    if (f->pos != at) { /* (the walk reads every line from the check's position on) */
        follow_to(f, a, end, 0);
        return;
    }
    f->code = f->api->line(f->scanner, (const uint8_t *)a, end, &f->pos, &f->number, trust);
}

/* skip(a, pa, b, pb, mask_gas, calls_a, calls_b, max_line)
 *   -> (steps, lines, ignored_a, ignored_b, ra, rb, reason)
 * a, b: buffers of the two traces; pa, pb: the start of an op line in each (its
 * step is the first to pass over).  Lines are complete when they end in b"\n"
 * before the end of their buffer.  What is given back lies before ra/rb, the
 * second-to-last op line passed over (0 steps, pa, pb when fewer than three). */
/* The op line s[0:n]'s gas digits [*g0, *g1), when it is one the walk may pass over
 * whatever the other trace's line says: no "event" or "error" member, its gas not
 * the gas of the op line before it (*gas, *gas_n: NULL at the walk's start). */
static int
lone_op(const char *s, Py_ssize_t n, const char *gas, Py_ssize_t gas_n, Py_ssize_t *g0,
        Py_ssize_t *g1)
{
    if (!op_gas(s, n, g0, g1) || s[n - 1] != '}')
        return 0;
    if (has_key(s, body_end(s, n), "\"event\":", 8, "\"error\":", 8))
        return 0;
    return gas == NULL || *g1 - *g0 != gas_n || memcmp(s + *g0, gas, (size_t)gas_n) != 0;
}


/* ---- Steps inserted or removed: the differ's look-ahead on bytes (align) ----
 *
 * Once the differ keeps no more hunks in full, a step that differs starts a
 * divergent region; differ.py's _look_ahead finds where the two streams agree
 * again (the nearest pair (i, j) of window positions, by i + j then i, whose SYNC
 * steps agree) in windows of 8 then 64 steps.  Here the same search runs on the
 * op lines as bytes: each line's members are read as spans, and two steps are
 * judged on the compared fields alone: equal spans are equal values; some unequal
 * spans are surely unequal values (two JSON integers, a value and null, ...); any
 * other pair (a different code number that may name the same function, locals
 * that differ as bytes, ...) is not judged here, and the walk stops (the
 * reference judges it).  Only windows of op lines the walk could pass one by one
 * are searched (no event or error member, a gas unlike the op line before, between
 * them only call lines that leave the code table as it is and return lines), and
 * only while no stream ends within the window; the nearest pair found in the first
 * 8 steps is the one in the first 64 (a nearer pair lies in both), so the answer
 * is the reference's wherever it is given. */

#define WINDOW 64
#define FIRST_WINDOW 8

enum {
    F_PC, F_OP, F_GAS, F_GASCOST, F_MEMSIZE, F_STACK, F_DEPTH, F_REFUND, F_OPNAME,
    F_ERROR, F_RETURNDATA, F_LINE, F_CODE, F_FUNCTION, F_FILE, F_THREAD, F_LOCALS,
    F_GLOBALS, F_EVENT, NFIELDS
}; /* the order of dialects.FIELDS: bit i of the fields mask is FIELDS[i] */

typedef struct {
    Span v[NFIELDS];   /* raw values as written (at NULL: absent); FUNCTION/FILE unused */
    Py_ssize_t start;  /* where the line starts in its buffer */
    Py_ssize_t lines;  /* lines between the region's start and this line */
    Py_ssize_t ignored; /* return lines among them */
    Py_ssize_t len;     /* (Track: the line's length, without its newline) */
} Op;

typedef struct {
    const char *buf;
    Py_ssize_t n, p;   /* the buffer, and the next line to read */
    Py_ssize_t lines, ignored;
    const char *gas;   /* the last op line's gas digits (NULL: not known) */
    Py_ssize_t gas_n;
    PyObject *calls;
    int count;         /* op lines read into ops */
    Op ops[WINDOW + 1];
} Side;

#define R_BAIL 0  /* not judged here: the walk stops */
#define R_FOUND 1
#define R_MORE 2  /* a line runs past the end of a buffer */
#define R_SAME 3  /* the first steps agree (the lines differ in what is not compared) */

/* The end of the JSON value starting at s[v] (strings, literals, numbers, nested
 * objects and arrays), or -1. */
static Py_ssize_t
value_end(const char *s, Py_ssize_t n, Py_ssize_t v)
{
    if (v >= n)
        return -1;
    if (s[v] == '"')
        return string_end(s, n, v);
    if (s[v] == '{' || s[v] == '[') {
        int level = 0;
        for (Py_ssize_t i = v; i < n; i++) {
            char c = s[i];
            if (c == '"') {
                i = string_end(s, n, i);
                if (i < 0)
                    return -1;
                i--;
            } else if (c == '{' || c == '[') {
                level++;
            } else if (c == '}' || c == ']') {
                if (--level == 0)
                    return i + 1;
            }
        }
        return -1;
    }
    Py_ssize_t e = v;
    while (e < n && s[e] != ',' && s[e] != '}')
        e++;
    return e == v ? -1 : e;
}

static int
field_of(const char *key, Py_ssize_t kn)
{
#define IS(lit) (memcmp(key, lit, sizeof(lit) - 1) == 0)
    switch (kn) { /* (by length first: a line's members are looked up here, each) */
    case 2:
        return IS("pc") ? F_PC : IS("op") ? F_OP : -1;
    case 3:
        return IS("gas") ? F_GAS : -1;
    case 4:
        return IS("line") ? F_LINE : IS("code") ? F_CODE : -1;
    case 5:
        return IS("stack") ? F_STACK : IS("depth") ? F_DEPTH : IS("error") ? F_ERROR
             : IS("event") ? F_EVENT : -1;
    case 6:
        return IS("refund") ? F_REFUND : IS("opName") ? F_OPNAME : IS("thread") ? F_THREAD
             : IS("locals") ? F_LOCALS : -1;
    case 7:
        return IS("gasCost") ? F_GASCOST : IS("memSize") ? F_MEMSIZE
             : IS("globals") ? F_GLOBALS : -1;
    case 10:
        return IS("returnData") ? F_RETURNDATA : IS("blocktrace") ? -2 : -1;
    default:
        return -1;
    }
#undef IS
}

/* An op line s[0:n] read as a flat object of members: 1, or 0 when the walk does
 * not read it (a key with an escape, a member twice, a header's member, no pc, op
 * or gas, an event or error member, a value that is no JSON value). */
static int
members(const char *s, Py_ssize_t n, Op *op);
static int
kind_of_value(const char *v, Py_ssize_t n);
#define K_INT 1   /* an integer (as the walk reads one without doubt: at most 18 digits) */
#define K_STR 2
#define K_NULL 4
#define K_BOOL 8
#define K_ANY 16

static int
op_members(const char *s, Py_ssize_t n, Op *op)
{
    if (!members(s, n, op))
        return 0;
    const Span *gas = &op->v[F_GAS], *depth = &op->v[F_DEPTH];
    if (op->v[F_PC].at == NULL || op->v[F_OP].at == NULL || gas->at == NULL ||
        op->v[F_EVENT].at != NULL || op->v[F_ERROR].at != NULL)
        return 0;
    /* a depth the reference reads as a number (absent or null: 1); a pc and an op that
     * are JSON integers (a string is parsed by the reference, which may refuse it) */
    if (depth->at != NULL && !(kind_of_value(depth->at, depth->n) & (K_INT | K_NULL)))
        return 0;
    if (!(kind_of_value(op->v[F_PC].at, op->v[F_PC].n) & K_INT) ||
        !(kind_of_value(op->v[F_OP].at, op->v[F_OP].n) & K_INT))
        return 0;
    /* the gas a "0x..." string (the reference reads it so; any other form: not here) */
    if (gas->n < 5 || gas->at[0] != '"' || gas->at[1] != '0' || gas->at[2] != 'x')
        return 0;
    for (Py_ssize_t k = 3; k < gas->n - 1; k++) {
        char c = gas->at[k];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return 0;
    }
    return 1;
}

/* The JSON kind of a member's value (K_INT ... K_ANY, above: the kinds the reference's
 * decoder takes for a member, eip3155/records.py RawLine; a member of another kind is
 * its ValidationError, a TraceError), or 0. */
static int
kind_of_value(const char *v, Py_ssize_t n)
{
    if (n <= 0)
        return 0;
    switch (v[0]) {
    case '"':
        return K_STR;
    case 'n':
        return n == 4 && memcmp(v, "null", 4) == 0 ? K_NULL : 0;
    case 't':
        return n == 4 && memcmp(v, "true", 4) == 0 ? K_BOOL : 0;
    case 'f':
        return n == 5 && memcmp(v, "false", 5) == 0 ? K_BOOL : 0;
    case '{':
    case '[':
        return K_ANY;
    default: {
        Py_ssize_t i = v[0] == '-' ? 1 : 0;
        if (n - i < 1 || n - i > 18)
            return 0;
        for (; i < n; i++) {
            if (v[i] < '0' || v[i] > '9')
                return 0;
        }
        return K_INT;
    }
    }
}

/* The kinds the reference's decoder takes for member f (FIELDS order), or, for a
 * member the walk does not record (f < 0), for the key itself (K_ANY: any). */
static int
kinds_taken(int f, const char *key, Py_ssize_t kn)
{
    switch (f) {
    case F_PC: case F_OP: case F_GAS: case F_GASCOST: case F_MEMSIZE: case F_DEPTH:
    case F_REFUND:
        return K_INT | K_STR | K_NULL;
    case F_OPNAME: case F_RETURNDATA: case F_EVENT:
        return K_STR | K_NULL;
    case F_LINE:
        return K_INT | K_NULL;
    case F_CODE: case F_THREAD:
        return K_INT | K_STR | K_NULL;
    default:
        break;
    }
    if (f >= 0)
        return K_ANY; /* stack, error, locals, globals */
    if (kn == 4 && memcmp(key, "hash", 4) == 0)
        return K_ANY; /* (every line's last member) */
#define OTHER(lit, k) {lit, (Py_ssize_t)sizeof(lit) - 1, k}
    static const struct { const char *name; Py_ssize_t n; int kinds; } others[] = {
        OTHER("kind", K_STR | K_NULL), OTHER("name", K_STR | K_NULL),
        OTHER("file", K_STR | K_NULL), OTHER("python", K_STR | K_NULL),
        OTHER("stateRoot", K_STR | K_NULL), OTHER("test", K_STR | K_NULL),
        OTHER("fork", K_STR | K_NULL), OTHER("logsRoot", K_STR | K_NULL),
        OTHER("firstLine", K_INT | K_NULL), OTHER("gasUsed", K_INT | K_STR | K_NULL),
        OTHER("pass", K_BOOL | K_NULL),
    };
#undef OTHER
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        if (others[i].n == kn && memcmp(others[i].name, key, (size_t)kn) == 0)
            return others[i].kinds;
    }
    return K_ANY; /* hash, output, and members the decoder ignores */
}

/* A line s[0:n] read as a flat object of members (op_members, whatever its members
 * are): 1, or 0 when the walk does not read it (also a member of a kind the reference's
 * decoder refuses: the reference says so). */
static int
members(const char *s, Py_ssize_t n, Op *op)
{
    memset(op->v, 0, sizeof(op->v));
    if (n < 2 || s[0] != '{' || s[n - 1] != '}')
        return 0;
    Py_ssize_t i = 1;
    for (;;) {
        if (i >= n || s[i] != '"')
            return 0;
        Py_ssize_t ke = string_end(s, n, i);
        if (ke < 0 || ke >= n || s[ke] != ':')
            return 0;
        for (Py_ssize_t k = i + 1; k < ke - 1; k++) {
            if (s[k] == '\\')
                return 0;
        }
        Py_ssize_t v = ke + 1, ve = value_end(s, n, v);
        if (ve < 0 || ve >= n)
            return 0;
        int f = field_of(s + i + 1, ke - i - 2);
        if (f == -2)
            return 0;
        int taken = kinds_taken(f, s + i + 1, ke - i - 2);
        if (!(taken & K_ANY) && !(kind_of_value(s + v, ve - v) & taken))
            return 0; /* the reference refuses the line: it says so */
        if (f >= 0) {
            if (op->v[f].at != NULL)
                return 0;
            op->v[f] = (Span){s + v, ve - v};
        }
        if (s[ve] == '}') {
            if (ve != n - 1)
                return 0;
            break;
        }
        if (s[ve] != ',')
            return 0;
        i = ve + 1;
    }
    return 1;
}

/* A gas value's digits g[0:n] (inside its quotes; op_gas took any of [0-9a-fx]) as the
 * reference reads them: "0x" and hex digits. */
static inline int
hex_gas(const char *g, Py_ssize_t n)
{
    if (n < 3 || g[0] != '0' || g[1] != 'x')
        return 0;
    if (n <= 18) { /* (up to 64 bits: two words, no 'x' byte in either) */
        const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
        uint64_t w0 = 0, w1 = 0;
        memcpy(&w0, g + 2, (size_t)(n - 2 < 8 ? n - 2 : 8));
        if (n > 10)
            memcpy(&w1, g + 10, (size_t)(n - 10));
        w0 ^= ones * 'x';
        w1 ^= ones * 'x';
        return !(((w0 - ones) & ~w0 & highs) | ((w1 - ones) & ~w1 & highs));
    }
    int x = 0;
    for (Py_ssize_t k = 2; k < n; k++)
        x |= g[k] == 'x';
    return !x;
}

/* Whether the members of a line from s[i] on (s[i] the ',' or '{' before one) up to n,
 * where its hash member starts (body_end; the line's end when it has none), are each of
 * a kind the reference's decoder takes, with no header's member (blocktrace), none of
 * those in ``refused`` (bits of FIELDS) and none that the walk reads written twice (bits
 * in ``seen``, those read already), and a depth that is a number or null: members'
 * judgement of the same line in one pass, nothing recorded, the hash member (of any
 * kind) left alone. */
static int
kinds_from(const char *s, Py_ssize_t n, Py_ssize_t i, unsigned seen, unsigned refused)
{
    while (i < n) {
        if (s[i] == '}' && i == n - 1)
            return 1; /* (the line's end: no hash member) */
        if ((s[i] != ',' && s[i] != '{') || i + 1 >= n || s[i + 1] != '"')
            return 0;
        Py_ssize_t k = i + 2, ke = k;
        while (ke < n && s[ke] != '"' && s[ke] != '\\')
            ke++;
        if (ke + 1 >= n || s[ke] != '"' || s[ke + 1] != ':')
            return 0; /* (a key with an escape: members says no too) */
        Py_ssize_t v = ke + 2, ve;
        if (v >= n)
            return 0;
        int f = field_of(s + k, ke - k);
        if (f == -2 || (f >= 0 && (refused & (1u << f))))
            return 0;
        int taken = kinds_taken(f, s + k, ke - k), kind;
        if (f >= 0) {
            if (seen & (1u << f))
                return 0;
            seen |= 1u << f;
        }
        ve = value_end(s, n, v);
        kind = s[v] == '"' ? K_STR : ve < 0 ? 0 : kind_of_value(s + v, ve - v);
        if (ve < 0 || (!(taken & K_ANY) && !(kind & taken)))
            return 0;
        if (f == F_DEPTH && !(kind & (K_INT | K_NULL)))
            return 0; /* (as op_members: a depth spelled otherwise is the reference's) */
        i = ve;
    }
    return i == n;
}

static int
kinds_ok(const char *s, Py_ssize_t n)
{
    return s[n - 1] == '}' && kinds_from(s, body_end(s, n), 0, 0, 0);
}

/* op_members' judgement of the members after the gas of an op line the walk passes as
 * equal in both traces (their bytes just compared: in cache), s[0:n] its body
 * (body_end), s[i] the byte after its gas string (op_gas read pc, op and gas before it;
 * the gas digits are hex_gas's): no event or error member, and every other member of a
 * kind the reference takes (its depth a number or null). */
static int
op_kinds(const char *s, Py_ssize_t n, Py_ssize_t i)
{
    return kinds_from(s, n, i, (1u << F_PC) | (1u << F_OP) | (1u << F_GAS),
                      (1u << F_EVENT) | (1u << F_ERROR));
}

/* Read op lines into side->ops up to ``want`` of them: R_FOUND, R_MORE, or R_BAIL
 * at a line the walk does not read (the GIL held: call lines are looked up). */
static int
side_read(Side *side, int want, Py_ssize_t max_line)
{
    while (side->count < want) {
        const char *l = side->buf + side->p;
        const char *e = newline(l, side->buf + side->n);
        if (e == NULL)
            return R_MORE;
        Py_ssize_t n = e - l;
        if (n + 1 > max_line || n < 2)
            return R_BAIL;
        if (l[1] == '"' && l[2] == 'p') {
            Op *op = &side->ops[side->count];
            if (!op_members(l, n, op))
                return R_BAIL;
            const Span *gas = &op->v[F_GAS];
            if (side->gas != NULL && gas->n - 2 == side->gas_n &&
                memcmp(gas->at + 1, side->gas, (size_t)side->gas_n) == 0)
                return R_BAIL; /* may merge with the op line before */
            side->gas = gas->at + 1;
            side->gas_n = gas->n - 2;
            op->start = side->p;
            op->lines = side->lines;
            op->ignored = side->ignored;
            side->count++;
        } else {
            int kind = passable(side->calls, l, n);
            if (kind < 0)
                return -1;
            if (kind == 0)
                return R_BAIL;
            side->ignored += kind == IGNORED;
        }
        side->p += n + 1;
        side->lines++;
    }
    return R_FOUND;
}

/* Start the side's window at the op line at p when the last window read it (the
 * lines after it were read as they are now: the window goes on from there); 0 when
 * it did not. */
static int
side_from(Side *side, Py_ssize_t p)
{
    int k = 0;
    while (k < side->count && side->ops[k].start < p)
        k++;
    if (k == side->count || side->ops[k].start != p)
        return 0;
    Py_ssize_t lines = side->ops[k].lines, ignored = side->ops[k].ignored;
    side->count -= k;
    memmove(side->ops, side->ops + k, (size_t)side->count * sizeof(Op));
    for (int i = 0; i < side->count; i++) {
        side->ops[i].lines -= lines;
        side->ops[i].ignored -= ignored;
    }
    side->lines -= lines;
    side->ignored -= ignored;
    return 1;
}

#define EQ 1
#define NE 0
#define UNKNOWN (-1)

static int
is_null(const Span *x)
{
    return x->at == NULL || (x->n == 4 && memcmp(x->at, "null", 4) == 0);
}

/* A JSON integer as the writer writes one: digits, no sign, no leading zero. */
static int
plain_int(const Span *x)
{
    if (x->at == NULL || x->n < 1 || x->n > 18 || (x->at[0] == '0' && x->n > 1))
        return 0;
    for (Py_ssize_t i = 0; i < x->n; i++) {
        if (x->at[i] < '0' || x->at[i] > '9')
            return 0;
    }
    return 1;
}

/* A JSON string with no escape. */
static int
plain_str(const Span *x)
{
    return x->at != NULL && x->n >= 2 && x->at[0] == '"' &&
           memchr(x->at, '\\', (size_t)x->n) == NULL;
}

static int
same_bytes(const Span *x, const Span *y)
{
    return x->n == y->n && (x->n == 0 || memcmp(x->at, y->at, (size_t)x->n) == 0);
}

/* A "0x..." gas string in its one spelling (lower-case digits, no leading zero). */
static int
plain_hex(const Span *x)
{
    if (x->n < 4 || (x->at[3] == '0' && x->n > 5))
        return 0;
    for (Py_ssize_t i = 3; i < x->n - 1; i++) {
        if (x->at[i] >= 'A' && x->at[i] <= 'F')
            return 0;
    }
    return 1;
}

/* A flat object's next member from s[*i] (at '{' or ',' before it): its key and value
 * as spans, when both are in a spelling the reference's canonical form keeps byte for
 * byte (compare.canonical_value: msgspec's compact JSON, keys sorted, ` at 0x…` masked):
 * a key and a string value printable ASCII with no backslash and no " at 0x", a value a
 * JSON integer as the writer writes one (no leading zero, at most 18 digits, a minus
 * before a digit other than 0), null, true or false.  1, or 0 (the end, or not such a
 * member: *i then stands on the closing brace when it is the end). */
static int
plain_member(const char *s, Py_ssize_t n, Py_ssize_t *i, Span *key, Span *value)
{
    Py_ssize_t at = *i;
    if (at + 1 >= n || (s[at] != '{' && s[at] != ',') || s[at + 1] != '"')
        return 0;
    Py_ssize_t k = at + 2, ke = k;
    while (ke < n && s[ke] != '"') {
        if (s[ke] < 0x20 || s[ke] > 0x7e || s[ke] == '\\')
            return 0;
        ke++;
    }
    if (ke + 2 >= n || s[ke + 1] != ':')
        return 0;
    Py_ssize_t v = ke + 2, ve = v;
    if (s[v] == '"') {
        for (ve = v + 1; ve < n && s[ve] != '"'; ve++) {
            if (s[ve] < 0x20 || s[ve] > 0x7e || s[ve] == '\\')
                return 0;
        }
        if (ve >= n)
            return 0;
        ve++;
    } else {
        while (ve < n && s[ve] != ',' && s[ve] != '}')
            ve++;
        Span x = {s + v, ve - v};
        int number = x.n > 0 && x.at[0] == '-'
            ? (x.n > 1 && x.at[1] != '0' && plain_int(&(Span){x.at + 1, x.n - 1}))
            : plain_int(&x);
        if (!number && !(x.n == 4 && memcmp(x.at, "null", 4) == 0) &&
            !(x.n == 4 && memcmp(x.at, "true", 4) == 0) &&
            !(x.n == 5 && memcmp(x.at, "false", 5) == 0))
            return 0;
    }
    if (ve >= n || (s[ve] != ',' && s[ve] != '}'))
        return 0;
    *key = (Span){s + k, ke - k};
    *value = (Span){s + v, ve - v};
    *i = ve;
    return 1;
}

/* Whether the text s[0:n] holds " at 0x" (an address the canonical form masks). */
static int
has_address(const char *s, Py_ssize_t n)
{
    for (const char *p = s; (p = memchr(p, ' ', (size_t)(s + n - p))) != NULL; p++) {
        if (s + n - p >= 6 && memcmp(p, " at 0x", 6) == 0)
            return 1;
    }
    return 0;
}

#define FLAT_KEYS 64

/* Two locals (or globals) values that differ as bytes: NE when they surely differ as
 * the reference's canonical values do -- two flat objects of plain members
 * (plain_member), the same keys in the same order, none twice, no address in either:
 * their canonical forms are their members in one order, each as written, so bytes
 * that differ are values that differ -- else UNKNOWN (the reference judges them). */
static int
flat_cmp(const Span *a, const Span *b)
{
    if (a->n < 2 || b->n < 2 || a->at[0] != '{' || b->at[0] != '{' ||
        a->at[a->n - 1] != '}' || b->at[b->n - 1] != '}')
        return UNKNOWN;
    if (has_address(a->at, a->n) || has_address(b->at, b->n))
        return UNKNOWN;
    Span keys[FLAT_KEYS];
    int count = 0, differ = 0;
    Py_ssize_t i = 0, j = 0;
    for (;;) {
        Span ka, va, kb, vb;
        int more_a = plain_member(a->at, a->n, &i, &ka, &va);
        int more_b = plain_member(b->at, b->n, &j, &kb, &vb);
        if (!more_a || !more_b) {
            /* both at their closing brace (the whole object read), or not judged */
            if (more_a || more_b || i != a->n - 1 || j != b->n - 1 ||
                a->at[i] != '}' || b->at[j] != '}' || (count == 0 && (i != 0 || j != 0)))
                return UNKNOWN;
            break;
        }
        if (!same_bytes(&ka, &kb) || count == FLAT_KEYS)
            return UNKNOWN;
        for (int t = 0; t < count; t++) {
            if (same_bytes(&keys[t], &ka))
                return UNKNOWN; /* a key twice: the decoder keeps the last */
        }
        keys[count++] = ka;
        differ |= !same_bytes(&va, &vb);
    }
    return differ ? NE : UNKNOWN;
}

/* Whether two op lines' steps agree on field f, as canonical values compare. */
static int
field_cmp(int f, const Op *x, const Op *y)
{
    const Span *a = &x->v[f], *b = &y->v[f];
    switch (f) {
    case F_FUNCTION:
    case F_FILE:
        /* the code tables agree as far as the fields see them (skip._agree) and the
         * walk passes no call line that changes them: one code number, one function */
        a = &x->v[F_CODE];
        b = &y->v[F_CODE];
        return (is_null(a) && is_null(b)) || same_bytes(a, b) ? EQ : UNKNOWN;
    case F_PC:
    case F_OP:
        if (same_bytes(a, b))
            return EQ;
        return plain_int(a) && plain_int(b) ? NE : UNKNOWN;
    case F_DEPTH: {
        static const Span one = {"1", 1};
        if (a->at == NULL)
            a = &one;
        if (b->at == NULL)
            b = &one;
        if (same_bytes(a, b))
            return EQ;
        return plain_int(a) && plain_int(b) ? NE : UNKNOWN;
    }
    case F_GAS:
        if (same_bytes(a, b))
            return EQ;
        return plain_hex(a) && plain_hex(b) ? NE : UNKNOWN;
    case F_LINE:
    case F_CODE:
    case F_THREAD:
        if (is_null(a) && is_null(b))
            return EQ;
        if (same_bytes(a, b))
            return EQ;
        if (is_null(a) || is_null(b))
            return (is_null(a) ? (plain_int(b) || plain_str(b)) : (plain_int(a) || plain_str(a)))
                ? NE : UNKNOWN;
        if ((plain_int(a) || plain_str(a)) && (plain_int(b) || plain_str(b)))
            return f == F_LINE && (plain_str(a) || plain_str(b)) ? UNKNOWN : NE;
        return UNKNOWN;
    case F_LOCALS:
    case F_GLOBALS:
        if (is_null(a) && is_null(b))
            return EQ;
        if (same_bytes(a, b))
            return EQ;
        return is_null(a) || is_null(b) ? NE : flat_cmp(a, b);
    case F_OPNAME:
        if (is_null(a) && is_null(b))
            return EQ;
        if (same_bytes(a, b))
            return EQ;
        return plain_str(a) && plain_str(b) ? NE : UNKNOWN;
    case F_ERROR:
    case F_EVENT: /* (lines with either are not read here) */
        return EQ;
    default: /* gasCost, memSize, stack, refund, returnData */
        if (is_null(a) && is_null(b))
            return EQ;
        return same_bytes(a, b) ? EQ : UNKNOWN;
    }
}

/* Whether two steps agree on the compared fields: EQ, NE or UNKNOWN. */
static int
step_cmp(const Op *x, const Op *y, unsigned long fields)
{
    int out = EQ;
    for (int f = 0; f < NFIELDS; f++) {
        if (!(fields & (1UL << f)))
            continue;
        int got = field_cmp(f, x, y);
        if (got == NE)
            return NE;
        if (got == UNKNOWN)
            out = UNKNOWN;
    }
    return out;
}

/* Whether the SYNC steps from (i, j) agree: EQ, NE or UNKNOWN. */
static int
agree_at(const Op *A, const Op *B, int i, int j, unsigned long fields)
{
    int out = EQ;
    for (int t = 0; t < SYNC; t++) {
        int got = step_cmp(&A[i + t], &B[j + t], fields);
        if (got == NE)
            return NE;
        if (got == UNKNOWN)
            out = UNKNOWN;
    }
    return out;
}

/* The nearest pair (i, j) with sum s in [from, to] whose SYNC steps agree, all within
 * ``size`` steps: R_FOUND (*da, *db), R_BAIL when a pair before it is not judged here,
 * else -2 (none). */
static int
nearest(const Op *A, const Op *B, int from, int to, int size, unsigned long fields,
        int *da, int *db)
{
    for (int s = from; s <= to; s++) {
        for (int i = 0; i <= s; i++) {
            int j = s - i;
            if (i + SYNC > size || j + SYNC > size)
                continue;
            int got = agree_at(A, B, i, j, fields);
            if (got == UNKNOWN)
                return R_BAIL;
            if (got == EQ) {
                *da = i;
                *db = j;
                return R_FOUND;
            }
        }
    }
    return -2;
}

/* A side's steps ahead, as the look-ahead reads them: read(side, want, max_line) reads
 * up to ``want`` of them (R_FOUND, R_MORE, R_BAIL, or -1 on error), ops(side) the first
 * of those read (valid until the next read).  Op lines one by one (Side), or the steps
 * of --by-line and of level line (Track, below). */
typedef struct {
    int (*read)(void *side, int want, Py_ssize_t max_line);
    const Op *(*ops)(void *side);
} Ahead;

/* The divergent region starting at both sides' next step, as differ._look_ahead
 * finds it: R_FOUND with its size on each side (*da, *db), R_SAME when the first
 * steps agree after all, R_MORE, R_BAIL, or -1 on error. */
static int
region_of(const Ahead *how, void *A, void *B, unsigned long fields, Py_ssize_t max_line,
          int *da, int *db)
{
    /* the first window's steps, and the one after them (the last must not merge) */
    int got = how->read(A, FIRST_WINDOW + 1, max_line);
    if (got == R_FOUND)
        got = how->read(B, FIRST_WINDOW + 1, max_line);
    if (got != R_FOUND)
        return got;
    const Op *a = how->ops(A), *b = how->ops(B);
    int first = step_cmp(&a[0], &b[0], fields);
    if (first == EQ)
        return R_SAME;
    if (first == UNKNOWN)
        return R_BAIL;
    /* one changed step: the next SYNC agree */
    got = agree_at(a, b, 1, 1, fields);
    if (got == UNKNOWN)
        return R_BAIL;
    if (got == EQ) {
        *da = *db = 1;
        return R_FOUND;
    }
    got = nearest(a, b, 1, FIRST_WINDOW - SYNC, FIRST_WINDOW, fields, da, db);
    if (got != -2)
        return got;
    got = how->read(A, WINDOW + 1, max_line);
    if (got == R_FOUND)
        got = how->read(B, WINDOW + 1, max_line);
    if (got != R_FOUND)
        return got;
    got = nearest(how->ops(A), how->ops(B), FIRST_WINDOW - SYNC + 1, WINDOW - SYNC, WINDOW,
                  fields, da, db);
    return got == -2 ? R_BAIL : got;
}

static int
side_read_any(void *side, int want, Py_ssize_t max_line)
{
    return side_read((Side *)side, want, max_line);
}

static const Op *
side_ops(void *side)
{
    return ((Side *)side)->ops;
}

static const Ahead side_ahead = {side_read_any, side_ops};

/* region_of over op lines one by one. */
static int
region(Side *A, Side *B, unsigned long fields, Py_ssize_t max_line, int *da, int *db)
{
    return region_of(&side_ahead, A, B, fields, max_line, da, db);
}

/* The hunks of a divergent region of da steps of a and db of b the walk passes
 * (differ.diff_steps and _record, with no hunk adjacent to the last one: *since > 0),
 * counted: a changed region (da == db) paired, pairs that agree (verdicts[k] EQ)
 * common steps; its steps in hunks added to *diff_a, *diff_b. */
static void
count_region(const int *verdicts, int da, int db, Py_ssize_t *hunks, Py_ssize_t *since,
             Py_ssize_t *diff_a, Py_ssize_t *diff_b)
{
    if (da != db) {
        (*hunks)++;
        *since = 0;
        *diff_a += da;
        *diff_b += db;
        return;
    }
    int in_run = 0;
    for (int k = 0; k < da; k++) {
        if (verdicts[k] == EQ) {
            (*since)++;
            in_run = 0;
            continue;
        }
        if (!in_run && *since > 0)
            (*hunks)++;
        in_run = 1;
        *since = 0;
        (*diff_a)++;
        (*diff_b)++;
    }
}

/* The verdicts of a changed region's pairs (da == db) into verdicts: R_FOUND, or R_BAIL
 * when a pair is not judged here. */
static int
pair_verdicts(const Op *a, const Op *b, int da, unsigned long fields, int *verdicts)
{
    for (int k = 0; k < da; k++) {
        verdicts[k] = step_cmp(&a[k], &b[k], fields);
        if (verdicts[k] == UNKNOWN)
            return R_BAIL;
    }
    return R_FOUND;
}

static PyObject *
skip_in(const char *a, Py_ssize_t na, const char *b, Py_ssize_t nb, PyObject *const *args,
        Follow *f, PyObject *judge, Py_ssize_t since_in, long long fields)
{
    Py_ssize_t pa = PyLong_AsSsize_t(args[1]);
    Py_ssize_t pb = PyLong_AsSsize_t(args[3]);
    int mask_gas = PyObject_IsTrue(args[4]);
    Py_ssize_t max_line = PyLong_AsSsize_t(args[7]);
    if (PyErr_Occurred() || mask_gas < 0)
        return NULL;
    if (pa < 0 || pa > na || pb < 0 || pb > nb) {
        PyErr_SetString(PyExc_ValueError, "position outside the buffer");
        return NULL;
    }
    PyObject *calls_a = args[5], *calls_b = args[6];
    Mark start = {pa, pb, 0, 0, 0, 0, 0, 0, 0, since_in, 0, 0};
    Mark last = start, before_last = start, before_hunk = start;
    Mark now = start; /* (a, b and since are kept in pa, pb and since) */
    Py_ssize_t hunks = 0, since = since_in; /* steps in common since the last hunk */
    int pending = 0; /* op lines still to pass before the last hunk is sure */
    const char *gas_a = NULL, *gas_b = NULL;
    Py_ssize_t gas_na = 0, gas_nb = 0;
    int reason = REASON_STOP;
    Side *sides = NULL; /* the look-ahead's windows (align) */
    KnownSet *known = PyMem_Calloc(KNOWN_SETS, sizeof(KnownSet));
    if (known == NULL)
        return PyErr_NoMemory();
    if (fields >= 0) {
        sides = PyMem_Malloc(2 * sizeof(Side));
        if (sides == NULL) {
            PyMem_Free(known);
            return PyErr_NoMemory();
        }
        sides[0].count = sides[1].count = 0;
    }
#define MARK() ((Mark){pa, pb, now.lines, now.lines_b, now.ignored_a, now.ignored_b, \
                       now.steps, now.steps_b, hunks, since, now.diff_a, now.diff_b})
    /* The op lines need no object: the GIL is let go while they are compared (the
     * stored golden's chain check runs on another thread), taken back for a call
     * line's look-up in its set. */
    if (f->scanner != NULL && (f->pos < 0 || f->pos > na)) {
        PyErr_SetString(PyExc_ValueError, "the check's position is outside the buffer");
        PyMem_Free(sides);
        PyMem_Free(known);
        return NULL;
    }
    PyThreadState *released = PyEval_SaveThread();
    follow_to(f, a, pa, 0); /* the lines read by the reference since the check's last */
    for (;;) {
        const char *la = a + pa, *lb = b + pb;
        const char *ea = newline(la, a + na);
        const char *eb = newline(lb, b + nb);
        if (ea == NULL || eb == NULL) {
            reason = REASON_MORE;
            break;
        }
        Py_ssize_t sa = ea - la, sb = eb - lb; /* without the newline */
        if (sa + 1 > max_line || sb + 1 > max_line || sa < 2 || sb < 2)
            break;
        if (la[1] == '"' && la[2] == 'p') {
            Py_ssize_t ga0 = 0, ga1 = 0, gb0 = 0, gb1 = 0;
            /* b's line starts as a's up to the gas digits: its own are read from there */
            int same = op_gas(la, sa, &ga0, &ga1) && sb > ga0 &&
                       memcmp(la, lb, (size_t)ga0) == 0 && gas_end(lb, sb, ga0, &gb1);
            gb0 = ga0;
            Py_ssize_t ba = 0, bb = 0;
            int trusted = 1;
            if (same) {
                ba = body_end(la, sa);
                bb = body_end(lb, sb);
                if (mask_gas) {
                    same = ba - ga1 == bb - gb1 &&
                           memcmp(la + ga1, lb + gb1, (size_t)(ba - ga1)) == 0;
                } else {
                    same = ba == bb && memcmp(la, lb, (size_t)ba) == 0;
                }
            }
            if (!same && sides != NULL && pending <= 1 && since > 0) {
                /* the differ's look-ahead, on the lines as bytes */
                Side *A = &sides[0], *B = &sides[1];
                if (!side_from(A, pa)) {
                    A->buf = a; A->n = na; A->p = pa; A->lines = A->ignored = 0;
                    A->gas = gas_a; A->gas_n = gas_na; A->calls = calls_a; A->count = 0;
                }
                if (!side_from(B, pb)) {
                    B->buf = b; B->n = nb; B->p = pb; B->lines = B->ignored = 0;
                    B->gas = gas_b; B->gas_n = gas_nb; B->calls = calls_b; B->count = 0;
                }
                int da = 0, db = 0;
                PyEval_RestoreThread(released);
                int got = region(A, B, (unsigned long)fields, max_line, &da, &db);
                /* a changed region (da == db) is paired: pairs that agree are common */
                int verdicts[WINDOW];
                if (got == R_FOUND && da == db)
                    got = pair_verdicts(A->ops, B->ops, da, (unsigned long)fields, verdicts);
                released = PyEval_SaveThread();
                if (got < 0) {
                    PyEval_RestoreThread(released);
                    PyMem_Free(sides);
                    PyMem_Free(known);
                    return NULL;
                }
                if (got == R_MORE) {
                    reason = REASON_MORE;
                    break;
                }
                if (got == R_SAME) {
                    /* read below as a step in common (its JSON checked as any other line) */
                    if (!op_gas(la, sa, &ga0, &ga1) || !op_gas(lb, sb, &gb0, &gb1))
                        break;
                    same = 1;
                    trusted = 0;
                    ba = body_end(la, sa);
                } else if (got == R_FOUND) {
                    before_last = last;
                    last = MARK();
                    before_hunk = last;
                    count_region(verdicts, da, db, &hunks, &since, &now.diff_a, &now.diff_b);
                    const Op *xa = &A->ops[da], *xb = &B->ops[db];
                    now.steps += da;
                    now.steps_b += db;
                    now.lines += xa->lines;
                    now.lines_b += xb->lines;
                    now.ignored_a += xa->ignored;
                    now.ignored_b += xb->ignored;
                    if (da > 0) {
                        const Span *g = &A->ops[da - 1].v[F_GAS];
                        gas_a = g->at + 1;
                        gas_na = g->n - 2;
                    }
                    if (db > 0) {
                        const Span *g = &B->ops[db - 1].v[F_GAS];
                        gas_b = g->at + 1;
                        gas_nb = g->n - 2;
                    }
                    pa = xa->start;
                    pb = xb->start;
                    follow_to(f, a, pa, 0);
                    pending = CONFIRM;
                    continue;
                }
            }
            if (!same) {
                /* a step that differs: a hunk of its own when the differ would make it one */
                if (judge == NULL || pending > 1 || since <= 0 ||
                    !lone_op(la, sa, gas_a, gas_na, &ga0, &ga1) ||
                    !lone_op(lb, sb, gas_b, gas_nb, &gb0, &gb1))
                    break;
                PyEval_RestoreThread(released);
                PyObject *verdict = PyObject_CallFunction(judge, "y#y#", la, sa, lb, sb);
                int differs = verdict == NULL ? -1 : PyObject_IsTrue(verdict);
                Py_XDECREF(verdict);
                if (differs < 0) {
                    PyMem_Free(sides);
                    PyMem_Free(known);
                    return NULL;
                }
                released = PyEval_SaveThread();
                if (!differs)
                    break;
                follow_line(f, a, pa, pa + sa + 1, 0);
                gas_a = la + ga0;
                gas_na = ga1 - ga0;
                gas_b = lb + gb0;
                gas_nb = gb1 - gb0;
                before_last = last;
                last = MARK();
                before_hunk = last;
                now.steps++;
                now.steps_b++;
                now.diff_a++;
                now.diff_b++;
                hunks++;
                since = 0;
                pending = CONFIRM;
                pa += sa + 1;
                pb += sb + 1;
                now.lines++;
                now.lines_b++;
                continue;
            }
            /* b's line is a's but for gas and hash digits: its members are a's (or
             * the look-ahead read both: neither has an event or error member) */
            if (la[sa - 1] != '}')
                break;
            if (trusted) {
                /* every member of a kind the reference takes (so no event or error
                 * member either), b's gas too where it may differ: the same malformed
                 * line in both traces is the reference's to refuse */
                if ((mask_gas && !hex_gas(lb + gb0, gb1 - gb0)) || !hex_gas(la + ga0, ga1 - ga0))
                    break;
                if (!known_good(known, la + ga1, ba - ga1)) {
                    if (!op_kinds(la, ba, ga1 + 1))
                        break;
                    remember_good(known, la + ga1, ba - ga1);
                }
            } else if (has_key(la, ba, "\"event\":", 8, "\"error\":", 8)) {
                break;
            }
            if (gas_a != NULL &&
                ((ga1 - ga0 == gas_na && memcmp(la + ga0, gas_a, (size_t)gas_na) == 0) ||
                 (gb1 - gb0 == gas_nb && memcmp(lb + gb0, gas_b, (size_t)gas_nb) == 0)))
                break; /* may be the second line of a faulting op */
            follow_line(f, a, pa, pa + sa + 1, trusted);
            gas_a = la + ga0;
            gas_na = ga1 - ga0;
            gas_b = lb + gb0;
            gas_nb = gb1 - gb0;
            before_last = last;
            last = MARK();
            now.steps++;
            now.steps_b++;
            since++;
            if (pending)
                pending--;
        } else {
            /* any mix of lines the reference reads without making a step */
            PyEval_RestoreThread(released);
            int kind_a = passable_known(calls_a, la, sa, known), kind_b = 1;
            if (kind_a > 0)
                kind_b = passable_known(calls_b, lb, sb, known);
            if (kind_a < 0 || kind_b < 0) {
                PyMem_Free(sides);
                PyMem_Free(known);
                return NULL;
            }
            released = PyEval_SaveThread();
            if (kind_a == 0 || kind_b == 0)
                break;
            follow_line(f, a, pa, pa + sa + 1, 0);
            now.ignored_a += kind_a == IGNORED;
            now.ignored_b += kind_b == IGNORED;
        }
        pa += sa + 1;
        pb += sb + 1;
        now.lines++;
        now.lines_b++;
    }
#undef MARK
    PyEval_RestoreThread(released);
    PyMem_Free(sides);
    PyMem_Free(known);
    Mark end = before_last; /* op lines O1..Ok passed: what lies before O(k-1) */
    if (pending && before_hunk.steps + before_hunk.steps_b < end.steps + end.steps_b)
        end = before_hunk; /* the last hunk is not sure yet: the reference reads it */
    if (fields >= 0) {
        return f->scanner != NULL
            ? Py_BuildValue("(nnnnnninLinnnnnn)", end.steps, end.lines, end.ignored_a,
                            end.ignored_b, end.a, end.b, reason, f->pos, f->number, f->code,
                            end.hunks, end.since, end.steps_b, end.lines_b, end.diff_a,
                            end.diff_b)
            : Py_BuildValue("(nnnnnninnnnnn)", end.steps, end.lines, end.ignored_a,
                            end.ignored_b, end.a, end.b, reason, end.hunks, end.since,
                            end.steps_b, end.lines_b, end.diff_a, end.diff_b);
    }
    if (judge != NULL) {
        PyObject *out = f->scanner != NULL
            ? Py_BuildValue("(nnnnnninLinn)", end.steps, end.lines, end.ignored_a,
                            end.ignored_b, end.a, end.b, reason, f->pos, f->number, f->code,
                            end.hunks, end.since)
            : Py_BuildValue("(nnnnnninn)", end.steps, end.lines, end.ignored_a,
                            end.ignored_b, end.a, end.b, reason, end.hunks, end.since);
        return out;
    }
    if (f->scanner != NULL) {
        return Py_BuildValue("(nnnnnninLi)", end.steps, end.lines, end.ignored_a,
                             end.ignored_b, end.a, end.b, reason, f->pos, f->number, f->code);
    }
    return Py_BuildValue("(nnnnnni)", end.steps, end.lines, end.ignored_a, end.ignored_b,
                         end.a, end.b, reason);
}

/* a, b: bytes, or any contiguous buffer (a view of the bytes read).  With three more
 * arguments (scan, pos, number: a ChainScan of a's lines that has checked those
 * before a[pos:], line number), the walk has a's lines checked as it passes them,
 * and the result has three more: (pos, number, code) where the check stands (code
 * 0: it follows, else the scanner's stop code of the line at pos).  With two more
 * at the end (judge, since: judge(line_a, line_b) says whether two op lines are
 * steps that differ; since, the steps in common since the differ's last hunk), a
 * step that differs, with SYNC steps in common after it, is passed over as a hunk of
 * one step on each side, and the result has two more: (hunks, since) as they stand
 * at what is given back. */
static PyObject *
walk(PyObject *const *args, Py_ssize_t nargs, int aligning);

static PyObject *
skip(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8 && nargs != 10 && nargs != 11 && nargs != 13) {
        PyErr_SetString(PyExc_TypeError, "skip() takes 8, 10, 11 or 13 arguments");
        return NULL;
    }
    return walk(args, nargs, 0);
}

/* align(a, pa, b, pb, mask_gas, calls_a, calls_b, max_line[, scan, pos, number],
 *       judge, since, fields) -> skip's answer with a judge, and four more:
 *   (..., hunks, since, steps_b, lines_b, differing_a, differing_b)
 * skip with a judge that also passes over divergent regions of steps inserted,
 * removed or changed as differ._look_ahead aligns them (see region): fields, the
 * mask of the compared fields (bit i: dialects.FIELDS[i]).  The steps and lines
 * passed then differ between a and b: steps and lines are a's, steps_b and lines_b
 * b's; differing_a and differing_b, the steps of each in the hunks passed. */
static PyObject *
align(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 11 && nargs != 14) {
        PyErr_SetString(PyExc_TypeError, "align() takes 11 or 14 arguments");
        return NULL;
    }
    return walk(args, nargs, 1);
}

static PyObject *
walk(PyObject *const *args, Py_ssize_t nargs, int aligning)
{
    long long fields = -1;
    if (aligning) {
        fields = PyLong_AsLongLong(args[nargs - 1]);
        if (fields == -1 && PyErr_Occurred())
            return NULL;
        if (fields < 0 || fields >= (1LL << NFIELDS)) {
            PyErr_SetString(PyExc_ValueError, "align(): fields is not a mask of FIELDS");
            return NULL;
        }
        nargs--; /* the rest reads as skip's */
    }
    if (!PyAnySet_Check(args[5]) || !PyAnySet_Check(args[6])) {
        PyErr_SetString(PyExc_TypeError, "skip(buffer, int, buffer, int, bool, set, set, int"
                        "[, ChainScan, int, int][, judge, int])");
        return NULL;
    }
    PyObject *judge = NULL;
    Py_ssize_t since = 0;
    if (nargs == 10 || nargs == 13) {
        judge = args[nargs - 2];
        if (!PyCallable_Check(judge)) {
            PyErr_SetString(PyExc_TypeError, "skip(): judge must be callable");
            return NULL;
        }
        since = PyLong_AsSsize_t(args[nargs - 1]);
        if (since == -1 && PyErr_Occurred())
            return NULL;
    }
    Follow f = {NULL, NULL, 0, 0, 0};
    if (nargs >= 11) {
        if (scan_api == NULL) {
            scan_api = PyCapsule_Import(BT_SCAN_API_NAME, 0);
            if (scan_api == NULL) {
                return NULL;
            }
        }
        f.api = scan_api;
        f.scanner = scan_api->plain(args[8]);
        if (f.scanner == NULL) {
            PyErr_SetString(PyExc_TypeError, "skip(): scan must be a ChainScan of plain lines");
            return NULL;
        }
        f.pos = PyLong_AsSsize_t(args[9]);
        f.number = PyLong_AsLongLong(args[10]);
        if (PyErr_Occurred()) {
            return NULL;
        }
    }
    Py_buffer va, vb;
    if (PyObject_GetBuffer(args[0], &va, PyBUF_SIMPLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[2], &vb, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&va);
        return NULL;
    }
    PyObject *out = skip_in(va.buf, va.len, vb.buf, vb.len, args, &f, judge, since, fields);
    PyBuffer_Release(&vb);
    PyBuffer_Release(&va);
    return out;
}

/* look(a, pa, b, pb, calls_a, calls_b, max_line, fields) -> (da, db) or None
 * The differ's look-ahead (differ._look_ahead) at a divergence, on the lines as bytes:
 * a[pa:] and b[pb:] start with the op lines of the two steps that differ (read by the
 * reference: each a step of its own), and the answer is the size on each side of the
 * divergent region the look-ahead finds there (see region), or None where it is not
 * found here (the reference looks).  Nothing is passed over. */
static PyObject *
look(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8 || !PyAnySet_Check(args[4]) || !PyAnySet_Check(args[5])) {
        PyErr_SetString(PyExc_TypeError,
                        "look(buffer, int, buffer, int, set, set, int, int) takes 8 arguments");
        return NULL;
    }
    Py_ssize_t pa = PyLong_AsSsize_t(args[1]);
    Py_ssize_t pb = PyLong_AsSsize_t(args[3]);
    Py_ssize_t max_line = PyLong_AsSsize_t(args[6]);
    long long fields = PyLong_AsLongLong(args[7]);
    if (PyErr_Occurred())
        return NULL;
    if (fields < 0 || fields >= (1LL << NFIELDS)) {
        PyErr_SetString(PyExc_ValueError, "look(): fields is not a mask of FIELDS");
        return NULL;
    }
    Py_buffer va, vb;
    if (PyObject_GetBuffer(args[0], &va, PyBUF_SIMPLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[2], &vb, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&va);
        return NULL;
    }
    PyObject *out = NULL;
    Side *sides = NULL;
    if (pa < 0 || pa > va.len || pb < 0 || pb > vb.len) {
        PyErr_SetString(PyExc_ValueError, "position outside the buffer");
        goto done;
    }
    sides = PyMem_Malloc(2 * sizeof(Side));
    if (sides == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Side *A = &sides[0], *B = &sides[1];
    A->buf = va.buf; A->n = va.len; A->p = pa; A->lines = A->ignored = 0;
    A->gas = NULL; A->gas_n = 0; A->calls = args[4]; A->count = 0;
    B->buf = vb.buf; B->n = vb.len; B->p = pb; B->lines = B->ignored = 0;
    B->gas = NULL; B->gas_n = 0; B->calls = args[5]; B->count = 0;
    int da = 0, db = 0;
    int got = region(A, B, (unsigned long)fields, max_line, &da, &db);
    if (got < 0)
        goto done;
    out = got == R_FOUND ? Py_BuildValue("(ii)", da, db) : Py_NewRef(Py_None);
done:
    PyMem_Free(sides);
    PyBuffer_Release(&vb);
    PyBuffer_Release(&va);
    return out;
}

/* ---- --by-line: steps grouped by source line (lines.by_line), on bytes ----
 *
 * ``diff --by-line`` compares one step per executed source line: the first step of
 * each run of steps with the same (depth, code, line, thread), a step with no line
 * (0 or absent) belonging to the run before it.  Each trace is walked on its own to
 * the op line that starts its next run (a group); the two groups' first steps are
 * judged on the compared fields as the look-ahead judges steps (step_cmp); groups
 * that agree are passed over, the steps inside them never compared (the reference
 * compares only a group's first step and the first error in it, and the walk
 * passes no line with an error or event).  Lines read as the walk reads them: op
 * lines as flat objects (op_members) whose gas differs from the op line before,
 * call lines that leave the code table as it is, return lines.  The walk gives
 * back what lies before the second-to-last pair of group starts it reached, so the
 * reference reads the last group in common and what follows. */

typedef struct {
    long long v[4]; /* depth, code, line, thread: absent or null = 1, -1, 0, -1 */
} LineKey;

/* A span holding a JSON integer as the writer writes one, or null / absent (*out =
 * absent): 1, else 0. */
static int
key_int(const Span *x, long long absent, long long *out)
{
    if (is_null(x)) {
        *out = absent;
        return 1;
    }
    if (!plain_int(x))
        return 0;
    long long v = 0;
    for (Py_ssize_t i = 0; i < x->n; i++)
        v = v * 10 + (x->at[i] - '0');
    *out = v;
    return 1;
}

static int
line_key(const Op *op, LineKey *k)
{
    return key_int(&op->v[F_DEPTH], 1, &k->v[0]) && key_int(&op->v[F_CODE], -1, &k->v[1]) &&
           key_int(&op->v[F_LINE], 0, &k->v[2]) && key_int(&op->v[F_THREAD], -1, &k->v[3]);
}

/* ---- The steps of --by-line and of level line, walked on bytes (Track) ----
 *
 * Each trace is walked on its own to its next step: the op line that starts its next
 * group (--by-line: ``grouped``), or its next op line that the projection to level line
 * keeps (an op-level trace against a line-level one: ``keep``, a set of code << 32 | pc,
 * those (function, pc) with the op trace's code numbers; the line-level trace's every op
 * line).  The lines before it are passed as the walks read them: op lines as flat objects
 * (op_members) with no event or error member whose gas differs from the op line before,
 * call lines that leave the code table as it is, return lines.  The steps read ahead
 * wait in a queue: the look-ahead's windows (region_of) where two steps differ. */

typedef struct {
    Py_ssize_t p, lines, ignored, steps; /* the next line; lines, return lines, op lines passed */
    const char *gas;                     /* the last op line's gas digits (NULL: not known) */
    Py_ssize_t gas_n;
    LineKey key;                         /* the group's (grouped; valid when keyed) */
    int keyed;
} Pos;

#define QUEUE (2 * (WINDOW + 1))

typedef struct {
    const char *buf;
    Py_ssize_t n;
    PyObject *calls, *keep; /* keep: NULL, every op line (or group start) is a step */
    int grouped;
    Pos at;                 /* the reader, past the last step queued */
    int head, count;        /* the steps read ahead and not passed: q[head..count) */
    Op q[QUEUE];
    Pos before[QUEUE];      /* the reader at each of them */
} Track;

/* Read the track's next step into its queue: R_FOUND, R_MORE, R_BAIL, or -1 on error. */
static int
track_read(Track *t, Py_ssize_t max_line)
{
    if (t->count == QUEUE) { /* (the queue holds at most WINDOW + 1: half of it) */
        int left = t->count - t->head;
        memmove(t->q, t->q + t->head, (size_t)left * sizeof(Op));
        memmove(t->before, t->before + t->head, (size_t)left * sizeof(Pos));
        t->head = 0;
        t->count = left;
    }
    Op *op = &t->q[t->count];
    Pos *at = &t->at;
    for (;;) {
        const char *l = t->buf + at->p;
        const char *e = newline(l, t->buf + t->n);
        if (e == NULL)
            return R_MORE;
        Py_ssize_t n = e - l;
        if (n + 1 > max_line || n < 2)
            return R_BAIL;
        if (!(l[1] == '"' && l[2] == 'p')) {
            /* a call or return line: passed on each side as it comes (no step) */
            int kind = passable(t->calls, l, n);
            if (kind < 0)
                return -1;
            if (kind == 0)
                return R_BAIL;
            at->ignored += kind == IGNORED;
            at->p += n + 1;
            at->lines++;
            continue;
        }
        if (!op_members(l, n, op))
            return R_BAIL;
        const Span *gas = &op->v[F_GAS];
        if (at->gas != NULL && gas->n - 2 == at->gas_n &&
            memcmp(gas->at + 1, at->gas, (size_t)at->gas_n) == 0)
            return R_BAIL; /* may merge with the op line before */
        int step = 1;
        LineKey k = {{0}};
        if (t->grouped) {
            if (!line_key(op, &k))
                return R_BAIL;
            step = k.v[2] != 0 && (!at->keyed || memcmp(&k, &at->key, sizeof k) != 0);
        } else if (t->keep != NULL) {
            long long code, pc;
            if (op->v[F_CODE].at == NULL || !key_int(&op->v[F_CODE], -1, &code) || code < 0 ||
                !key_int(&op->v[F_PC], -1, &pc) || pc < 0 || code >= (1LL << 30) ||
                pc >= (1LL << 32))
                return R_BAIL;
            PyObject *key = PyLong_FromLongLong((code << 32) | pc);
            if (key == NULL)
                return -1;
            step = PySet_Contains(t->keep, key);
            Py_DECREF(key);
            if (step < 0)
                return -1;
        }
        if (step) {
            t->before[t->count] = *at;
            op->start = at->p;
            op->len = n;
            if (t->grouped) {
                at->key = k;
                at->keyed = 1;
            }
        }
        at->gas = gas->at + 1;
        at->gas_n = gas->n - 2;
        at->steps++;
        at->p += n + 1;
        at->lines++;
        if (step) {
            t->count++;
            return R_FOUND;
        }
    }
}

/* Ahead's read and ops for a Track. */
static int
track_ahead_read(void *side, int want, Py_ssize_t max_line)
{
    Track *t = side;
    while (t->count - t->head < want) {
        int got = track_read(t, max_line);
        if (got != R_FOUND)
            return got;
    }
    return R_FOUND;
}

static const Op *
track_ops(void *side)
{
    Track *t = side;
    return &t->q[t->head];
}

static const Ahead track_ahead = {track_ahead_read, track_ops};

/* Whether two kept op lines are the same step as bytes: equal but for the hash, and the
 * gas when it is not compared (mask_gas). */
static int
same_line(const Track *A, const Op *x, const Track *B, const Op *y, int mask_gas)
{
    const char *la = A->buf + x->start, *lb = B->buf + y->start;
    Py_ssize_t ba = body_end(la, x->len), bb = body_end(lb, y->len);
    if (!mask_gas)
        return ba == bb && memcmp(la, lb, (size_t)ba) == 0;
    const Span *ga = &x->v[F_GAS], *gb = &y->v[F_GAS];
    Py_ssize_t ga0 = ga->at - la, ga1 = ga0 + ga->n, gb0 = gb->at - lb, gb1 = gb0 + gb->n;
    return ga0 == gb0 && memcmp(la, lb, (size_t)ga0) == 0 && ba >= ga1 && bb >= gb1 &&
           ba - ga1 == bb - gb1 && memcmp(la + ga1, lb + gb1, (size_t)(ba - ga1)) == 0;
}

typedef struct {
    Pos a, b;
    Py_ssize_t steps_a, steps_b, hunks, since, diff_a, diff_b;
} TMark;

/* What two tracks have in common from their next steps, passed over: with ``fields``
 * (>= 0, the mask of the compared fields) two steps agree when step_cmp says so (else as
 * bytes, same_line); with ``counting`` (the differ keeps no more hunks in full; since:
 * the steps in common since its last hunk), a divergent region after steps in common is
 * passed over too as the differ's look-ahead aligns it (region_of), counted as it counts
 * hunks.  ``held``: each side starts inside a step the caller holds and judged (a group
 * whose first step --by-line read), passed as one.  The answer, where to give back (the
 * second-to-last pair of steps reached, or the start of a hunk not yet followed by
 * CONFIRM steps in common): (steps_a, reason, pa, ops_a, lines_a, ignored_a, pb, ops_b,
 * lines_b, ignored_b) and with counting five more (steps_b, hunks, since, differing_a,
 * differing_b). */
static PyObject *
track_walk(Track *A, Track *B, long long fields, int mask_gas, int held, Py_ssize_t max_line,
           int counting, Py_ssize_t since_in)
{
    TMark start = {A->at, B->at, 0, 0, 0, since_in, 0, 0};
    TMark last = start, before_last = start, before_hunk = start;
    Py_ssize_t steps_a = held, steps_b = held, hunks = 0, since = since_in + held;
    Py_ssize_t diff_a = 0, diff_b = 0;
    int pending = 0, reason = REASON_STOP, at_start = !held;
    for (;;) {
        int got = track_ahead_read(A, 1, max_line);
        if (got == R_FOUND)
            got = track_ahead_read(B, 1, max_line);
        if (got < 0)
            return NULL;
        if (got != R_FOUND) {
            reason = got == R_MORE ? REASON_MORE : REASON_STOP;
            break;
        }
        if (at_start) {
            at_start = 0; /* (the start itself) */
        } else {
            before_last = last;
            last = (TMark){A->before[A->head], B->before[B->head], steps_a, steps_b, hunks,
                           since, diff_a, diff_b};
        }
        const Op *x = track_ops(A), *y = track_ops(B);
        int cmp = !A->grouped && same_line(A, x, B, y, mask_gas) ? EQ
                : fields >= 0 ? step_cmp(x, y, (unsigned long)fields) : UNKNOWN;
        if (cmp == EQ) {
            A->head++;
            B->head++;
            steps_a++;
            steps_b++;
            since++;
            if (pending)
                pending--;
            continue;
        }
        if (cmp != NE || !counting || pending > 1 || since <= 0)
            break;
        int da = 0, db = 0, verdicts[WINDOW];
        got = region_of(&track_ahead, A, B, (unsigned long)fields, max_line, &da, &db);
        if (got == R_FOUND && da == db)
            got = pair_verdicts(track_ops(A), track_ops(B), da, (unsigned long)fields,
                                verdicts);
        if (got < 0)
            return NULL;
        if (got == R_MORE)
            reason = REASON_MORE;
        if (got != R_FOUND)
            break;
        before_hunk = last;
        count_region(verdicts, da, db, &hunks, &since, &diff_a, &diff_b);
        A->head += da;
        B->head += db;
        steps_a += da;
        steps_b += db;
        pending = CONFIRM;
    }
    TMark end = before_last;
    if (pending && before_hunk.steps_a + before_hunk.steps_b < end.steps_a + end.steps_b)
        end = before_hunk; /* the last hunk is not sure yet: the reference reads it */
    if (counting)
        return Py_BuildValue("(ninnnnnnnnnnnnn)", end.steps_a, reason, end.a.p, end.a.steps,
                             end.a.lines, end.a.ignored, end.b.p, end.b.steps, end.b.lines,
                             end.b.ignored, end.steps_b, end.hunks, end.since, end.diff_a,
                             end.diff_b);
    return Py_BuildValue("(ninnnnnnnn)", end.steps_a, reason, end.a.p, end.a.steps,
                         end.a.lines, end.a.ignored, end.b.p, end.b.steps, end.b.lines,
                         end.b.ignored);
}

typedef struct {
    long long fields;
    int mask_gas, held, counting;
    Py_ssize_t max_line, since;
} WalkArgs;

/* track_walk's answer, or (look) region_of's: (da, db) of a region whose first steps are
 * at both tracks' starts, or None. */
static PyObject *
tracks_run(Track *sides, const WalkArgs *w, int look)
{
    if (!look)
        return track_walk(&sides[0], &sides[1], w->fields, w->mask_gas, w->held, w->max_line,
                          w->counting, w->since);
    Py_ssize_t pa = sides[0].at.p, pb = sides[1].at.p;
    int da = 0, db = 0;
    int got = region_of(&track_ahead, &sides[0], &sides[1], (unsigned long)w->fields,
                        w->max_line, &da, &db);
    if (got < 0)
        return NULL;
    /* (the region's first steps those at pa and pb: not an op line a group or the
     * projection passes by) */
    return got == R_FOUND && sides[0].q[0].start == pa && sides[1].q[0].start == pb
        ? Py_BuildValue("(ii)", da, db) : Py_NewRef(Py_None);
}

/* Both tracks over the buffers args[0] and args[2] from args[1] and args[3] (their other
 * members set before), run by tracks_run. */
static PyObject *
on_tracks(PyObject *const *args, Track *sides, const WalkArgs *w, int look)
{
    Py_ssize_t pa = PyLong_AsSsize_t(args[1]);
    Py_ssize_t pb = PyLong_AsSsize_t(args[3]);
    if (PyErr_Occurred())
        return NULL;
    Py_buffer va, vb;
    if (PyObject_GetBuffer(args[0], &va, PyBUF_SIMPLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[2], &vb, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&va);
        return NULL;
    }
    PyObject *out = NULL;
    if (pa < 0 || pa > va.len || pb < 0 || pb > vb.len) {
        PyErr_SetString(PyExc_ValueError, "position outside the buffer");
    } else {
        sides[0].buf = va.buf;
        sides[0].n = va.len;
        sides[0].at.p = pa;
        sides[1].buf = vb.buf;
        sides[1].n = vb.len;
        sides[1].at.p = pb;
        out = tracks_run(sides, w, look);
    }
    PyBuffer_Release(&vb);
    PyBuffer_Release(&va);
    return out;
}

static int
key_arg(PyObject *arg, LineKey *k)
{
    if (arg == Py_None)
        return 0;
    if (!PyTuple_Check(arg) || PyTuple_GET_SIZE(arg) != 4) {
        PyErr_SetString(PyExc_TypeError, "lines(): a key is None or 4 ints");
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        k->v[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(arg, i));
        if (k->v[i] == -1 && PyErr_Occurred())
            return -1;
    }
    return 1;
}

/* The mask of the compared fields args[i] (bit i: dialects.FIELDS[i]), or -1 with an error. */
static long long
fields_arg(PyObject *arg, const char *name)
{
    long long fields = PyLong_AsLongLong(arg);
    if (fields == -1 && PyErr_Occurred())
        return -1;
    if (fields < 0 || fields >= (1LL << NFIELDS)) {
        PyErr_Format(PyExc_ValueError, "%s(): fields is not a mask of FIELDS", name);
        return -1;
    }
    return fields;
}

/* lines(a, pa, b, pb, calls_a, calls_b, max_line, fields, key_a, key_b[, since])
 *   -> (groups, reason, pa, steps_a, lines_a, ignored_a, pb, steps_b, lines_b, ignored_b
 *       [, groups_b, hunks, since, differing_a, differing_b])
 * Pass over the groups (lines.by_line) two blocktrace traces have in common (Track,
 * track_walk).  With keys (4 ints: the depth, code, line and thread of each side's
 * group, absent or null as 1, -1, 0, -1), a[pa:] and b[pb:] start inside groups that
 * agree (the caller judged their first steps: the first group passed); with None, both
 * start at the first op line of a group (a place this gave back).  fields: the mask of
 * the compared fields (bit i: dialects.FIELDS[i]).  The answer: the groups passed, why
 * the walk stopped (REASON_MORE: a line runs past the end of a buffer), and for each
 * side where to read on (the first op line of a group, or pa/pb when none was passed)
 * and the steps, lines and return lines passed.  With ``since`` (the differ keeps no more
 * hunks in full: the groups in common since its last hunk), divergent regions are passed
 * too, as differ._look_ahead aligns them (region_of): groups is then a's, and five more
 * say b's, the hunks passed, the groups in common after the last, and the groups of each
 * side in hunks. */
static PyObject *
lines(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if ((nargs != 10 && nargs != 11) || !PyAnySet_Check(args[4]) || !PyAnySet_Check(args[5])) {
        PyErr_SetString(PyExc_TypeError, "lines(buffer, int, buffer, int, set, set, int, "
                        "int, key, key[, int]) takes 10 or 11 arguments");
        return NULL;
    }
    Py_ssize_t max_line = PyLong_AsSsize_t(args[6]);
    Py_ssize_t since = nargs == 11 ? PyLong_AsSsize_t(args[10]) : 0;
    if (PyErr_Occurred())
        return NULL;
    long long fields = fields_arg(args[7], "lines");
    if (fields < 0)
        return NULL;
    Track *sides = PyMem_Calloc(2, sizeof(Track));
    if (sides == NULL)
        return PyErr_NoMemory();
    PyObject *out = NULL;
    int keyed_a = key_arg(args[8], &sides[0].at.key);
    int keyed_b = keyed_a < 0 ? -1 : key_arg(args[9], &sides[1].at.key);
    if (keyed_a >= 0 && keyed_b >= 0 && keyed_a != keyed_b)
        PyErr_SetString(PyExc_ValueError, "lines(): both keys or neither");
    if (!PyErr_Occurred()) {
        for (int i = 0; i < 2; i++) {
            sides[i].calls = args[4 + i];
            sides[i].grouped = 1;
            sides[i].at.keyed = keyed_a;
        }
        WalkArgs w = {fields, 0, keyed_a, nargs == 11, max_line, since};
        out = on_tracks(args, sides, &w, 0);
    }
    PyMem_Free(sides);
    return out;
}

/* project(a, pa, b, pb, mask_gas, calls_a, calls_b, max_line, keep_a, keep_b[, fields,
 *         since])
 *   -> (kept, reason, pa, steps_a, lines_a, ignored_a, pb, steps_b, lines_b, ignored_b
 *       [, kept_b, hunks, since, differing_a, differing_b])
 * Pass over what two blocktrace traces have in common at level line, from the op lines
 * at a[pa:] and b[pb:] (each side's next step, read by the reference): keep_a or keep_b
 * (the op-level trace's: a set of code << 32 | pc, the other None) says which op lines
 * the projection keeps (Track, track_walk).  kept: the steps passed at level line (on
 * each side); steps: the op lines passed on each side, kept or not.  With ``fields``
 * (the mask of the compared fields) and ``since`` (as lines'), steps that agree on the
 * fields as step_cmp judges them are passed too, and divergent regions as lines' are. */
static PyObject *
project(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if ((nargs != 10 && nargs != 12) || !PyAnySet_Check(args[5]) || !PyAnySet_Check(args[6]) ||
        (args[8] != Py_None && !PyAnySet_Check(args[8])) ||
        (args[9] != Py_None && !PyAnySet_Check(args[9]))) {
        PyErr_SetString(PyExc_TypeError, "project(buffer, int, buffer, int, bool, set, set, "
                        "int, set | None, set | None[, int, int]) takes 10 or 12 arguments");
        return NULL;
    }
    int mask_gas = PyObject_IsTrue(args[4]);
    Py_ssize_t max_line = PyLong_AsSsize_t(args[7]);
    Py_ssize_t since = nargs == 12 ? PyLong_AsSsize_t(args[11]) : 0;
    if (PyErr_Occurred() || mask_gas < 0)
        return NULL;
    long long fields = nargs == 12 ? fields_arg(args[10], "project") : -1;
    if (PyErr_Occurred())
        return NULL;
    Track *sides = PyMem_Calloc(2, sizeof(Track));
    if (sides == NULL)
        return PyErr_NoMemory();
    for (int i = 0; i < 2; i++) {
        sides[i].calls = args[5 + i];
        sides[i].keep = args[8 + i] == Py_None ? NULL : args[8 + i];
    }
    WalkArgs w = {fields, mask_gas, 0, nargs == 12, max_line, since};
    PyObject *out = on_tracks(args, sides, &w, 0);
    PyMem_Free(sides);
    return out;
}

/* steps_look(a, pa, b, pb, calls_a, calls_b, max_line, fields, grouped, keep_a, keep_b)
 *   -> (da, db) or None
 * look's answer for the steps of --by-line (grouped: a[pa:] and b[pb:] start with the
 * first op lines of two groups that differ) or of level line (keep_a or keep_b as
 * project's: a[pa:] and b[pb:] start with the op lines of two steps that differ): the
 * size on each side of the divergent region differ._look_ahead finds there (region_of
 * over Tracks), or None where it is not found here.  Nothing is passed over. */
static PyObject *
steps_look(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 11 || !PyAnySet_Check(args[4]) || !PyAnySet_Check(args[5]) ||
        (args[9] != Py_None && !PyAnySet_Check(args[9])) ||
        (args[10] != Py_None && !PyAnySet_Check(args[10]))) {
        PyErr_SetString(PyExc_TypeError, "steps_look(buffer, int, buffer, int, set, set, int, "
                        "int, bool, set | None, set | None) takes 11 arguments");
        return NULL;
    }
    Py_ssize_t max_line = PyLong_AsSsize_t(args[6]);
    int grouped = PyObject_IsTrue(args[8]);
    if (PyErr_Occurred() || grouped < 0)
        return NULL;
    long long fields = fields_arg(args[7], "steps_look");
    if (fields < 0)
        return NULL;
    Track *sides = PyMem_Calloc(2, sizeof(Track));
    if (sides == NULL)
        return PyErr_NoMemory();
    for (int i = 0; i < 2; i++) {
        sides[i].calls = args[4 + i];
        sides[i].keep = args[9 + i] == Py_None ? NULL : args[9 + i];
        sides[i].grouped = grouped;
    }
    WalkArgs w = {fields, 0, 0, 0, max_line, 0};
    PyObject *out = on_tracks(args, sides, &w, 1);
    PyMem_Free(sides);
    return out;
}

/* ---- At level call: a trace's call, return and exception lines (levels.CallSteps) ----
 *
 * diff compares a call-level trace with another (of any level) on the call, return
 * and exception lines of each (levels.call_steps): an op-level or line-level trace's
 * op lines are no steps there.  Here each side's op lines are passed over unread but
 * for what normalise counts of them (each a flat op line with no event or error member
 * and a gas unlike the op line before it: no merge), and its call and return lines
 * walked against the other side's as skip walks op lines: equal but for the hash (and
 * a return line's gas when gas is not compared), the same step; a call line only when
 * it leaves the code table as it is.  Exception lines, and anything else, end the walk.
 * What is given back lies before the last pair of call or return lines passed (the
 * reference reads that last common step), at a place where each side's reference
 * starts as it stood: no op line passed on that side yet, or before an op line
 * passed (which merges with none before it). */

typedef struct {
    const char *buf;
    Py_ssize_t n, p, lines, ignored, steps, len;
    const char *gas; /* the last op line's gas digits passed (NULL: none yet) */
    Py_ssize_t gas_n;
    unsigned long long before; /* the gas of the reference's op step before the walk */
    int has_before;
    PyObject *calls;
    Py_ssize_t earlier; /* op lines passed by the walks before this one (since the
                         * reference's last step) */
    int kind;  /* CALL or IGNORED (a return line): the line found */
    Op op;     /* its members */
    /* where the walk stood right after the last call or return line passed */
    Py_ssize_t after_p, after_lines, after_ignored, after_steps;
    int fresh, clean;
} CSide;

typedef struct {
    Py_ssize_t pa, pb, lines_a, lines_b, ignored_a, ignored_b, steps_a, steps_b, calls;
} CMark;

/* A "0x..." gas digits' value (at most 16 digits), or 0 when it is not one. */
static int
hex_value(const char *s, Py_ssize_t n, unsigned long long *out)
{
    if (n < 3 || n > 18 || s[0] != '0' || s[1] != 'x')
        return 0;
    unsigned long long v = 0;
    for (Py_ssize_t i = 2; i < n; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return 0;
        v = v << 4 | (unsigned long long)d;
    }
    *out = v;
    return 1;
}

/* A number member of a call or return line as levels.CallSteps reads it without
 * doubt: absent, or a JSON integer as the writer writes one. */
static int
plain_or_absent(const Span *x)
{
    return x->at == NULL || plain_int(x);
}

/* The side's next call or return line (side->kind, op, len; side->p at it, not
 * passed), the op lines before it passed: R_FOUND, R_MORE, R_BAIL, or -1 on error. */
static int
event_next(CSide *s, Py_ssize_t max_line)
{
    for (;;) {
        const char *l = s->buf + s->p;
        const char *e = newline(l, s->buf + s->n);
        if (e == NULL)
            return R_MORE;
        Py_ssize_t n = e - l;
        if (n + 1 > max_line || n < 2)
            return R_BAIL;
        s->len = n;
        if (l[1] == '"' && l[2] == 'p') {
            Py_ssize_t g0, g1;
            if (!lone_op(l, n, s->gas, s->gas_n, &g0, &g1) || !op_members(l, n, &s->op))
                return R_BAIL; /* (members: a line the reference refuses is its own) */
            if (s->gas == NULL && s->has_before) {
                unsigned long long v;
                if (!hex_value(l + g0, g1 - g0, &v) || v == s->before)
                    return R_BAIL; /* may merge with the reference's op step before */
            }
            s->gas = l + g0;
            s->gas_n = g1 - g0;
            if (s->fresh)
                s->clean = 1; /* an op line right after the last call or return line */
            s->fresh = 0;
            s->steps++;
            s->lines++;
            s->p += n + 1;
            continue;
        }
        int kind = passable(s->calls, l, n);
        if (kind < 0)
            return -1;
        if (kind == 0)
            return R_BAIL;
        Op *op = &s->op;
        if (!members(l, n, op) || !plain_or_absent(&op->v[F_PC]) ||
            !plain_or_absent(&op->v[F_OP]) || !plain_or_absent(&op->v[F_DEPTH]) ||
            !plain_or_absent(&op->v[F_LINE]) ||
            (op->v[F_GAS].at != NULL && !(op->v[F_GAS].n >= 4 && op->v[F_GAS].at[0] == '"' &&
                                         hex_value(op->v[F_GAS].at + 1, op->v[F_GAS].n - 2,
                                                   &(unsigned long long){0}))))
            return R_BAIL;
        s->kind = kind;
        return R_FOUND;
    }
}

/* Pass the call or return line found (it agreed with the other side's). */
static void
event_pass(CSide *s)
{
    s->ignored += s->kind == IGNORED;
    s->lines++;
    s->p += s->len + 1;
    s->after_p = s->p;
    s->after_lines = s->lines;
    s->after_ignored = s->ignored;
    s->after_steps = s->steps;
    s->clean = s->steps + s->earlier == 0;
    s->fresh = 1;
}

/* Whether two call or return lines are the same step: equal but for the hash, and
 * a value the compared fields do not see: a return line's gas (mask_gas), a call
 * line's file (mask_file; the code tables then agree on the function alone). */
static int
event_same(const CSide *A, const CSide *B, int mask_gas, int mask_file)
{
    const char *la = A->buf + A->p, *lb = B->buf + B->p;
    Py_ssize_t ba = body_end(la, A->len), bb = body_end(lb, B->len);
    Span fa, fb, code, name;
    const Span *ga = &A->op.v[F_GAS], *gb = &B->op.v[F_GAS];
    if (A->kind == CALL) {
        if (!mask_file || !call_members(la, A->len, &code, &name, &fa) ||
            !call_members(lb, B->len, &code, &name, &fb))
            return ba == bb && memcmp(la, lb, (size_t)ba) == 0;
        ga = &fa;
        gb = &fb;
    }
    if ((!mask_gas && A->kind != CALL) || ga->at == NULL || gb->at == NULL)
        return ba == bb && memcmp(la, lb, (size_t)ba) == 0;
    Py_ssize_t ga0 = ga->at - la, ga1 = ga0 + ga->n, gb0 = gb->at - lb, gb1 = gb0 + gb->n;
    return ga0 == gb0 && memcmp(la, lb, (size_t)ga0) == 0 && ba >= ga1 && bb >= gb1 &&
           ba - ga1 == bb - gb1 && memcmp(la + ga1, lb + gb1, (size_t)(ba - ga1)) == 0;
}

static int
before_arg(PyObject *arg, CSide *s)
{
    if (arg == Py_None)
        return 0;
    s->before = PyLong_AsUnsignedLongLong(arg);
    if (s->before == (unsigned long long)-1 && PyErr_Occurred()) {
        /* (a gas past 64 bits: no op line's gas the walk reads is that) */
        PyErr_Clear();
        s->before = 0;
        s->has_before = 0;
        return 0;
    }
    s->has_before = 1;
    return 0;
}

/* calls(a, pa, b, pb, masks, calls_a, calls_b, max_line, gas_a, gas_b, earlier_a,
 *       earlier_b)
 *   -> (n, reason, pa, steps_a, lines_a, ignored_a, pb, steps_b, lines_b, ignored_b)
 * Pass over what two blocktrace traces have in common at level call, from a[pa:] and
 * b[pb:] (the lines after each side's last call-level step read by the reference, or
 * where the walk before this one gave back); masks: 1 gas not compared, 2 file not
 * compared (see event_same); gas_a, gas_b: the gas of the op step the
 * reference holds on each side (None: none); earlier: the op lines the walks before
 * this one passed since.  n: the call and return lines passed (on each side); steps:
 * the op lines passed. */
static PyObject *
calls(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 12 || !PyAnySet_Check(args[5]) || !PyAnySet_Check(args[6]) ||
        (args[8] != Py_None && !PyLong_Check(args[8])) ||
        (args[9] != Py_None && !PyLong_Check(args[9]))) {
        PyErr_SetString(PyExc_TypeError, "calls(buffer, int, buffer, int, int, set, set, "
                        "int, int | None, int | None, int, int) takes 12 arguments");
        return NULL;
    }
    Py_ssize_t pa = PyLong_AsSsize_t(args[1]);
    Py_ssize_t pb = PyLong_AsSsize_t(args[3]);
    long mask = PyLong_Check(args[4]) ? PyLong_AsLong(args[4]) : -1;
    int mask_gas = mask >= 0 && (mask & 1), mask_file = mask >= 0 && (mask & 2);
    Py_ssize_t max_line = PyLong_AsSsize_t(args[7]);
    Py_ssize_t earlier_a = PyLong_AsSsize_t(args[10]);
    Py_ssize_t earlier_b = PyLong_AsSsize_t(args[11]);
    if (PyErr_Occurred())
        return NULL;
    if (mask < 0) {
        PyErr_SetString(PyExc_TypeError, "calls(): masks is an int from 0 to 3");
        return NULL;
    }
    Py_buffer va, vb;
    if (PyObject_GetBuffer(args[0], &va, PyBUF_SIMPLE) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[2], &vb, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&va);
        return NULL;
    }
    PyObject *out = NULL;
    CSide *sides = NULL;
    if (pa < 0 || pa > va.len || pb < 0 || pb > vb.len) {
        PyErr_SetString(PyExc_ValueError, "position outside the buffer");
        goto done;
    }
    sides = PyMem_Calloc(2, sizeof(CSide));
    if (sides == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    CSide *A = &sides[0], *B = &sides[1];
    A->buf = va.buf; A->n = va.len; A->p = pa; A->calls = args[5];
    B->buf = vb.buf; B->n = vb.len; B->p = pb; B->calls = args[6];
    A->earlier = earlier_a;
    B->earlier = earlier_b;
    before_arg(args[8], A);
    before_arg(args[9], B);
    for (int i = 0; i < 2; i++) {
        CSide *s = &sides[i];
        s->after_p = s->p;
        s->clean = 1;
        s->fresh = 1;
    }
    CMark mark = {pa, pb, 0, 0, 0, 0, 0, 0, 0};
    Py_ssize_t n = 0;
    int reason = REASON_STOP;
    for (;;) {
        int got = event_next(A, max_line);
        if (got == R_FOUND)
            got = event_next(B, max_line);
        if (got < 0)
            goto done;
        if (got != R_FOUND) {
            reason = got == R_MORE ? REASON_MORE : REASON_STOP;
            break;
        }
        if (A->kind != B->kind || !event_same(A, B, mask_gas, mask_file))
            break;
        if (A->clean && B->clean)
            mark = (CMark){A->after_p, B->after_p, A->after_lines, B->after_lines,
                           A->after_ignored, B->after_ignored, A->after_steps,
                           B->after_steps, n};
        n++;
        event_pass(A);
        event_pass(B);
    }
    out = Py_BuildValue("(ninnnnnnnn)", mark.calls, reason, mark.pa, mark.steps_a,
                        mark.lines_a, mark.ignored_a, mark.pb, mark.steps_b, mark.lines_b,
                        mark.ignored_b);
done:
    PyMem_Free(sides);
    PyBuffer_Release(&vb);
    PyBuffer_Release(&va);
    return out;
}

/* call_key(line) -> what a call line does to the code table, as bytes (its code,
 * name and file values), or None when the walk does not read it. */
static PyObject *
call_key(PyObject *self, PyObject *arg)
{
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "call_key() takes bytes");
        return NULL;
    }
    const char *s = PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg);
    if (n > 0 && s[n - 1] == '\n')
        n--;
    if (!starts(s, n, LINE_CALL_PREFIX ",", LINE_CALL_PREFIX_LEN + 1))
        Py_RETURN_NONE;
    return call_identity(s, n);
}

static PyMethodDef methods[] = {
    {"skip", (PyCFunction)(void (*)(void))skip, METH_FASTCALL,
     "Pass over the lines two blocktrace traces have in common (see the module)."},
    {"align", (PyCFunction)(void (*)(void))align, METH_FASTCALL,
     "skip, also passing over divergent regions as the differ aligns them."},
    {"look", (PyCFunction)(void (*)(void))look, METH_FASTCALL,
     "The differ's look-ahead at a divergence, on the lines as bytes."},
    {"lines", (PyCFunction)(void (*)(void))lines, METH_FASTCALL,
     "Pass over the groups of steps by source line two traces have in common."},
    {"project", (PyCFunction)(void (*)(void))project, METH_FASTCALL,
     "Pass over what an op-level and a line-level trace have in common at level line."},
    {"steps_look", (PyCFunction)(void (*)(void))steps_look, METH_FASTCALL,
     "The differ's look-ahead at a divergence of --by-line's or level line's steps."},
    {"calls", (PyCFunction)(void (*)(void))calls, METH_FASTCALL,
     "Pass over what two traces have in common at level call."},
    {"call_key", call_key, METH_O, "What a call line does to the code table, as bytes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "blocktrace.eip3155._cskip",
    "The diff's common-run skip over two blocktrace traces.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__cskip(void)
{
    return PyModule_Create(&module);
}
