/* The members a writer appends after a line's own, spelled once for C (docs/FORMAT.md):
 * [,"thread":N][,"clock":N][,"locals":{...}][,"globals":{...}] and, on every line, the
 * hash member ,"hash":"<64 lowercase hex>"} before the newline.  The C writers
 * (chain/csrc, tracers/csrc/values.c) write these spellings and the C readers
 * (format/csrc, golden/csrc) look for them; blocktrace/format/members.py is the Python
 * spelling, and tests/format/test_members.py checks that the two agree.  Also the one C
 * check that 64 bytes are lowercase hex (a stored hash). */

#ifndef BT_MEMBERS_H
#define BT_MEMBERS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define BT_THREAD_MEMBER ",\"thread\":"
#define BT_CLOCK_MEMBER ",\"clock\":"
#define BT_LOCALS_MEMBER ",\"locals\":"
#define BT_GLOBALS_MEMBER ",\"globals\":"
#define BT_HASH_MEMBER ",\"hash\":\""
/* the length of one of the spellings above (a string literal) */
#define BT_MEMBER_LEN(m) (sizeof(m) - 1)

#define BT_HASH_MEMBER_LEN 9
#define BT_HASH_HEX_LEN 64
/* ,"hash":"<64 hex>"} -- what follows a line's body, without the newline */
#define BT_HASH_TAIL_LEN (BT_HASH_MEMBER_LEN + BT_HASH_HEX_LEN + 2)

/* 1 when the 64 bytes at p are lowercase hex digits; without a branch per byte (a stored
 * hash is random hex, so branches would mispredict) */
static inline int
bt_lower_hex64(const uint8_t *p)
{
#if defined(__SSE2__)
    /* sixteen at a time: a byte less '0' is 0-9 for a digit, less 'a' 0-5 for a letter;
     * less 9 (or 5) more, saturated, one of the two is 0 exactly for a hex digit */
    __m128i bad = _mm_setzero_si128();
    for (int i = 0; i < 64; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(p + i));
        __m128i digit = _mm_subs_epu8(_mm_sub_epi8(x, _mm_set1_epi8('0')), _mm_set1_epi8(9));
        __m128i letter = _mm_subs_epu8(_mm_sub_epi8(x, _mm_set1_epi8('a')), _mm_set1_epi8(5));
        bad = _mm_or_si128(bad, _mm_min_epu8(digit, letter));
    }
    return _mm_movemask_epi8(_mm_cmpeq_epi8(bad, _mm_setzero_si128())) == 0xffff;
#else
    unsigned ok = 1;
    for (int i = 0; i < 64; i++) {
        ok &= (unsigned)((uint8_t)(p[i] - '0') < 10) | (unsigned)((uint8_t)(p[i] - 'a') < 6);
    }
    return (int)ok;
#endif
}

/* The length of the body of the line at p, n bytes without its newline, when the line
 * ends as the hash member's shape ,"hash":"<64 bytes>"} does; -1 when it does not.  The
 * 64 bytes are not checked (bt_lower_hex64 does that where a reader wants it). */
static inline ptrdiff_t
bt_hash_body_len(const uint8_t *p, size_t n)
{
    if (n < BT_HASH_TAIL_LEN || p[n - 1] != '}' || p[n - 2] != '"'
        || memcmp(p + n - BT_HASH_TAIL_LEN, BT_HASH_MEMBER, BT_HASH_MEMBER_LEN) != 0) {
        return -1;
    }
    return (ptrdiff_t)(n - BT_HASH_TAIL_LEN);
}

#endif
