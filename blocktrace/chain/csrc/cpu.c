/* CPU feature detection (see cpu.h). */

#include "cpu.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <stddef.h>

int
cpu_has_sha_extensions(void)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) {
        return 0;
    }
    if (!(c & (1u << 19)) || !(c & (1u << 9))) { /* SSE4.1, SSSE3 */
        return 0;
    }
    if (__get_cpuid_max(0, NULL) < 7) {
        return 0;
    }
    __cpuid_count(7, 0, a, b, c, d);
    return (b >> 29) & 1; /* SHA */
}

#else

int
cpu_has_sha_extensions(void)
{
    return 0;
}

#endif
