/* blocktrace.eip3155._cclients: the diff's walk over the steps two EVM clients'
 * EIP-3155 traces have in common (blocktrace/eip3155/clientpass.py says how it is used).
 *
 * walk(a, pa, b, pb, mask, max_line) reads, from the line at a[pa:] and the line at
 * b[pb:] (each the op line of a step that the reference normaliser,
 * normalise.steps_of, holds and the differ has not compared yet), one *unit* after
 * another on each side: the lines a
 * client writes between two steps that the dialect rules drop or count (an implicit
 * STOP op line, geth's {"output","gasUsed"} frame-exit line), then the op line of
 * the next step.  A unit is taken only when every one of its lines is one this file
 * is sure the reference reads so and the JSON decoder reads without complaint:
 *
 *   - a line is one JSON object, no whitespace inside, printable ASCII only, no
 *     backslash (no escapes), nested at most 32 deep, numbers JSON integers of at
 *     most 18 digits,
 *     then optional spaces, tabs or CR before its newline, at most max_line bytes;
 *   - members the decoder's RawLine knows appear at most once and with a type it
 *     takes; of those, only pc, op, gas, gasCost, memSize, stack, depth, refund,
 *     opName, error, returnData, output and gasUsed may appear (any other one:
 *     a header, a blocktrace line, a summary: the reference reads it);
 *   - an op line has pc, op and gas as a JSON integer of at most 18 digits or a
 *     "0x" string of 1 to 16 hex digits (depth too, or absent: 1); one whose op
 *     is 0 is an implicit STOP (dropped: any error); any other with an error that
 *     is not null or "" is not taken (the reference reads faults);
 *   - a frame-exit line has a string output, gasUsed as above or absent, an error
 *     or not, and no other member the decoder knows;
 *   - a step's op line with the same (pc, gas, depth) as the step before it (a
 *     fault's second line, merged by the reference) is not taken.
 *
 * Two units are in common when the compared fields (mask: 1 pc, 2 op, 4 gas, 8
 * depth, 16 stack) agree: the numbers as numbers, the stacks as bytes or, when the
 * bytes differ, word by word as "0x" hex strings without their leading zeros and
 * regardless of case (what compare.canonical_stack makes of them; any other word
 * and the walk stops).  The walk stops at the first unit that is not taken or not
 * in common, and gives back the units before the last one taken: the reference
 * reads that last one (the last common step), and everything after.
 *
 * Returns (units, ra, rb, lines_a, lines_b, stops_a, stops_b, exits_a, exits_b,
 * reason): the units passed, where the last unit taken starts on each side, the
 * lines, implicit STOP lines and frame exits (a frame-exit line before an op line)
 * among the lines passed, and reason: 0 stopped, 1 a line of a ran past the end of
 * a, 2 one of b past the end of b. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "pyutil.h"

#define MAX_NEST 32
#define MAX_UNIT_LINES 64 /* lines before a step's op line: a unit is held whole in the buffer */
#define MASK_PC 1
#define MASK_OP 2
#define MASK_GAS 4
#define MASK_DEPTH 8
#define MASK_STACK 16

enum { K_OTHER = 0, K_PC, K_OP, K_GAS, K_GASCOST, K_MEMSIZE, K_STACK, K_DEPTH, K_REFUND,
       K_OPNAME, K_ERROR, K_RETURNDATA, K_OUTPUT, K_GASUSED, K_REFUSE };

enum { L_OP = 0, L_STOP, L_EXIT };
enum { U_OK = 0, U_STOP, U_MORE };

typedef struct {
    int kind;
    uint64_t pc, op, gas, depth;
    const char *stack;
    Py_ssize_t stack_len;
} Line;

/* The RawLine member a key names (K_REFUSE: one this walk leaves to the reference). */
static int
key_kind(const char *k, Py_ssize_t n)
{
#define IS(s) (n == (Py_ssize_t)sizeof(s) - 1 && memcmp(k, s, sizeof(s) - 1) == 0)
    switch (n) {
    case 2:
        if (IS("pc")) return K_PC;
        if (IS("op")) return K_OP;
        break;
    case 3:
        if (IS("gas")) return K_GAS;
        break;
    case 4:
        if (IS("line") || IS("code") || IS("kind") || IS("name") || IS("file") || IS("test") ||
            IS("fork") || IS("pass"))
            return K_REFUSE;
        break;
    case 5:
        if (IS("stack")) return K_STACK;
        if (IS("depth")) return K_DEPTH;
        if (IS("error")) return K_ERROR;
        if (IS("event")) return K_REFUSE;
        break;
    case 6:
        if (IS("refund")) return K_REFUND;
        if (IS("opName")) return K_OPNAME;
        if (IS("output")) return K_OUTPUT;
        if (IS("thread") || IS("locals") || IS("python")) return K_REFUSE;
        break;
    case 7:
        if (IS("gasCost")) return K_GASCOST;
        if (IS("memSize")) return K_MEMSIZE;
        if (IS("gasUsed")) return K_GASUSED;
        if (IS("globals")) return K_REFUSE;
        break;
    case 8:
        if (IS("logsRoot")) return K_REFUSE;
        break;
    case 9:
        if (IS("firstLine") || IS("stateRoot")) return K_REFUSE;
        break;
    case 10:
        if (IS("returnData") || IS("blocktrace")) return IS("returnData") ? K_RETURNDATA : K_REFUSE;
        break;
    }
    return K_OTHER;
#undef IS
}

/* A string at s (its opening quote): the position after its closing quote, or NULL. */
static const char *
skip_string(const char *s, const char *end)
{
    if (s >= end || *s != '"') return NULL;
    for (s++; s < end; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"') return s + 1;
        if (c < 0x20 || c > 0x7e || c == '\\') return NULL;
    }
    return NULL;
}

/* A JSON number at s: the position after it, or NULL; *integer: it has no fraction or
 * exponent, *digits: how many digits its integer part has. */
static const char *
skip_number(const char *s, const char *end, int *integer, int *digits)
{
    const char *p = s;
    *integer = 1;
    if (p < end && *p == '-') p++;
    const char *first = p;
    if (p >= end || *p < '0' || *p > '9') return NULL;
    if (*p == '0') {
        p++;
    } else {
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    *digits = (int)(p - first);
    if (p < end && *p == '.') {
        *integer = 0;
        p++;
        if (p >= end || *p < '0' || *p > '9') return NULL;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        *integer = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || *p < '0' || *p > '9') return NULL;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    return p;
}

static const char *
skip_literal(const char *s, const char *end, const char *word, size_t n)
{
    if ((size_t)(end - s) < n || memcmp(s, word, n) != 0) return NULL;
    return s + n;
}

/* Any JSON value at s (the grammar above): the position after it, or NULL. */
static const char *
skip_value(const char *s, const char *end, int nest)
{
    int integer, digits;
    if (s >= end) return NULL;
    switch (*s) {
    case '"':
        return skip_string(s, end);
    case 't':
        return skip_literal(s, end, "true", 4);
    case 'f':
        return skip_literal(s, end, "false", 5);
    case 'n':
        return skip_literal(s, end, "null", 4);
    case '[':
        if (nest >= MAX_NEST) return NULL;
        s++;
        if (s < end && *s == ']') return s + 1;
        for (;;) {
            s = skip_value(s, end, nest + 1);
            if (s == NULL || s >= end) return NULL;
            if (*s == ']') return s + 1;
            if (*s != ',') return NULL;
            s++;
        }
    case '{':
        if (nest >= MAX_NEST) return NULL;
        s++;
        if (s < end && *s == '}') return s + 1;
        for (;;) {
            s = skip_string(s, end);
            if (s == NULL || s >= end || *s != ':') return NULL;
            s = skip_value(s + 1, end, nest + 1);
            if (s == NULL || s >= end) return NULL;
            if (*s == '}') return s + 1;
            if (*s != ',') return NULL;
            s++;
        }
    default:
        s = skip_number(s, end, &integer, &digits);
        return s != NULL && integer && digits <= 18 ? s : NULL;
    }
}

static int
hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A step number (pc, op, gas, depth, gasUsed) at s: a JSON integer of 1-18 digits or a
 * "0x" string of 1-16 hex digits.  The position after it, or NULL. */
static const char *
parse_number(const char *s, const char *end, uint64_t *out)
{
    uint64_t v = 0;
    if (s < end && *s == '"') {
        const char *p = s + 1;
        if (end - p < 3 || p[0] != '0' || p[1] != 'x') return NULL;
        p += 2;
        const char *first = p;
        while (p < end && *p != '"') {
            int d = hex_digit((unsigned char)*p);
            if (d < 0) return NULL;
            v = (v << 4) | (uint64_t)d;
            p++;
        }
        if (p >= end || p == first || p - first > 16) return NULL;
        *out = v;
        return p + 1;
    }
    int integer, digits;
    const char *p = skip_number(s, end, &integer, &digits);
    if (p == NULL || !integer || *s == '-' || digits > 18) return NULL;
    for (const char *q = s; q < p; q++) v = v * 10 + (uint64_t)(*q - '0');
    *out = v;
    return p;
}

/* RawLine's int | str | None: a JSON integer of at most 18 digits, a string, or null. */
static const char *
skip_num_field(const char *s, const char *end)
{
    if (s >= end) return NULL;
    if (*s == '"') return skip_string(s, end);
    if (*s == 'n') return skip_literal(s, end, "null", 4);
    int integer, digits;
    const char *p = skip_number(s, end, &integer, &digits);
    if (p == NULL || !integer || digits > 18) return NULL;
    return p;
}

/* str | None */
static const char *
skip_str_field(const char *s, const char *end)
{
    if (s < end && *s == 'n') return skip_literal(s, end, "null", 4);
    return skip_string(s, end);
}

/* One line at s (up to its newline at nl): U_OK with *out filled, or U_STOP. */
static int
parse_line(const char *s, const char *nl, Line *out)
{
    const char *end = nl;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r')) end--;
    if (s >= end || *s != '{' || end[-1] != '}') return U_STOP;
    const char *p = s + 1;
    unsigned seen = 0;
    int has_error = 0, output_string = 0;
    uint64_t gas_used;
    out->depth = 1;
    out->stack = NULL;
    if (p < end && *p == '}') return U_STOP;
    for (;;) {
        const char *k = p + 1;
        p = skip_string(p, end);
        if (p == NULL || p >= end || *p != ':') return U_STOP;
        int kind = key_kind(k, p - 1 - k);
        p++;
        if (kind == K_REFUSE) return U_STOP;
        if (kind != K_OTHER) {
            if (seen & (1u << kind)) return U_STOP;  /* a member twice */
            seen |= 1u << kind;
        }
        const char *v = p;
        switch (kind) {
        case K_PC: p = parse_number(p, end, &out->pc); break;
        case K_OP: p = parse_number(p, end, &out->op); break;
        case K_GAS: p = parse_number(p, end, &out->gas); break;
        case K_DEPTH: p = parse_number(p, end, &out->depth); break;
        case K_GASUSED: p = parse_number(p, end, &gas_used); break;
        case K_GASCOST: case K_MEMSIZE: case K_REFUND: p = skip_num_field(p, end); break;
        case K_OPNAME: case K_RETURNDATA: p = skip_str_field(p, end); break;
        case K_STACK:
            p = skip_value(p, end, 1);
            if (p != NULL) {
                out->stack = v;
                out->stack_len = p - v;
            }
            break;
        case K_ERROR:
            p = skip_value(p, end, 1);
            if (p != NULL && !(p - v == 4 && memcmp(v, "null", 4) == 0) &&
                !(p - v == 2 && v[0] == '"' && v[1] == '"'))
                has_error = 1;
            break;
        case K_OUTPUT:
            p = skip_value(p, end, 1);
            output_string = p != NULL && *v == '"';
            break;
        default:
            p = skip_value(p, end, 1);
        }
        if (p == NULL || p >= end) return U_STOP;
        if (*p == '}') {
            if (p + 1 != end) return U_STOP;
            break;
        }
        if (*p != ',') return U_STOP;
        p++;
    }
    unsigned op_line = (1u << K_PC) | (1u << K_OP);
    if ((seen & op_line) == op_line) {
        if (!(seen & (1u << K_GAS)) || (seen & ((1u << K_OUTPUT) | (1u << K_GASUSED))))
            return U_STOP;
        if (out->op == 0) {
            out->kind = L_STOP;
            return U_OK;
        }
        if (has_error) return U_STOP;
        out->kind = L_OP;
        return U_OK;
    }
    unsigned exit_ok = (1u << K_OUTPUT) | (1u << K_GASUSED) | (1u << K_ERROR);
    if ((seen & (1u << K_OUTPUT)) && output_string && (seen & ~exit_ok) == 0) {
        out->kind = L_EXIT;
        return U_OK;
    }
    return U_STOP;
}

typedef struct {
    Line step;
    Py_ssize_t end;  /* where the unit's last line ends */
    Py_ssize_t lines, stops, exits;
} Unit;

/* The unit at buf[pos:]: U_OK, U_STOP or U_MORE (a line runs past the buffer). */
static int
parse_unit(const char *buf, Py_ssize_t n, Py_ssize_t pos, Py_ssize_t max_line, Unit *u)
{
    int open = 0;
    u->lines = u->stops = u->exits = 0;
    for (;;) {
        if (u->lines >= MAX_UNIT_LINES) return U_STOP;
        const char *s = buf + pos;
        Py_ssize_t left = n - pos;
        Py_ssize_t room = left < max_line + 1 ? left : max_line + 1;
        const char *nl = memchr(s, '\n', (size_t)room);
        if (nl == NULL) return left > max_line ? U_STOP : U_MORE;
        if (nl - s >= max_line) return U_STOP;
        Line line;
        if (parse_line(s, nl, &line) != U_OK) return U_STOP;
        u->lines++;
        pos = (nl - buf) + 1;
        if (line.kind == L_EXIT) {
            open = 1;
            continue;
        }
        if (open) {
            u->exits++;
            open = 0;
        }
        if (line.kind == L_STOP) {
            u->stops++;
            continue;
        }
        u->step = line;
        u->end = pos;
        return U_OK;
    }
}

/* The words of two stack arrays, compared as canonical "0x" hex: 1 same, 0 not, -1 unsure. */
static int
same_words(const char *a, Py_ssize_t na, const char *b, Py_ssize_t nb)
{
    const char *ea = a + na, *eb = b + nb;
    if (na < 2 || nb < 2 || *a != '[' || *b != '[') return -1;
    a++;
    b++;
    if (*a == ']' || *b == ']') return (*a == ']' && *b == ']') ? 1 : 0;
    for (;;) {
        /* a word: "0x" hex digits " */
        if (ea - a < 4 || eb - b < 4 || a[0] != '"' || b[0] != '"' || a[1] != '0' ||
            a[2] != 'x' || b[1] != '0' || b[2] != 'x')
            return -1;
        const char *wa = a + 3, *wb = b + 3, *za = wa, *zb = wb;
        while (za < ea && *za != '"') {
            if (hex_digit((unsigned char)*za) < 0) return -1;
            za++;
        }
        while (zb < eb && *zb != '"') {
            if (hex_digit((unsigned char)*zb) < 0) return -1;
            zb++;
        }
        if (za >= ea || zb >= eb || za == wa || zb == wb) return -1;
        while (wa < za - 1 && *wa == '0') wa++;
        while (wb < zb - 1 && *wb == '0') wb++;
        if (za - wa != zb - wb) return 0;
        for (; wa < za; wa++, wb++) {
            if (hex_digit((unsigned char)*wa) != hex_digit((unsigned char)*wb)) return 0;
        }
        a = za + 1;
        b = zb + 1;
        if (a >= ea || b >= eb) return -1;
        if (*a == ']' || *b == ']') return (*a == ']' && *b == ']') ? 1 : 0;
        if (*a != ',' || *b != ',') return -1;
        a++;
        b++;
    }
}

static int
same_step(const Line *a, const Line *b, long mask)
{
    if ((mask & MASK_PC) && a->pc != b->pc) return 0;
    if ((mask & MASK_OP) && a->op != b->op) return 0;
    if ((mask & MASK_GAS) && a->gas != b->gas) return 0;
    if ((mask & MASK_DEPTH) && a->depth != b->depth) return 0;
    if (mask & MASK_STACK) {
        if (a->stack == NULL || b->stack == NULL) return 0;
        if (a->stack_len == b->stack_len && memcmp(a->stack, b->stack, (size_t)a->stack_len) == 0)
            return 1;
        return same_words(a->stack, a->stack_len, b->stack, b->stack_len) == 1;
    }
    return 1;
}

static int
merges(const Line *prev, const Line *next)
{
    return prev->pc == next->pc && prev->gas == next->gas && prev->depth == next->depth;
}

static PyObject *
walk(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!bt_nargs(nargs, 6, "walk(a, pa, b, pb, mask, max_line)")) return NULL;
    Py_ssize_t pa = PyLong_AsSsize_t(args[1]);
    Py_ssize_t pb = PyLong_AsSsize_t(args[3]);
    long mask = PyLong_AsLong(args[4]);
    Py_ssize_t max_line = PyLong_AsSsize_t(args[5]);
    if (PyErr_Occurred()) return NULL;
    Py_buffer va, vb;
    if (PyObject_GetBuffer(args[0], &va, PyBUF_SIMPLE) < 0) return NULL;
    if (PyObject_GetBuffer(args[2], &vb, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&va);
        return NULL;
    }
    if (pa < 0 || pb < 0 || pa > va.len || pb > vb.len || max_line < 1) {
        PyBuffer_Release(&vb);
        return bt_release_raise(&va, PyExc_ValueError, "walk: a position out of its buffer");
    }
    const char *a = va.buf, *b = vb.buf;
    Py_ssize_t units = 0, lines_a = 0, lines_b = 0, stops_a = 0, stops_b = 0;
    Py_ssize_t exits_a = 0, exits_b = 0;
    int reason = 0;
    Unit ua, ub;
    /* The first unit: taken already (the reference holds its op line, or an earlier call
     * took it); read for its numbers and its end. */
    int ra = parse_unit(a, va.len, pa, max_line, &ua);
    int rb = parse_unit(b, vb.len, pb, max_line, &ub);
    if (ra != U_OK || rb != U_OK) {
        reason = ra == U_MORE ? 1 : rb == U_MORE ? 2 : 0;
        if (ra == U_STOP || rb == U_STOP) reason = 0;
        goto done;
    }
    if (!same_step(&ua.step, &ub.step, mask)) goto done;  /* (the differ has not compared them) */
    for (;;) {
        Unit na, nb;
        ra = parse_unit(a, va.len, ua.end, max_line, &na);
        rb = parse_unit(b, vb.len, ub.end, max_line, &nb);
        if (ra != U_OK || rb != U_OK) {
            reason = (ra == U_STOP || rb == U_STOP) ? 0 : ra == U_MORE ? 1 : 2;
            break;
        }
        if (merges(&ua.step, &na.step) || merges(&ub.step, &nb.step) ||
            !same_step(&na.step, &nb.step, mask))
            break;
        /* the unit before is passed */
        units++;
        lines_a += ua.lines;
        lines_b += ub.lines;
        stops_a += ua.stops;
        stops_b += ub.stops;
        exits_a += ua.exits;
        exits_b += ub.exits;
        pa = ua.end;
        pb = ub.end;
        ua = na;
        ub = nb;
    }
done:
    PyBuffer_Release(&va);
    PyBuffer_Release(&vb);
    return Py_BuildValue("(nnnnnnnnni)", units, pa, pb, lines_a, lines_b, stops_a, stops_b,
                         exits_a, exits_b, reason);
}

static PyMethodDef methods[] = {
    {"walk", (PyCFunction)(void (*)(void))walk, METH_FASTCALL,
     "Pass over the steps two client traces have in common (see the module)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "blocktrace.eip3155._cclients",
    "The diff's walk over what two EVM clients' traces have in common.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__cclients(void)
{
    return PyModule_Create(&module);
}
