/* What the CPU can do, asked once (CPUID on x86-64; elsewhere: nothing). */

#ifndef BT_CPU_H
#define BT_CPU_H

/* 1 when the CPU has the SHA extensions with the SSSE3 and SSE4.1 they need. */
int cpu_has_sha_extensions(void);

#endif /* BT_CPU_H */
