/* ptst's fused CPU kernels for training's layers (ptst/train/dropout.py, fused.py): LoRA's dropout, a frozen
   RMSNorm forward and backward, the MLP's SiLU product forward and backward, and the rotary embedding forward and
   backward (the softmaxes are in native_softmax.c). Built into one library with native.c (ptst/runtime/native.py);
   the same conventions: bf16 or fp32 (`f32`) arrays, fp32 arithmetic, an AVX-512 path and a portable one. */
#include "native.h"

/* Training's dropout (ptst/train/dropout.py, in LoRA's lora_dropout): y = x * scale where kept, else 0. Element i
   is kept when its 32-bit draw is >= thresh (= p * 2^32): the low (even i) or high (odd i) half of splitmix64's
   finalizer at seed + (i / 2) * golden ratio. A counter-based draw: the mask takes no memory and does not depend on
   the threads, and the backward pass is this same call on the gradient with the same seed. */
#define MIX_STEP 0x9e3779b97f4a7c15ULL /* the golden ratio: draw j is mix64(seed + j * MIX_STEP) */
#define MIX_1 0xbf58476d1ce4e5b9ULL
#define MIX_2 0x94d049bb133111ebULL
static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * MIX_1;
    z = (z ^ (z >> 27)) * MIX_2;
    return z ^ (z >> 31);
}

static inline __attribute__((always_inline)) void dropout(const int F32, const void* x, void* y, int64_t n,
                                                         uint32_t thresh, float scale, uint64_t seed) {
    const int64_t pairs = (n + 1) / 2;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < (pairs + 7) / 8; b++) {
        int64_t j = b * 8;
#if defined(__AVX512F__) && defined(__AVX512DQ__)
        if (2 * j + 16 <= n) { /* 8 draws, 16 elements: the u32 lanes of the 8 draws are elements 2j .. 2j + 15 */
            __m512i z = _mm512_add_epi64(_mm512_set1_epi64((long long)seed),
                                         _mm512_mullo_epi64(_mm512_add_epi64(_mm512_set1_epi64(j),
                                                                             _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7)),
                                                            _mm512_set1_epi64((long long)MIX_STEP)));
            z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)),
                                   _mm512_set1_epi64((long long)MIX_1));
            z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)),
                                   _mm512_set1_epi64((long long)MIX_2));
            z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
            const __mmask16 keep = _mm512_cmpge_epu32_mask(z, _mm512_set1_epi32((int)thresh));
            const int64_t i = 2 * j;
            const __m512 v = ld16(x, i, F32);
            const __m512 out = _mm512_maskz_mul_ps(keep, v, _mm512_set1_ps(scale));
            if (F32) _mm512_storeu_ps((float*)y + i, out);
            else _mm256_storeu_si256((__m256i*)((uint16_t*)y + i), to_bf16(out));
            continue;
        }
#endif
        for (; j < (b + 1) * 8 && j < pairs; j++) {
            const uint64_t r = mix64(seed + (uint64_t)j * MIX_STEP);
            st(y, 2 * j, (uint32_t)r >= thresh ? ld(x, 2 * j, F32) * scale : 0.f, F32);
            if (2 * j + 1 < n) st(y, 2 * j + 1, (uint32_t)(r >> 32) >= thresh ? ld(x, 2 * j + 1, F32) * scale : 0.f, F32);
        }
    }
}

void ptst_dropout(const void* x, void* y, int64_t n, uint32_t thresh, float scale, uint64_t seed, int f32) {
    if (f32) dropout(1, x, y, n, thresh, scale, seed);
    else dropout(0, x, y, n, thresh, scale, seed);
}

/* Training's RMSNorm with a frozen weight (ptst/train/norm.py), as Llama's LlamaRMSNorm computes it: in fp32,
   r = 1/sqrt(mean(x^2) + eps) per row, y = w * (x * r) with, for bf16 x and w (f32 = 0), the model's two bf16
   roundings: y = bf16(w * bf16(x * r)). r is kept per row for the backward pass. */
static inline __attribute__((always_inline)) void rms_forward(const int F32, const void* x, const void* w, float eps,
                                                             int64_t rows, int64_t h, void* y, float* rinv) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const int64_t o = r * h;
        const float ss = dot(F32, at(x, o, F32), at(x, o, F32), h);
        const float inv = 1.f / sqrtf(ss / (float)h + eps);
        rinv[r] = inv;
        int64_t i = 0;
#if defined(__AVX512F__)
        for (; i + 16 <= h; i += 16) {
            if (F32) {
                _mm512_storeu_ps((float*)y + o + i, _mm512_mul_ps(_mm512_loadu_ps((const float*)w + i),
                                 _mm512_mul_ps(_mm512_loadu_ps((const float*)x + o + i), _mm512_set1_ps(inv))));
            } else {
                const __m512 hx = widen(to_bf16(_mm512_mul_ps(load_bf16((const uint16_t*)x + o + i), _mm512_set1_ps(inv))));
                _mm256_storeu_si256((__m256i*)((uint16_t*)y + o + i),
                                    to_bf16(_mm512_mul_ps(load_bf16((const uint16_t*)w + i), hx)));
            }
        }
#endif
        for (; i < h; i++) {
            const float hx = F32 ? ld(x, o + i, F32) * inv : bf2f(f2bf(ld(x, o + i, F32) * inv));
            st(y, o + i, ld(w, i, F32) * hx, F32);
        }
    }
}

void ptst_rms_forward(const void* x, const void* w, float eps, int64_t rows, int64_t h, void* y, float* rinv,
                      int f32) {
    if (f32) rms_forward(1, x, w, eps, rows, h, y, rinv);
    else rms_forward(0, x, w, eps, rows, h, y, rinv);
}

#if defined(__AVX512F__)
/* g * w, 16 at a time, rounded to bf16 for a bf16 model (as the bf16 product is) */
static inline __m512 gw16(const int F32, const void* g, const void* w, int64_t o, int64_t i) {
    if (F32) return _mm512_mul_ps(_mm512_loadu_ps((const float*)g + o + i), _mm512_loadu_ps((const float*)w + i));
    return widen(to_bf16(_mm512_mul_ps(load_bf16((const uint16_t*)g + o + i), load_bf16((const uint16_t*)w + i))));
}
#endif

/* Its gradient for x, as autograd takes it through those operations: d = g * w (rounded to bf16 for a bf16
   model, as the bf16 product is), then dx = r * d - x * r^3 * mean(d * x), rounded to x's dtype. */
static inline __attribute__((always_inline)) void rms_backward(const int F32, const void* x, const void* w,
                                                              const void* g, const float* rinv, int64_t rows,
                                                              int64_t h, void* dx) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const int64_t o = r * h;
        const float inv = rinv[r];
        float dx_dot = 0.f;
        int64_t i = 0;
#if defined(__AVX512F__)
        __m512 acc = _mm512_setzero_ps();
        for (; i + 16 <= h; i += 16) {
            const __m512 v = ld16(x, o + i, F32);
            acc = _mm512_fmadd_ps(gw16(F32, g, w, o, i), v, acc);
        }
        dx_dot = _mm512_reduce_add_ps(acc);
#endif
        for (; i < h; i++) {
            float d = ld(g, o + i, F32) * ld(w, i, F32);
            if (!F32) d = bf2f(f2bf(d));
            dx_dot += d * ld(x, o + i, F32);
        }
        const float c = inv * inv * inv * (dx_dot / (float)h);
        i = 0;
#if defined(__AVX512F__)
        for (; i + 16 <= h; i += 16) {
            const __m512 v = ld16(x, o + i, F32);
            const __m512 out = _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(inv), gw16(F32, g, w, o, i)),
                                             _mm512_mul_ps(v, _mm512_set1_ps(c)));
            if (F32) _mm512_storeu_ps((float*)dx + o + i, out);
            else _mm256_storeu_si256((__m256i*)((uint16_t*)dx + o + i), to_bf16(out));
        }
#endif
        for (; i < h; i++) {
            float d = ld(g, o + i, F32) * ld(w, i, F32);
            if (!F32) d = bf2f(f2bf(d));
            st(dx, o + i, inv * d - ld(x, o + i, F32) * c, F32);
        }
    }
}

void ptst_rms_backward(const void* x, const void* w, const void* g, const float* rinv, int64_t rows, int64_t h,
                       void* dx, int f32) {
    if (f32) rms_backward(1, x, w, g, rinv, rows, h, dx);
    else rms_backward(0, x, w, g, rinv, rows, h, dx);
}

/* Training's SiLU product of a Llama MLP (ptst/train/fused.py): y = silu(g) * u over n elements of separate gate
   and up tensors, with a bf16 model's two roundings (bf16(bf16(silu(g)) * u)), as the model's own operations. */
static inline __attribute__((always_inline)) void silu_fwd(const int F32, const void* g, const void* u, int64_t n,
                                                          void* y) {
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < (n + 1023) / 1024; c++) {
        const int64_t i = c * 1024;
        silu_span(F32, at(g, i, F32), at(u, i, F32), n - i < 1024 ? n - i : 1024, (void*)at(y, i, F32));
    }
}

/* Its gradients, as autograd takes them: s = silu(g) (rounded for bf16), du = dy * s, ds = dy * u (each rounded
   for bf16), dg = ds * sig(g) * (1 + g * (1 - sig(g))) (SiLU's own backward, in fp32, rounded for bf16). */
static inline __attribute__((always_inline)) void silu_bwd(const int F32, const void* g, const void* u,
                                                          const void* dy, int64_t n, void* dg, void* du) {
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < (n + 15) / 16; b++) {
        int64_t i = b * 16;
#if defined(__AVX512F__)
        if (i + 16 <= n) {
            const __m512 one = _mm512_set1_ps(1.f);
            const __m512 gv = ld16(g, i, F32);
            const __m512 uv = ld16(u, i, F32);
            const __m512 d = ld16(dy, i, F32);
            const __m512 sig = _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), gv))));
            __m512 si = _mm512_mul_ps(gv, sig), ds = _mm512_mul_ps(d, uv);
            if (!F32) {
                si = widen(to_bf16(si));
                ds = widen(to_bf16(ds));
            }
            const __m512 dgv = _mm512_mul_ps(_mm512_mul_ps(ds, sig),
                                             _mm512_add_ps(one, _mm512_mul_ps(gv, _mm512_sub_ps(one, sig))));
            const __m512 duv = _mm512_mul_ps(d, si);
            if (F32) {
                _mm512_storeu_ps((float*)dg + i, dgv);
                _mm512_storeu_ps((float*)du + i, duv);
            } else {
                _mm256_storeu_si256((__m256i*)((uint16_t*)dg + i), to_bf16(dgv));
                _mm256_storeu_si256((__m256i*)((uint16_t*)du + i), to_bf16(duv));
            }
            continue;
        }
#endif
        for (; i < (b + 1) * 16 && i < n; i++) {
            const float gi = ld(g, i, F32), d = ld(dy, i, F32);
            const float sig = 1.f / (1.f + exp1(-gi));
            float si = gi * sig, ds = d * ld(u, i, F32);
            if (!F32) {
                si = bf2f(f2bf(si));
                ds = bf2f(f2bf(ds));
            }
            st(dg, i, ds * sig * (1.f + gi * (1.f - sig)), F32);
            st(du, i, d * si, F32);
        }
    }
}

void ptst_silu_forward(const void* g, const void* u, int64_t n, void* y, int f32) {
    if (f32) silu_fwd(1, g, u, n, y);
    else silu_fwd(0, g, u, n, y);
}

void ptst_silu_backward(const void* g, const void* u, const void* dy, int64_t n, void* dg, void* du, int f32) {
    if (f32) silu_bwd(1, g, u, dy, n, dg, du);
    else silu_bwd(0, g, u, dy, n, dg, du);
}

/* Training's rotary embedding (ptst/train/fused.py), as Llama's apply_rotary_pos_emb computes it: per head row x of
   d values, y = x * cos + rotate_half(x) * sin, rotate_half(x) = (-x[d/2:], x[:d/2]), each product and the sum
   rounded to bf16 for a bf16 model (the model's three bf16 operations; nothing contracted, as -std=c11 compiles),
   exact in fp32 as torch's are. With BWD, its gradient for x from the gradient g in x's place:
   dx = g * cos + (g[d/2:] * sin[d/2:], -(g[:d/2] * sin[:d/2])), rounded alike. x and y are [b, h, t, d] with strides
   (xb, xh, xt) and (yb, yh, yt), d contiguous; cos and sin [b, t, d] with batch stride cb (0: one for all). */
static inline __attribute__((always_inline)) void rope_rows(const int F32, const int BWD, const void* x, int64_t xb,
                                                           int64_t xh, int64_t xt, void* y, int64_t yb, int64_t yh,
                                                           int64_t yt, const void* c, const void* s, int64_t cb,
                                                           int64_t b, int64_t h, int64_t t, int64_t d) {
    const int64_t half = d / 2;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t i = 0; i < b; i++)
        for (int64_t k = 0; k < t; k++) {
            const int64_t co = i * cb + k * d;
            for (int64_t j = 0; j < h; j++) {
                const int64_t xo = i * xb + j * xh + k * xt, yo = i * yb + j * yh + k * yt;
#if defined(__AVX512F__)
                if (half % 16 == 0) {
                    for (int64_t e = 0; e < d; e += 16) {
                        const int64_t o = e < half ? e + half : e - half; /* the partner column */
                        __m512 a = _mm512_mul_ps(ld16(x, xo + e, F32), ld16(c, co + e, F32));
                        __m512 r = _mm512_mul_ps(ld16(x, xo + o, F32), ld16(s, co + (BWD ? o : e), F32));
                        if (!F32) {
                            a = widen(to_bf16(a));
                            r = widen(to_bf16(r));
                        }
                        st16(y, yo + e, (e < half) == (BWD != 0) ? _mm512_add_ps(a, r) : _mm512_sub_ps(a, r), F32);
                    }
                    continue;
                }
#endif
                for (int64_t e = 0; e < half; e++) { /* partner column e + half */
                    float a = ld(x, xo + e, F32) * ld(c, co + e, F32);
                    float r = ld(x, xo + e + half, F32) * ld(s, co + (BWD ? e + half : e), F32);
                    if (!F32) {
                        a = bf2f(f2bf(a));
                        r = bf2f(f2bf(r));
                    }
                    st(y, yo + e, BWD ? a + r : a - r, F32);
                }
                for (int64_t e = half; e < d; e++) { /* partner column e - half */
                    float a = ld(x, xo + e, F32) * ld(c, co + e, F32);
                    float r = ld(x, xo + e - half, F32) * ld(s, co + (BWD ? e - half : e), F32);
                    if (!F32) {
                        a = bf2f(f2bf(a));
                        r = bf2f(f2bf(r));
                    }
                    st(y, yo + e, BWD ? a - r : a + r, F32);
                }
            }
        }
}

void ptst_rope(const void* x, int64_t xb, int64_t xh, int64_t xt, void* y, int64_t yb, int64_t yh, int64_t yt,
               const void* c, const void* s, int64_t cb, int64_t b, int64_t h, int64_t t, int64_t d, int bwd,
               int f32) {
    if (f32) {
        if (bwd) rope_rows(1, 1, x, xb, xh, xt, y, yb, yh, yt, c, s, cb, b, h, t, d);
        else rope_rows(1, 0, x, xb, xh, xt, y, yb, yh, yt, c, s, cb, b, h, t, d);
    } else {
        if (bwd) rope_rows(0, 1, x, xb, xh, xt, y, yb, yh, yt, c, s, cb, b, h, t, d);
        else rope_rows(0, 0, x, xb, xh, xt, y, yb, yh, yt, c, s, cb, b, h, t, d);
    }
}
