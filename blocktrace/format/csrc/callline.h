/* Call and return lines' bodies from plain values: the format's C spelling of
 * their layout (blocktrace.format.callline is the Python one, the same bytes;
 * docs/FORMAT.md).  Without a tail (thread, clock) -- the C callers write
 * single-thread traces without a clock only:
 *
 *     call:   prefix + b"%d" % depth + suffix
 *     return: RETURN_HEAD (or YIELD_HEAD) + b"%d" % depth + ',"code":' + b"%d" % code
 *             + ',"pc":' + b"%d" % pc + ',"gas":"0x' + b"%x" % gas
 *             + '","value":' + value        (or + '"' without a value)
 */

#ifndef BT_CALLLINE_H
#define BT_CALLLINE_H

#include <stddef.h>
#include <string.h>

#define CALLLINE_RETURN_HEAD "{\"event\":\"return\",\"kind\":\"return\",\"depth\":"
#define CALLLINE_YIELD_HEAD "{\"event\":\"return\",\"kind\":\"yield\",\"depth\":"
#define CALLLINE_CODE ",\"code\":"
#define CALLLINE_PC ",\"pc\":"
#define CALLLINE_GAS ",\"gas\":\"0x"
#define CALLLINE_VALUE "\",\"value\":"
#define CALLLINE_LIT(s) (sizeof(s) - 1)

/* Room for the numbers of a return line besides its value. */
#define CALLLINE_RETURN_FIXED                                                                 \
    (CALLLINE_LIT(CALLLINE_RETURN_HEAD) + CALLLINE_LIT(CALLLINE_CODE) + CALLLINE_LIT(CALLLINE_PC) \
     + CALLLINE_LIT(CALLLINE_GAS) + CALLLINE_LIT(CALLLINE_VALUE) + 4 * 21)

/* Decimal digits of v at o; returns the end. */
static inline char *
callline_dec(char *o, long long v)
{
    char tmp[24];
    size_t n = 0;
    unsigned long long m = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + m % 10);
        m /= 10;
    } while (m);
    if (v < 0) {
        *o++ = '-';
    }
    while (n) {
        *o++ = tmp[--n];
    }
    return o;
}

/* Lower-case hex digits of v (with a '-' when negative, as Python's %x). */
static inline char *
callline_hex(char *o, long long v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[20];
    size_t n = 0;
    unsigned long long m = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = digits[m & 15];
        m >>= 4;
    } while (m);
    if (v < 0) {
        *o++ = '-';
    }
    while (n) {
        *o++ = tmp[--n];
    }
    return o;
}

static inline char *
callline_put(char *o, const char *s, size_t n)
{
    memcpy(o, s, n);
    return o + n;
}

/* A call line's body at o (room: prefix_len + suffix_len + 21); returns the end. */
static inline char *
callline_call(char *o, const char *prefix, size_t prefix_len, long long depth,
              const char *suffix, size_t suffix_len)
{
    o = callline_put(o, prefix, prefix_len);
    o = callline_dec(o, depth);
    return callline_put(o, suffix, suffix_len);
}

/* A return line's body at o (room: CALLLINE_RETURN_FIXED + value_len), of kind
 * "return" (yield 0) or "yield" (yield 1, a shorter head); value NULL: a line
 * without its value member (a tracer that records no return values); returns
 * the end. */
static inline char *
callline_return(char *o, int yield, long long depth, long long code, long long pc, long long gas,
                const char *value, size_t value_len)
{
    o = yield ? callline_put(o, CALLLINE_YIELD_HEAD, CALLLINE_LIT(CALLLINE_YIELD_HEAD))
              : callline_put(o, CALLLINE_RETURN_HEAD, CALLLINE_LIT(CALLLINE_RETURN_HEAD));
    o = callline_dec(o, depth);
    o = callline_put(o, CALLLINE_CODE, CALLLINE_LIT(CALLLINE_CODE));
    o = callline_dec(o, code);
    o = callline_put(o, CALLLINE_PC, CALLLINE_LIT(CALLLINE_PC));
    o = callline_dec(o, pc);
    o = callline_put(o, CALLLINE_GAS, CALLLINE_LIT(CALLLINE_GAS));
    o = callline_hex(o, gas);
    if (value == NULL) {
        *o++ = '"';
        return o;
    }
    o = callline_put(o, CALLLINE_VALUE, CALLLINE_LIT(CALLLINE_VALUE));
    return callline_put(o, value, value_len);
}

#endif /* BT_CALLLINE_H */
