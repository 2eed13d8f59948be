/* blocktrace.eip3155._cclients: the diff's walk over the steps two EVM clients'
 * EIP-3155 traces have in common (blocktrace/eip3155/clientpass.py says how it is used).
 *
 * walk(a, pa, b, pb, mask, top, max_line) reads, from the line at a[pa:] and the line at
 * b[pb:] (each the op line of a step that the reference normaliser,
 * normalise.steps_of, holds and the differ has not compared yet), one *unit* after
 * another on each side: the lines a
 * client writes between two steps that the dialect rules drop or count (an implicit
 * STOP op line, geth's {"output","gasUsed"} frame-exit line), then the op line of
 * the next step.  A unit is taken only when every one of its lines is one this file
 * is sure the reference reads so and the JSON decoder reads without complaint:
 *
 *   - a line is one JSON object starting at its first byte, printable ASCII only,
 *     no backslash (no escapes), nested at most 32 deep, numbers JSON integers of
 *     at most 18 digits, spaces, tabs or CRs between its tokens and before its
 *     newline, at most max_line bytes;
 *   - members the decoder's RawLine knows appear at most once and with a type it
 *     takes; of those, only pc, op, gas, gasCost, memSize, stack, depth, refund,
 *     opName, error, returnData, output and gasUsed may appear (any other one:
 *     a header, a blocktrace line, a summary: the reference reads it);
 *   - an op line has pc, op and gas as a JSON integer of at most 18 digits, a
 *     "0x" string of 1 to 16 hex digits or a string of 1 to 18 decimal digits
 *     (depth too, or absent: 1); one whose op
 *     is 0 is an implicit STOP (dropped: any error); any other with an error that
 *     is not null or "" is not taken (the reference reads faults);
 *   - a frame-exit line has a string output, gasUsed as above or absent, an error
 *     or not, and no other member the decoder knows;
 *   - a step's op line with the same (pc, gas, depth) as the step before it (a
 *     fault's second line, merged by the reference) is not taken.
 *
 * Two units are in common when the compared fields (mask: 1 pc, 2 op, 4 gas, 8
 * depth, 16 stack, 32 gasCost, 64 memSize, 128 refund, 256 opName, 512 returnData)
 * agree as compare.canonical_value judges them: the numbers as numbers (gasCost,
 * memSize and refund also with a sign, refund's unsigned 64-bit wrap read as
 * negative, absent or null as "none"; a compared one in any other form and the
 * line is not taken), opName as bytes, returnData regardless of case, the stacks
 * as bytes or, when the bytes differ, word by word as "0x" hex strings without
 * their leading zeros and regardless of case -- only the top `top` words when top
 * >= 0 (--stack-top) -- (what compare.canonical_stack makes of them; any other
 * word and the walk stops).  The other fields (error, and blocktrace's) are none
 * on every line taken.  The walk stops at the first unit that is not taken or not
 * in common, and gives back the units before the last one taken: the reference
 * reads that last one (the last common step), and everything after.  With
 * MASK_LAG (error or event compared) it gives back one unit fewer: the line after
 * the last one taken may be a fault's second line that gives it an error when the
 * reference merges it, so the reference reads from the unit before, whose error
 * the line after it (the last one's, taken) shows is none.
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
#define MAX_WORDS 1040    /* stack words looked at for --stack-top (the EVM's limit is 1024) */
#define MASK_PC 1
#define MASK_OP 2
#define MASK_GAS 4
#define MASK_DEPTH 8
#define MASK_STACK 16
#define MASK_GASCOST 32
#define MASK_MEMSIZE 64
#define MASK_REFUND 128
#define MASK_OPNAME 256
#define MASK_RETURNDATA 512
#define MASK_LAG 1024 /* error (or event) is compared: see walk */

enum { K_OTHER = 0, K_PC, K_OP, K_GAS, K_GASCOST, K_MEMSIZE, K_STACK, K_DEPTH, K_REFUND,
       K_OPNAME, K_ERROR, K_RETURNDATA, K_OUTPUT, K_GASUSED, K_REFUSE };

enum { L_OP = 0, L_STOP, L_EXIT };
enum { U_OK = 0, U_STOP, U_MORE };

/* A compared gasCost, memSize or refund as canonical_value makes it: none (absent or
 * null), or a sign and a magnitude (zero never negative). */
typedef struct {
    int some, neg;
    uint64_t mag;
} Num;

typedef struct {
    int kind;
    uint64_t pc, op, gas, depth;
    const char *stack;
    Py_ssize_t stack_len;
    Num gas_cost, mem_size, refund;
    const char *op_name, *return_data; /* a compared string's bytes (no quotes), or NULL */
    Py_ssize_t op_name_len, return_data_len;
} Line;

#define IS_WS(c) ((c) == ' ' || (c) == '\t' || (c) == '\r')

static inline const char *
skip_ws(const char *s, const char *end)
{
    while (s < end && IS_WS(*s)) s++;
    return s;
}

/* Whitespace at s is rare (compact lines have none): one comparison when there is none
 * (every byte of a token is above ' '). */
#define WS(s, end) ((s) < (end) && (unsigned char)*(s) <= ' ' ? skip_ws((s), (end)) : (s))
/* ... and only where the line was found to be spaced (parse_unit tries compact first). */
#define W(s, end) (spaced ? WS(s, end) : (s))

/* The RawLine member a key names (K_REFUSE: one this walk leaves to the reference). */
static inline __attribute__((always_inline)) int
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

/* Any JSON value at s (the grammar above; whitespace between its tokens only when
 * spaced): the position after it, or NULL. */
static const char *
skip_value(const char *s, const char *end, int nest, int spaced)
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
        s = W(s + 1, end);
        if (s < end && *s == ']') return s + 1;
        for (;;) {
            s = skip_value(s, end, nest + 1, spaced);
            if (s == NULL) return NULL;
            s = W(s, end);
            if (s >= end) return NULL;
            if (*s == ']') return s + 1;
            if (*s != ',') return NULL;
            s = W(s + 1, end);
        }
    case '{':
        if (nest >= MAX_NEST) return NULL;
        s = W(s + 1, end);
        if (s < end && *s == '}') return s + 1;
        for (;;) {
            s = skip_string(s, end);
            if (s == NULL) return NULL;
            s = W(s, end);
            if (s >= end || *s != ':') return NULL;
            s = skip_value(W(s + 1, end), end, nest + 1, spaced);
            if (s == NULL) return NULL;
            s = W(s, end);
            if (s >= end) return NULL;
            if (*s == '}') return s + 1;
            if (*s != ',') return NULL;
            s = W(s + 1, end);
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

/* The digits of a number written as a string, from p (after its quote and any sign) to
 * its closing quote: "0x"/"0X" and 1-16 hex digits, or 1-18 decimal digits, as
 * numbers.parse_int reads them.  The position after the closing quote, or NULL. */
static const char *
string_digits(const char *p, const char *end, uint64_t *out)
{
    uint64_t v = 0;
    if (end - p >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        p += 2;
        const char *first = p;
        int d;
        while (p < end && (d = hex_digit((unsigned char)*p)) >= 0) {
            v = (v << 4) | (uint64_t)d;
            p++;
        }
        if (p >= end || *p != '"' || p == first || p - first > 16) return NULL;
    } else {
        const char *first = p;
        while (p < end && *p >= '0' && *p <= '9') {
            v = v * 10 + (uint64_t)(*p - '0');
            p++;
        }
        if (p >= end || *p != '"' || p == first || p - first > 18) return NULL;
    }
    *out = v;
    return p + 1;
}

/* A step number (pc, op, gas, depth, gasUsed) at s: a JSON integer of 1-18 digits, or
 * a string of "0x" and 1-16 hex digits or of 1-18 decimal digits (never negative).
 * The position after it, or NULL. */
static const char *
parse_number(const char *s, const char *end, uint64_t *out)
{
    if (s < end && *s == '"') return string_digits(s + 1, end, out);
    int integer, digits;
    const char *p = skip_number(s, end, &integer, &digits);
    if (p == NULL || !integer || *s == '-' || digits > 18) return NULL;
    uint64_t v = 0;
    for (const char *q = s; q < p; q++) v = v * 10 + (uint64_t)(*q - '0');
    *out = v;
    return p;
}

/* A compared gasCost, memSize or refund at s: null, a JSON integer of 1-18 digits, or a
 * string as string_digits reads it, each with an optional '-' (parse_int's forms; any
 * other and NULL: the reference judges it).  refund: signed64's reading. */
static const char *
parse_signed(const char *s, const char *end, Num *out, int refund)
{
    out->some = 1;
    out->neg = 0;
    out->mag = 0;
    if (s >= end) return NULL;
    if (*s == 'n') {
        out->some = 0;
        return skip_literal(s, end, "null", 4);
    }
    const char *p;
    if (*s == '"') {
        const char *q = s + 1;
        if (q < end && *q == '-') {
            out->neg = 1;
            q++;
        }
        p = string_digits(q, end, &out->mag);
    } else {
        int integer, digits;
        p = skip_number(s, end, &integer, &digits);
        if (p == NULL || !integer || digits > 18) return NULL;
        const char *q = s;
        if (*q == '-') {
            out->neg = 1;
            q++;
        }
        for (; q < p; q++) out->mag = out->mag * 10 + (uint64_t)(*q - '0');
    }
    if (p == NULL) return NULL;
    if (refund && !out->neg && out->mag >= ((uint64_t)1 << 63)) {
        out->neg = 1; /* an unsigned 64-bit wrap: mag - 2^64 */
        out->mag = (uint64_t)0 - out->mag;
    }
    if (out->mag == 0) out->neg = 0;
    return p;
}

/* RawLine's int | str | None: a JSON integer of at most 18 digits, a string, or null. */
static inline __attribute__((always_inline)) const char *
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

/* str | None; a compared one's bytes in *text, *len (NULL: null). */
static inline __attribute__((always_inline)) const char *
parse_str_field(const char *s, const char *end, const char **text, Py_ssize_t *len)
{
    if (s < end && *s == 'n') {
        *text = NULL;
        return skip_literal(s, end, "null", 4);
    }
    const char *p = skip_string(s, end);
    if (p != NULL) {
        *text = s + 1;
        *len = p - s - 2;
    }
    return p;
}

/* One line at s (up to its newline at nl): U_OK with *out filled, or U_STOP.  mask: the
 * compared fields, read as values (the others only checked for their type); spaced:
 * whitespace between tokens is taken (a constant: parse_line makes two of this). */
static inline __attribute__((always_inline)) int
parse_line_as(const char *s, const char *nl, long mask, Line *out, const int spaced)
{
    const char *end = nl;
    while (end > s && IS_WS(end[-1])) end--;
    if (s >= end || *s != '{' || end[-1] != '}') return U_STOP;
    const char *p = W(s + 1, end);
    unsigned seen = 0;
    int has_error = 0, output_string = 0;
    uint64_t gas_used;
    const char *ignored;
    Py_ssize_t ignored_len;
    out->depth = 1;
    out->stack = NULL;
    out->gas_cost.some = out->mem_size.some = out->refund.some = 0;
    out->op_name = out->return_data = NULL;
    if (p < end && *p == '}') return U_STOP;
    for (;;) {
        const char *k = p + 1;
        p = skip_string(p, end);
        if (p == NULL) return U_STOP;
        int kind = key_kind(k, p - 1 - k);
        p = W(p, end);
        if (p >= end || *p != ':') return U_STOP;
        p = W(p + 1, end);
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
        case K_GASCOST:
            p = mask & MASK_GASCOST ? parse_signed(p, end, &out->gas_cost, 0)
                                    : skip_num_field(p, end);
            break;
        case K_MEMSIZE:
            p = mask & MASK_MEMSIZE ? parse_signed(p, end, &out->mem_size, 0)
                                    : skip_num_field(p, end);
            break;
        case K_REFUND:
            p = mask & MASK_REFUND ? parse_signed(p, end, &out->refund, 1)
                                   : skip_num_field(p, end);
            break;
        case K_OPNAME:
            p = parse_str_field(p, end, mask & MASK_OPNAME ? &out->op_name : &ignored,
                                mask & MASK_OPNAME ? &out->op_name_len : &ignored_len);
            break;
        case K_RETURNDATA:
            p = parse_str_field(p, end, mask & MASK_RETURNDATA ? &out->return_data : &ignored,
                                mask & MASK_RETURNDATA ? &out->return_data_len : &ignored_len);
            break;
        case K_STACK:
            p = skip_value(p, end, 1, spaced);
            if (p != NULL) {
                out->stack = v;
                out->stack_len = p - v;
            }
            break;
        case K_ERROR:
            p = skip_value(p, end, 1, spaced);
            if (p != NULL && !(p - v == 4 && memcmp(v, "null", 4) == 0) &&
                !(p - v == 2 && v[0] == '"' && v[1] == '"'))
                has_error = 1;
            break;
        case K_OUTPUT:
            p = skip_value(p, end, 1, spaced);
            output_string = p != NULL && *v == '"';
            break;
        default:
            p = skip_value(p, end, 1, spaced);
        }
        if (p == NULL) return U_STOP;
        p = W(p, end);
        if (p >= end) return U_STOP;
        if (*p == '}') {
            if (p + 1 != end) return U_STOP;
            break;
        }
        if (*p != ',') return U_STOP;
        p = W(p + 1, end);
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

static int
parse_line(const char *s, const char *nl, long mask, Line *out)
{
    int r = parse_line_as(s, nl, mask, out, 0);
    return r == U_OK ? r : parse_line_as(s, nl, mask, out, 1);
}

typedef struct {
    Line step;
    Py_ssize_t end;  /* where the unit's last line ends */
    Py_ssize_t lines, stops, exits;
} Unit;

/* The unit at buf[pos:]: U_OK, U_STOP or U_MORE (a line runs past the buffer). */
static int
parse_unit(const char *buf, Py_ssize_t n, Py_ssize_t pos, Py_ssize_t max_line, long mask,
           Unit *u)
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
        Line *line = &u->step; /* (an op line is the unit's last: the step) */
        if (parse_line(s, nl, mask, line) != U_OK) return U_STOP;
        u->lines++;
        pos = (nl - buf) + 1;
        if (line->kind == L_EXIT) {
            open = 1;
            continue;
        }
        if (open) {
            u->exits++;
            open = 0;
        }
        if (line->kind == L_STOP) {
            u->stops++;
            continue;
        }
        u->end = pos;
        return U_OK;
    }
}

/* A stack word at *s (up to end): a "0x" string of hex digits; its significant digits
 * (no leading zeros, at least one) in *first.. *last, and *s moved past it; 0 if it is
 * another word (canonical_word would read it otherwise, or not at all). */
static int
hex_word(const char **s, const char *end, const char **first, const char **last)
{
    const char *p = *s;
    if (end - p < 4 || p[0] != '"' || p[1] != '0' || p[2] != 'x') return 0;
    const char *w = p + 3, *z = w;
    while (z < end && *z != '"') {
        if (hex_digit((unsigned char)*z) < 0) return 0;
        z++;
    }
    if (z >= end || z == w) return 0;
    while (w < z - 1 && *w == '0') w++;
    *first = w;
    *last = z;
    *s = z + 1;
    return 1;
}

/* Two words' significant digits: the same regardless of case. */
static int
same_digits(const char *wa, const char *za, const char *wb, const char *zb)
{
    if (za - wa != zb - wb) return 0;
    for (; wa < za; wa++, wb++) {
        if (hex_digit((unsigned char)*wa) != hex_digit((unsigned char)*wb)) return 0;
    }
    return 1;
}

/* The words of two stack arrays, compared as canonical "0x" hex: 1 the same, 0 not or
 * unsure (the reference judges). */
static int
same_words(const char *a, Py_ssize_t na, const char *b, Py_ssize_t nb)
{
    const char *ea = a + na, *eb = b + nb;
    if (na < 2 || nb < 2 || *a != '[' || *b != '[') return 0;
    a = skip_ws(a + 1, ea);
    b = skip_ws(b + 1, eb);
    if (a >= ea || b >= eb) return 0;
    if (*a == ']' || *b == ']') return *a == ']' && *b == ']';
    for (;;) {
        const char *wa, *za, *wb, *zb;
        if (!hex_word(&a, ea, &wa, &za) || !hex_word(&b, eb, &wb, &zb)) return 0;
        if (!same_digits(wa, za, wb, zb)) return 0;
        a = skip_ws(a, ea);
        b = skip_ws(b, eb);
        if (a >= ea || b >= eb) return 0;
        if (*a == ']' || *b == ']') return *a == ']' && *b == ']';
        if (*a != ',' || *b != ',') return 0;
        a = skip_ws(a + 1, ea);
        b = skip_ws(b + 1, eb);
    }
}

/* The start of each element of a stack array (any JSON values): how many (at most
 * MAX_WORDS), or -1 when it is not such an array. */
static int
elements(const char *s, Py_ssize_t n, const char **at)
{
    const char *end = s + n;
    if (n < 2 || *s != '[') return -1;
    s = skip_ws(s + 1, end);
    if (s < end && *s == ']') return 0;
    int count = 0;
    for (;;) {
        if (count >= MAX_WORDS) return -1;
        at[count++] = s;
        s = skip_value(s, end, 2, 1);
        if (s == NULL) return -1;
        s = skip_ws(s, end);
        if (s >= end) return -1;
        if (*s == ']') return count;
        if (*s != ',') return -1;
        s = skip_ws(s + 1, end);
    }
}

/* The top `top` words of two stack arrays (canonical_stack(words, top)): 1 the same, 0
 * not or unsure. */
static int
same_top(const char *a, Py_ssize_t na, const char *b, Py_ssize_t nb, Py_ssize_t top)
{
    const char *at_a[MAX_WORDS], *at_b[MAX_WORDS];
    int ca = elements(a, na, at_a), cb = elements(b, nb, at_b);
    if (ca < 0 || cb < 0) return 0;
    int from_a = top < ca ? ca - (int)top : 0, from_b = top < cb ? cb - (int)top : 0;
    if (ca - from_a != cb - from_b) return 0;
    for (int i = from_a, j = from_b; i < ca; i++, j++) {
        const char *pa = at_a[i], *pb = at_b[j], *wa, *za, *wb, *zb;
        if (!hex_word(&pa, a + na, &wa, &za) || !hex_word(&pb, b + nb, &wb, &zb)) return 0;
        if (!same_digits(wa, za, wb, zb)) return 0;
    }
    return 1;
}

static int
same_text(const char *a, Py_ssize_t na, const char *b, Py_ssize_t nb, int any_case)
{
    if (a == NULL || b == NULL) return a == NULL && b == NULL;
    if (na != nb) return 0;
    if (!any_case) return memcmp(a, b, (size_t)na) == 0;
    for (Py_ssize_t i = 0; i < na; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z') x += 'a' - 'A';
        if (y >= 'A' && y <= 'Z') y += 'a' - 'A';
        if (x != y) return 0;
    }
    return 1;
}

static int
same_num(const Num *a, const Num *b)
{
    if (!a->some || !b->some) return !a->some && !b->some;
    return a->neg == b->neg && a->mag == b->mag;
}

static int
same_step(const Line *a, const Line *b, long mask, Py_ssize_t top)
{
    if ((mask & MASK_PC) && a->pc != b->pc) return 0;
    if ((mask & MASK_OP) && a->op != b->op) return 0;
    if ((mask & MASK_GAS) && a->gas != b->gas) return 0;
    if ((mask & MASK_DEPTH) && a->depth != b->depth) return 0;
    if (mask & (MASK_GASCOST | MASK_MEMSIZE | MASK_REFUND | MASK_OPNAME | MASK_RETURNDATA)) {
        if ((mask & MASK_GASCOST) && !same_num(&a->gas_cost, &b->gas_cost)) return 0;
        if ((mask & MASK_MEMSIZE) && !same_num(&a->mem_size, &b->mem_size)) return 0;
        if ((mask & MASK_REFUND) && !same_num(&a->refund, &b->refund)) return 0;
        if ((mask & MASK_OPNAME) &&
            !same_text(a->op_name, a->op_name_len, b->op_name, b->op_name_len, 0))
            return 0;
        if ((mask & MASK_RETURNDATA) && !same_text(a->return_data, a->return_data_len,
                                                   b->return_data, b->return_data_len, 1))
            return 0;
    }
    if (mask & MASK_STACK) {
        if (a->stack == NULL || b->stack == NULL) return 0;
        if (a->stack_len == b->stack_len && memcmp(a->stack, b->stack, (size_t)a->stack_len) == 0)
            return 1;
        if (top >= 0) return same_top(a->stack, a->stack_len, b->stack, b->stack_len, top);
        return same_words(a->stack, a->stack_len, b->stack, b->stack_len);
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
    if (!bt_nargs(nargs, 7, "walk(a, pa, b, pb, mask, top, max_line)")) return NULL;
    Py_ssize_t pa = PyLong_AsSsize_t(args[1]);
    Py_ssize_t pb = PyLong_AsSsize_t(args[3]);
    long mask = PyLong_AsLong(args[4]);
    Py_ssize_t top = PyLong_AsSsize_t(args[5]);
    Py_ssize_t max_line = PyLong_AsSsize_t(args[6]);
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
    /* the unit taken last (u), the next (n), and the one passed before u (p, which
     * MASK_LAG gives back): three of each side, their roles passed round */
    Unit units_a[3], units_b[3];
    Unit *ua = &units_a[0], *na = &units_a[1], *pu_a = &units_a[2];
    Unit *ub = &units_b[0], *nb = &units_b[1], *pu_b = &units_b[2];
    Py_ssize_t back_a = 0, back_b = 0;
    /* The first unit: taken already (the reference holds its op line, or an earlier call
     * took it); read for its numbers and its end. */
    int ra = parse_unit(a, va.len, pa, max_line, mask, ua);
    int rb = parse_unit(b, vb.len, pb, max_line, mask, ub);
    if (ra != U_OK || rb != U_OK) {
        reason = ra == U_MORE ? 1 : rb == U_MORE ? 2 : 0;
        if (ra == U_STOP || rb == U_STOP) reason = 0;
        goto done;
    }
    if (!same_step(&ua->step, &ub->step, mask, top)) goto done;  /* (not compared yet) */
    for (;;) {
        ra = parse_unit(a, va.len, ua->end, max_line, mask, na);
        rb = parse_unit(b, vb.len, ub->end, max_line, mask, nb);
        if (ra != U_OK || rb != U_OK) {
            reason = (ra == U_STOP || rb == U_STOP) ? 0 : ra == U_MORE ? 1 : 2;
            break;
        }
        if (merges(&ua->step, &na->step) || merges(&ub->step, &nb->step) ||
            !same_step(&na->step, &nb->step, mask, top))
            break;
        /* the unit before is passed */
        units++;
        lines_a += ua->lines;
        lines_b += ub->lines;
        stops_a += ua->stops;
        stops_b += ub->stops;
        exits_a += ua->exits;
        exits_b += ub->exits;
        back_a = pa;
        back_b = pb;
        pa = ua->end;
        pb = ub->end;
        Unit *t = pu_a;
        pu_a = ua;
        ua = na;
        na = t;
        t = pu_b;
        pu_b = ub;
        ub = nb;
        nb = t;
    }
    if ((mask & MASK_LAG) && units > 0) {
        units--;
        lines_a -= pu_a->lines;
        lines_b -= pu_b->lines;
        stops_a -= pu_a->stops;
        stops_b -= pu_b->stops;
        exits_a -= pu_a->exits;
        exits_b -= pu_b->exits;
        pa = back_a;
        pb = back_b;
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
