/* A call line's depth read from its body: the format's C reading of that member
 * for a writer that has the body it wrote (tracers/csrc/values.c, which forgets
 * the locals' state kept at that depth).  The body is laid out as
 * format/csrc/callline.h writes it ({"event":"call","kind":"S","depth":N,...);
 * its first bytes are linekinds.h's. */

#ifndef BT_CALLDEPTH_H
#define BT_CALLDEPTH_H

#include <stddef.h>
#include <string.h>

#include "linekinds.h"

/* The depth of the call line body p[0:n] (the first "depth": member after the call
 * line's first bytes and their comma), or -1 when it is not one. */
static inline long long
bt_call_depth(const char *p, size_t n)
{
    static const char start[] = LINE_CALL_PREFIX ",", key[] = "\"depth\":";
    size_t k = sizeof start - 1, d = sizeof key - 1;
    if (n < k || memcmp(p, start, k) != 0) {
        return -1;
    }
    for (size_t i = k; i + d < n; i++) {
        if (p[i] == '"' && memcmp(p + i, key, d) == 0) {
            long long depth = 0;
            size_t j = i + d, first = j;
            while (j < n && p[j] >= '0' && p[j] <= '9' && j - first < 18) {
                depth = depth * 10 + (p[j++] - '0');
            }
            return j > first ? depth : -1;
        }
    }
    return -1;
}

#endif /* BT_CALLDEPTH_H */
