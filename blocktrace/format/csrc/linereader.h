/* The op, call and return lines as the writers lay them out (format/opline.h,
 * format/callline.h; docs/FORMAT.md), read in C: the one reader of those layouts
 * for the C readers that take the common lines without the Python Structs
 * (blocktrace/format/lines.py) -- the query export's columns (format/csrc/columns.c)
 * and the viewer's tables (view/csrc/tables.c).  Each line function says whether
 * a line is one of the forms below and hands over its members; a reader that
 * takes less (no values, ASCII names only, numbers in a column's range) refuses
 * the rest itself, and the line goes to the Python reference, which decodes it
 * with the Structs.  So a line these functions take is one the Structs decode,
 * member for member:
 *
 *   {"pc":N,"op":N,"gas":"0xH","gasCost":"0xH","depth":N,"opName":"W","line":N,
 *    "code":N[,"thread":N][,"clock":N][,"locals":{...}][,"globals":{...}],"hash":"<64 hex>"}
 *   {"event":"call","kind":"S","depth":N,"code":N,"name":"S","file":"S","firstLine":N
 *    [,"thread":N][,"clock":N],"hash":"<64 hex>"}
 *   {"event":"return","kind":"S","depth":N,"code":N,"pc":N,"gas":"0xH"[,"value":V]
 *    [,"thread":N][,"clock":N],"hash":"<64 hex>"}
 *
 * N a JSON integer of at most 18 digits (jsonint.h), H 1 to 16 lowercase hex
 * digits, W letters, digits and '_', S a JSON string (well-formed UTF-8, the
 * short escapes, not \u), V a scalar (S, true, false, null, an integer, a plain
 * decimal of at most 19 characters), {...} an object of V members with distinct
 * names without escapes.  "plain" below: printable ASCII without escapes.
 *
 * Call bt_lines_init() once (a module's exec) before any other function here. */

#ifndef BT_LINEREADER_H
#define BT_LINEREADER_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "jsonint.h"
#include "linekinds.h"
#include "members.h"

typedef const uint8_t *bt_cp;

/* lowercase hex digit -> its value, anything else 255 */
static uint8_t BT_HEXVAL[256];
/* printable ASCII but '"' and '\\': 1 */
static uint8_t BT_PLAIN[256];

static inline void
bt_lines_init(void)
{
    memset(BT_HEXVAL, 255, sizeof BT_HEXVAL);
    for (int i = 0; i < 10; i++) {
        BT_HEXVAL['0' + i] = (uint8_t)i;
    }
    for (int i = 0; i < 6; i++) {
        BT_HEXVAL['a' + i] = (uint8_t)(10 + i);
    }
    memset(BT_PLAIN, 0, sizeof BT_PLAIN);
    for (int i = 0x20; i < 0x7f; i++) {
        BT_PLAIN[i] = (uint8_t)(i != '"' && i != '\\');
    }
}

/* the bytes s[0:n] at *pp: *pp past them, 0; else -1 */
static inline int
bt_lit(bt_cp *pp, bt_cp end, const char *s, size_t n)
{
    if ((size_t)(end - *pp) < n || memcmp(*pp, s, n) != 0) {
        return -1;
    }
    *pp += n;
    return 0;
}

#define BT_LIT(s) bt_lit(&p, end, s, sizeof(s) - 1)

/* 1 to 16 lowercase hex digits then the closing quote (*pp past it): their value */
static inline int
bt_hex_digits(bt_cp *pp, bt_cp end, uint64_t *value)
{
    bt_cp p = *pp;
    uint64_t v = 0;
    int n = 0;
    while (p < end && BT_HEXVAL[*p] != 255) {
        if (++n > 16) {
            return -1;
        }
        v = (v << 4) | BT_HEXVAL[*p];
        p++;
    }
    if (n == 0 || p >= end || *p != '"') {
        return -1;
    }
    *value = v;
    *pp = p + 1;
    return 0;
}

/* A JSON string's body after its opening quote, *pp past the closing one: [*s,
 * *s + *n) the body as written; *plain 1 when it is plain (printable ASCII without
 * escapes).  Well-formed UTF-8 and the short escapes only (not \u). */
static inline int
bt_json_str(bt_cp *pp, bt_cp end, bt_cp *s, size_t *n, int *plain)
{
    bt_cp p = *pp;
    *s = p;
    while (p < end && BT_PLAIN[*p]) {
        p++;
    }
    *plain = 1;
    while (p < end) {
        uint8_t c = *p;
        if (c == '"') {
            *n = (size_t)(p - *s);
            *pp = p + 1;
            return 0;
        }
        *plain = 0;
        if (c < 0x20) {
            return -1;
        }
        if (c == '\\') {
            if (p + 1 >= end || p[1] == 0 || !strchr("\"\\/bfnrt", p[1])) {
                return -1;
            }
            p += 2;
            continue;
        }
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t len;
        uint32_t code;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            code = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            code = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            code = c & 0x07;
        } else {
            return -1;
        }
        if ((size_t)(end - p) < len) {
            return -1;
        }
        for (size_t i = 1; i < len; i++) {
            if ((p[i] & 0xC0) != 0x80) {
                return -1;
            }
            code = (code << 6) | (p[i] & 0x3F);
        }
        if ((len == 3 && (code < 0x800 || (code >= 0xD800 && code <= 0xDFFF)))
            || (len == 4 && (code < 0x10000 || code > 0x10FFFF))) {
            return -1;
        }
        p += len;
    }
    return -1;
}

/* A plain string's body after its opening quote, *pp past the closing one. */
static inline int
bt_plain_str(bt_cp *pp, bt_cp end, bt_cp *s, size_t *n)
{
    bt_cp p = *pp;
    *s = p;
    while (p < end && BT_PLAIN[*p]) {
        p++;
    }
    if (p >= end || *p != '"') {
        return -1;
    }
    *n = (size_t)(p - *s);
    *pp = p + 1;
    return 0;
}

/* A scalar V at *pp, *pp past it.  *plain 1 when msgspec writes it again as it is
 * written here: null, true, false, an integer but -0, a plain string. */
static inline int
bt_json_scalar(bt_cp *pp, bt_cp end, int *plain)
{
    bt_cp p = *pp;
    if (p >= end) {
        return -1;
    }
    if (*p == '"') {
        bt_cp s;
        size_t n;
        p++;
        if (bt_json_str(&p, end, &s, &n, plain) < 0) {
            return -1;
        }
        *pp = p;
        return 0;
    }
    *plain = 1;
    if (BT_LIT("true") == 0 || BT_LIT("false") == 0 || BT_LIT("null") == 0) {
        *pp = p;
        return 0;
    }
    if (*p == '-') {
        p++;
        if (p < end && *p == '0') {
            *plain = 0; /* -0 is written 0 */
        }
    }
    int64_t v;
    bt_cp digits = p;
    if (json_uint(&p, end, &v) < 0) {
        return -1;
    }
    if (p < end && *p == '.') {
        *plain = 0;
        p++;
        bt_cp frac = p;
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
        if (p == frac || p - digits > 19) {
            return -1;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        return -1;
    }
    *pp = p;
    return 0;
}

/* the line's end, exactly: ,"hash":"<64 lowercase hex>"} */
static inline int
bt_hash_end(bt_cp p, bt_cp end)
{
    if (end - p != BT_HASH_TAIL_LEN || BT_LIT(BT_HASH_MEMBER) || p[64] != '"' || p[65] != '}') {
        return -1;
    }
    return bt_lower_hex64(p) ? 0 : -1;
}

/* an optional integer member key:N at *pp: 1 read, 0 absent, -1 malformed */
static inline int
bt_opt_uint(bt_cp *pp, bt_cp end, const char *key, size_t n, int64_t *out)
{
    bt_cp p = *pp;
    if (bt_lit(&p, end, key, n) < 0) {
        return 0;
    }
    if (json_uint(&p, end, out) < 0) {
        return -1;
    }
    *pp = p;
    return 1;
}

/* [,"thread":N][,"clock":N]; 0 for one that is not there */
static inline int
bt_thread_clock(bt_cp *pp, bt_cp end, int64_t *thread, int *has_thread, int64_t *clock,
                int *has_clock)
{
    *thread = *clock = 0;
    *has_thread = bt_opt_uint(pp, end, BT_THREAD_MEMBER, BT_MEMBER_LEN(BT_THREAD_MEMBER), thread);
    if (*has_thread < 0) {
        return -1;
    }
    *has_clock = bt_opt_uint(pp, end, BT_CLOCK_MEMBER, BT_MEMBER_LEN(BT_CLOCK_MEMBER), clock);
    return *has_clock < 0 ? -1 : 0;
}

#define BT_MAX_MEMBERS 64

typedef struct {
    bt_cp name, text;
    size_t name_len, len;
} BtMember;

/* An object of scalar members with plain-named (no escape), distinct names at *pp:
 * up to BT_MAX_MEMBERS of them into out, *count of them. */
static inline int
bt_members(bt_cp *pp, bt_cp end, BtMember *out, int *count)
{
    bt_cp p = *pp;
    int n = 0;
    if (BT_LIT("{")) {
        return -1;
    }
    if (BT_LIT("}") == 0) {
        *pp = p;
        *count = 0;
        return 0;
    }
    for (;;) {
        bt_cp name, text;
        size_t name_len;
        int plain;
        if (n == BT_MAX_MEMBERS || BT_LIT("\"")
            || bt_json_str(&p, end, &name, &name_len, &plain) < 0) {
            return -1;
        }
        if (memchr(name, '\\', name_len) != NULL) {
            return -1;
        }
        for (int i = 0; i < n; i++) {
            if (out[i].name_len == name_len && memcmp(out[i].name, name, name_len) == 0) {
                return -1; /* a repeated name: Python says what it means */
            }
        }
        if (BT_LIT(":")) {
            return -1;
        }
        text = p;
        if (bt_json_scalar(&p, end, &plain) < 0) {
            return -1;
        }
        out[n].name = name;
        out[n].name_len = name_len;
        out[n].text = text;
        out[n].len = (size_t)(p - text);
        n++;
        if (BT_LIT(",") == 0) {
            continue;
        }
        if (BT_LIT("}")) {
            return -1;
        }
        *pp = p;
        *count = n;
        return 0;
    }
}

/* ---- the op line ------------------------------------------------------------ */

typedef struct {
    int64_t pc, op, depth, line, code, thread, clock;
    int has_thread, has_clock;
    uint64_t gas;
    bt_cp gas_text, cost_text; /* the bodies of gas and gasCost as written: 0xH */
    size_t gas_len, cost_len;
    bt_cp name; /* opName's body */
    size_t name_len;
    int nlocals, nglobals; /* members read, -1 when the line has none */
} BtOpLine;

/* The members an op line and an exception line begin with, *pp after the opening
 * quote of opName's value:
 *   {"pc":N,"op":N,"gas":"0xH","gasCost":"0xH","depth":N,"opName":" */
static inline int
bt_op_head(bt_cp *pp, bt_cp end, BtOpLine *o)
{
    bt_cp p = *pp;
    uint64_t cost;
    if (BT_LIT(LINE_OP_PREFIX) || json_uint(&p, end, &o->pc) || BT_LIT(",\"op\":")
        || json_uint(&p, end, &o->op) || BT_LIT(",\"gas\":\"")) {
        return -1;
    }
    o->gas_text = p;
    if (BT_LIT("0x") || bt_hex_digits(&p, end, &o->gas)) {
        return -1;
    }
    o->gas_len = (size_t)(p - 1 - o->gas_text);
    if (BT_LIT(",\"gasCost\":\"")) {
        return -1;
    }
    o->cost_text = p;
    if (BT_LIT("0x") || bt_hex_digits(&p, end, &cost)) {
        return -1;
    }
    o->cost_len = (size_t)(p - 1 - o->cost_text);
    if (BT_LIT(",\"depth\":") || json_uint(&p, end, &o->depth) || BT_LIT(",\"opName\":\"")) {
        return -1;
    }
    *pp = p;
    return 0;
}

/* An op line's members from opName's value on (p as bt_op_head leaves it) to its
 * end.  locals/globals: where the values' members go; NULL when the reader takes
 * no values (a line with them is then refused). */
static inline int
bt_op_rest(bt_cp p, bt_cp end, BtOpLine *o, BtMember *locals, BtMember *globals)
{
    o->name = p;
    while (p < end && ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')
                       || (*p >= '0' && *p <= '9') || *p == '_')) {
        p++;
    }
    o->name_len = (size_t)(p - o->name);
    if (BT_LIT("\",\"line\":") || json_uint(&p, end, &o->line) || BT_LIT(",\"code\":")
        || json_uint(&p, end, &o->code)
        || bt_thread_clock(&p, end, &o->thread, &o->has_thread, &o->clock, &o->has_clock)) {
        return -1;
    }
    o->nlocals = o->nglobals = -1;
    if (p < end && *p == ',' && end - p > BT_HASH_TAIL_LEN) { /* more than the hash: values */
        if (BT_LIT(BT_LOCALS_MEMBER) == 0
            && (locals == NULL || bt_members(&p, end, locals, &o->nlocals) < 0)) {
            return -1;
        }
        if (BT_LIT(BT_GLOBALS_MEMBER) == 0
            && (globals == NULL || bt_members(&p, end, globals, &o->nglobals) < 0)) {
            return -1;
        }
    }
    return bt_hash_end(p, end);
}

/* A whole op line [p, end) (no newline): 0 and its members in o; -1 not one. */
static inline int
bt_op_line(bt_cp p, bt_cp end, BtOpLine *o, BtMember *locals, BtMember *globals)
{
    if (bt_op_head(&p, end, o)) {
        return -1;
    }
    return bt_op_rest(p, end, o, locals, globals);
}

/* ---- the call and return lines ------------------------------------------------ */

typedef struct {
    bt_cp kind, name, file; /* the strings' bodies as written */
    size_t kind_len, name_len, file_len;
    int plain; /* kind, name and file are all plain */
    int64_t depth, code, first_line, thread, clock;
    int has_thread, has_clock;
} BtCallLine;

/* A whole call line [p, end): 0 and its members in c; -1 not one. */
static inline int
bt_call_line(bt_cp p, bt_cp end, BtCallLine *c)
{
    int plain_kind, plain_name, plain_file;
    if (BT_LIT(LINE_CALL_PREFIX ",\"kind\":\"")
        || bt_json_str(&p, end, &c->kind, &c->kind_len, &plain_kind) || BT_LIT(",\"depth\":")
        || json_uint(&p, end, &c->depth) || BT_LIT(",\"code\":") || json_uint(&p, end, &c->code)
        || BT_LIT(",\"name\":\"") || bt_json_str(&p, end, &c->name, &c->name_len, &plain_name)
        || BT_LIT(",\"file\":\"") || bt_json_str(&p, end, &c->file, &c->file_len, &plain_file)
        || BT_LIT(",\"firstLine\":") || json_uint(&p, end, &c->first_line)
        || bt_thread_clock(&p, end, &c->thread, &c->has_thread, &c->clock, &c->has_clock)) {
        return -1;
    }
    c->plain = plain_kind & plain_name & plain_file;
    return bt_hash_end(p, end);
}

typedef struct {
    bt_cp kind, value; /* value: its JSON text, NULL when the line has none */
    size_t kind_len, value_len;
    int plain; /* kind plain, and the value (when there is one) plain (bt_json_scalar) */
    int64_t depth, code, pc, thread, clock;
    uint64_t gas;
    int has_thread, has_clock;
} BtReturnLine;

/* A whole return line [p, end): 0 and its members in r; -1 not one. */
static inline int
bt_return_line(bt_cp p, bt_cp end, BtReturnLine *r)
{
    int plain_kind, plain_value = 1;
    if (BT_LIT(LINE_RETURN_PREFIX ",\"kind\":\"")
        || bt_json_str(&p, end, &r->kind, &r->kind_len, &plain_kind) || BT_LIT(",\"depth\":")
        || json_uint(&p, end, &r->depth) || BT_LIT(",\"code\":") || json_uint(&p, end, &r->code)
        || BT_LIT(",\"pc\":") || json_uint(&p, end, &r->pc) || BT_LIT(",\"gas\":\"0x")
        || bt_hex_digits(&p, end, &r->gas)) {
        return -1;
    }
    r->value = NULL;
    r->value_len = 0;
    if (BT_LIT(",\"value\":") == 0) {
        r->value = p;
        if (bt_json_scalar(&p, end, &plain_value) < 0) {
            return -1;
        }
        r->value_len = (size_t)(p - r->value);
    }
    if (bt_thread_clock(&p, end, &r->thread, &r->has_thread, &r->clock, &r->has_clock)) {
        return -1;
    }
    r->plain = plain_kind & plain_value;
    return bt_hash_end(p, end);
}

#endif /* BT_LINEREADER_H */
