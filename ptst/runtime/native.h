/* Helpers shared by ptst's fused CPU kernels (native.c: the fast engine's; native_train.c: training's): bf16
   conversions, element access for bf16 or fp32 arrays, exp, and the SiLU product. Everything here is static
   inline, so each file compiles its own copy. */
#ifndef PTST_NATIVE_H
#define PTST_NATIVE_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

static inline float bf2f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t f2bf(float f) { /* round to nearest even; NaN to the quiet NaN 0x7fc0 */
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* element i of a bf16 (f32 = 0) or fp32 (f32 = 1) array, and a store into one (rounded to bf16 there) */
static inline float ld(const void* p, int64_t i, int f32) {
    return f32 ? ((const float*)p)[i] : bf2f(((const uint16_t*)p)[i]);
}

static inline void st(void* p, int64_t i, float x, int f32) {
    if (f32) ((float*)p)[i] = x;
    else ((uint16_t*)p)[i] = f2bf(x);
}

/* Cephes' expf: a degree-6 polynomial after the range reduction, ~1 ulp on [-87.3, 88.3]; below, exp(-87.3);
   above 88.72, infinity */
static const float EXP_P[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                               4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};

static inline float exp1(float x) {
    if (x > 88.72f) return INFINITY; /* overflows, as expf */
    x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
    const float n = floorf(x * 1.44269504088896341f + 0.5f);
    const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = EXP_P[0];
    for (int i = 1; i < 6; i++) p = p * r + EXP_P[i];
    p = p * r * r + r + 1.0f;
    const int32_t e = ((int32_t)n + 127) << 23;
    float s;
    memcpy(&s, &e, 4);
    return p * s;
}

#if defined(__AVX512F__)
static inline __m512 exp16(__m512 x) {
    const __mmask16 over = _mm512_cmp_ps_mask(x, _mm512_set1_ps(88.72f), _CMP_GT_OQ); /* overflows, as expf */
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.3f));
    const __m512 y = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f));
    const __m512 n = _mm512_roundscale_ps(y, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(EXP_P[0]);
    for (int i = 1; i < 6; i++) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_P[i]));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mask_mov_ps(_mm512_mul_ps(p, _mm512_castsi512_ps(e)), over, _mm512_set1_ps(INFINITY));
}

static inline __m512 widen(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }

static inline __m512 load_bf16(const uint16_t* p) { return widen(_mm256_loadu_si256((const __m256i*)p)); }

static inline __m256i to_bf16(__m512 x) { /* f2bf, 16 at a time */
    const __m512i u = _mm512_castps_si512(x);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), _mm512_set1_epi32(0x7fc0));
    return _mm512_cvtepi32_epi16(r);
}

/* 16 elements from i of a bf16 (F32 = 0) or fp32 array, and a store of 16 (rounded to bf16 there) */
static inline __m512 ld16(const void* p, int64_t i, const int F32) {
    return F32 ? _mm512_loadu_ps((const float*)p + i) : load_bf16((const uint16_t*)p + i);
}

static inline void st16(void* p, int64_t i, __m512 v, const int F32) {
    if (F32) _mm512_storeu_ps((float*)p + i, v);
    else _mm256_storeu_si256((__m256i*)((uint16_t*)p + i), to_bf16(v));
}
#endif

/* silu(g) for bf16 (F32 = 0: rounded to bf16, as the model's bf16 SiLU) or fp32 values */
static inline float silu1(float g, const int F32) {
    const float si = g / (1.f + exp1(-g));
    return F32 ? si : bf2f(f2bf(si));
}

/* element i of a bf16 (F32 = 0) or fp32 array, as a pointer */
static inline const void* at(const void* p, int64_t i, const int F32) { return (const char*)p + i * (F32 ? 4 : 2); }

/* sum of a[i] * b[i] for i < n (bf16, or fp32 with F32), in fp32: 16 at a time, then the rest */
static inline float dot(const int F32, const void* a, const void* b, int64_t n) {
    float s = 0.f;
    int64_t i = 0;
#if defined(__AVX512F__)
    __m512 acc = _mm512_setzero_ps();
    for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(ld16(a, i, F32), ld16(b, i, F32), acc);
    s = _mm512_reduce_add_ps(acc);
#endif
    for (; i < n; i++) s += ld(a, i, F32) * ld(b, i, F32);
    return s;
}

/* y[i] = silu(g[i]) * u[i] for i < n: for bf16 (F32 = 0) bf16(bf16(silu(g)) * u), the model's two bf16
   roundings; for fp32 nothing rounded. The decoding step's and training's SiLU product alike. */
static inline __attribute__((always_inline)) void silu_span(const int F32, const void* g, const void* u, int64_t n,
                                                           void* y) {
    int64_t i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16) {
        const __m512 gv = F32 ? _mm512_loadu_ps((const float*)g + i) : load_bf16((const uint16_t*)g + i);
        const __m512 up = F32 ? _mm512_loadu_ps((const float*)u + i) : load_bf16((const uint16_t*)u + i);
        const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), gv));
        __m512 si = _mm512_div_ps(gv, _mm512_add_ps(_mm512_set1_ps(1.f), e));
        if (F32) {
            _mm512_storeu_ps((float*)y + i, _mm512_mul_ps(si, up));
        } else {
            si = widen(to_bf16(si));
            _mm256_storeu_si256((__m256i*)((uint16_t*)y + i), to_bf16(_mm512_mul_ps(si, up)));
        }
    }
#endif
    for (; i < n; i++) st(y, i, silu1(ld(g, i, F32), F32) * ld(u, i, F32), F32);
}

#endif
