/* Lowercase hex, as the trace writes hashes and gas. */

#ifndef BT_HEX_H
#define BT_HEX_H

#include <stdint.h>
#include <string.h>

static const char HEXDIGITS[] = "0123456789abcdef";

/* Byte b -> its two hex digits at 2b. */
static const char HEXPAIRS[513] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
    "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
    "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
    "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

#if defined(__SSE2__)
#include <emmintrin.h>

/* The 32 hex digits of the 16 bytes in x, with SSE2 (every x86-64 has it): each
 * byte's high and low nibbles interleaved, then '0' + n, plus 39 more for n > 9. */
static inline void
hex16_reg(__m128i x, char *out)
{
    const __m128i low4 = _mm_set1_epi8(0x0f);
    __m128i hi = _mm_and_si128(_mm_srli_epi16(x, 4), low4);
    __m128i lo = _mm_and_si128(x, low4);
    __m128i a = _mm_unpacklo_epi8(hi, lo), b = _mm_unpackhi_epi8(hi, lo);
    const __m128i nine = _mm_set1_epi8(9), zero = _mm_set1_epi8('0'), gap = _mm_set1_epi8(39);
    a = _mm_add_epi8(_mm_add_epi8(a, zero), _mm_and_si128(_mm_cmpgt_epi8(a, nine), gap));
    b = _mm_add_epi8(_mm_add_epi8(b, zero), _mm_and_si128(_mm_cmpgt_epi8(b, nine), gap));
    _mm_storeu_si128((__m128i *)out, a);
    _mm_storeu_si128((__m128i *)(out + 16), b);
}

static inline void
hex16_sse2(const uint8_t *d, char *out)
{
    hex16_reg(_mm_loadu_si128((const __m128i *)d), out);
}
#endif

/* The 64 hex digits of a 32-byte hash (no terminator). */
static inline void
hex32(const uint8_t d[32], char *out)
{
#if defined(__SSE2__)
    hex16_sse2(d, out);
    hex16_sse2(d + 16, out + 32);
#else
    for (int i = 0; i < 32; i++) {
        memcpy(out + 2 * i, HEXPAIRS + 2 * d[i], 2);
    }
#endif
}

#endif /* BT_HEX_H */
