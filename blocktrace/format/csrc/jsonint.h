/* The integers of the writer's lines as readers in C take them: one place for
 * the rule, shared by the export's columns (columns.c) and the viewer's tables
 * (view/csrc/tables.c). */
#ifndef BLOCKTRACE_JSONINT_H
#define BLOCKTRACE_JSONINT_H

#include <stdint.h>

/* A non-negative JSON integer of at most 18 digits (no leading zero) at *pp:
 * its value in *out and *pp past it, 0; else -1 (*pp unchanged), and the
 * caller hands the line to the Python reference. */
static inline int
json_uint(const uint8_t **pp, const uint8_t *end, int64_t *out)
{
    const uint8_t *p = *pp;
    int64_t v = 0;
    int n = 0;
    if (p < end && *p == '0') {
        p++;
        n = 1;
    } else {
        /* 18 digits at most: a 19th would overflow int64_t (undefined in C; UBSan
         * reported it); one that follows is refused below */
        while (p < end && *p >= '0' && *p <= '9' && n < 18) {
            v = v * 10 + (*p - '0');
            p++;
            n++;
        }
    }
    if (n == 0 || (p < end && *p >= '0' && *p <= '9')) {
        return -1;
    }
    *out = v;
    *pp = p;
    return 0;
}

#endif
