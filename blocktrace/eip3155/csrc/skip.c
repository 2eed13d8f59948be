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
 * quote), or -1. */
static Py_ssize_t
string_end(const char *s, Py_ssize_t n, Py_ssize_t i)
{
    for (i++; i < n; i++) {
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
    Py_ssize_t i = 6; /* after {"pc": */
    if (!starts(s, n, "{\"pc\":", 6))
        return 0;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    if (i == 6 || !starts(s + i, n - i, ",\"op\":", 6))
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

#define CALL 1    /* a call line that leaves the code table as it is */
#define IGNORED 2 /* a return line: read and ignored */

/* What the reference does with a line that is not an op line, when it makes no
 * step and changes nothing the steps are made of: CALL, IGNORED, else 0 (-1: error). */
static int
passable(PyObject *calls, const char *s, Py_ssize_t n)
{
    if (starts(s, n, "{\"event\":\"call\",", 16))
    {
        int known = known_call(calls, s, n);
        return known > 0 ? CALL : known;
    }
    if (starts(s, n, "{\"event\":\"return\",", 18) && s[n - 1] == '}' &&
        !has_key(s, n, "\"op\":", 5, NULL, 0) && !has_key(s, n, "\"blocktrace\":", 13, NULL, 0))
        return IGNORED;
    return 0;
}

typedef struct {
    Py_ssize_t a, b, lines, ignored_a, ignored_b, steps, hunks, since;
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

static PyObject *
skip_in(const char *a, Py_ssize_t na, const char *b, Py_ssize_t nb, PyObject *const *args,
        Follow *f, PyObject *judge, Py_ssize_t since_in)
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
    Mark start = {pa, pb, 0, 0, 0, 0, 0, since_in};
    Mark last = start, before_last = start, before_hunk = start;
    Py_ssize_t lines = 0, ignored_a = 0, ignored_b = 0, steps = 0;
    Py_ssize_t hunks = 0, since = since_in; /* steps in common since the last hunk */
    int pending = 0; /* op lines still to pass before the last one-step hunk is sure */
    const char *gas_a = NULL, *gas_b = NULL;
    Py_ssize_t gas_na = 0, gas_nb = 0;
    int reason = REASON_STOP;
    /* The op lines need no object: the GIL is let go while they are compared (the
     * stored golden's chain check runs on another thread), taken back for a call
     * line's look-up in its set. */
    if (f->scanner != NULL && (f->pos < 0 || f->pos > na)) {
        PyErr_SetString(PyExc_ValueError, "the check's position is outside the buffer");
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
                if (differs < 0)
                    return NULL;
                released = PyEval_SaveThread();
                if (!differs)
                    break;
                follow_line(f, a, pa, pa + sa + 1, 0);
                gas_a = la + ga0;
                gas_na = ga1 - ga0;
                gas_b = lb + gb0;
                gas_nb = gb1 - gb0;
                before_last = last;
                last = (Mark){pa, pb, lines, ignored_a, ignored_b, steps, hunks, since};
                before_hunk = last;
                steps++;
                hunks++;
                since = 0;
                pending = CONFIRM;
                pa += sa + 1;
                pb += sb + 1;
                lines++;
                continue;
            }
            /* b's line is a's but for gas and hash digits: its members are a's */
            if (la[sa - 1] != '}' || has_key(la, ba, "\"event\":", 8, "\"error\":", 8))
                break;
            if (gas_a != NULL &&
                ((ga1 - ga0 == gas_na && memcmp(la + ga0, gas_a, (size_t)gas_na) == 0) ||
                 (gb1 - gb0 == gas_nb && memcmp(lb + gb0, gas_b, (size_t)gas_nb) == 0)))
                break; /* may be the second line of a faulting op */
            follow_line(f, a, pa, pa + sa + 1, 1);
            gas_a = la + ga0;
            gas_na = ga1 - ga0;
            gas_b = lb + gb0;
            gas_nb = gb1 - gb0;
            before_last = last;
            last = (Mark){pa, pb, lines, ignored_a, ignored_b, steps, hunks, since};
            steps++;
            since++;
            if (pending)
                pending--;
        } else {
            /* any mix of lines the reference reads without making a step */
            PyEval_RestoreThread(released);
            int kind_a = passable(calls_a, la, sa), kind_b = 1;
            if (kind_a > 0)
                kind_b = passable(calls_b, lb, sb);
            if (kind_a < 0 || kind_b < 0)
                return NULL;
            released = PyEval_SaveThread();
            if (kind_a == 0 || kind_b == 0)
                break;
            follow_line(f, a, pa, pa + sa + 1, 0);
            ignored_a += kind_a == IGNORED;
            ignored_b += kind_b == IGNORED;
        }
        pa += sa + 1;
        pb += sb + 1;
        lines++;
    }
    PyEval_RestoreThread(released);
    Mark end = before_last; /* op lines O1..Ok passed: what lies before O(k-1) */
    if (pending && before_hunk.steps < end.steps)
        end = before_hunk; /* the last hunk is not sure yet: the reference reads it */
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
skip(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8 && nargs != 10 && nargs != 11 && nargs != 13) {
        PyErr_SetString(PyExc_TypeError, "skip() takes 8, 10, 11 or 13 arguments");
        return NULL;
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
    PyObject *out = skip_in(va.buf, va.len, vb.buf, vb.len, args, &f, judge, since);
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
    if (!starts(s, n, "{\"event\":\"call\",", 16))
        Py_RETURN_NONE;
    return call_identity(s, n);
}

static PyMethodDef methods[] = {
    {"skip", (PyCFunction)(void (*)(void))skip, METH_FASTCALL,
     "Pass over the lines two blocktrace traces have in common (see the module)."},
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
