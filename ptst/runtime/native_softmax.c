/* ptst's fused CPU kernels for training's two softmaxes: the LM head's cross-entropy with its gradient
   (ptst/train/loss.py) and the per-row attention's causal softmax forward and backward (ptst/runtime/row_attention.py).
   Built into one library with native.c and native_train.c (ptst/runtime/native.py); the same conventions: bf16 or
   fp32 (`f32`) arrays, fp32 arithmetic, an AVX-512 path and a portable one. */
#include "native.h"

/* Training's cross-entropy over a chunk of the LM head's logits z [rows, v] (bf16, or fp32 with F32; ptst/train/loss.py),
   with its gradient: per row, in fp32, lse = m + log(sum(exp(z - m))) with m the row's largest logit, and
   loss[r] = lse - z[r, t[r]]; with GRAD, z is then overwritten by the gradient of the loss for the logits,
   softmax(z) - onehot(t[r]), rounded to z's dtype. A target below 0 (ignored) gives 0 and a zero gradient row. */
static inline __attribute__((always_inline)) void xent(const int F32, void* z, int64_t rows, int64_t v,
                                                      const int64_t* t, float* loss, int grad) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        void* row = (char*)z + r * v * (F32 ? 4 : 2);
        const int64_t tr = t[r];
        float top = -INFINITY, s = 0.f;
        int64_t i = 0;
#if defined(__AVX512F__)
        __m512 mx = _mm512_set1_ps(-INFINITY);
        for (; i + 16 <= v; i += 16)
            mx = _mm512_max_ps(mx, ld16(row, i, F32));
        top = _mm512_reduce_max_ps(mx);
#endif
        for (; i < v; i++) top = fmaxf(top, ld(row, i, F32));
        i = 0;
#if defined(__AVX512F__)
        const __m512 tv = _mm512_set1_ps(top);
        __m512 acc = _mm512_setzero_ps();
        for (; i + 16 <= v; i += 16) acc = _mm512_add_ps(acc, exp16(_mm512_sub_ps(ld16(row, i, F32), tv)));
        s = _mm512_reduce_add_ps(acc);
#endif
        for (; i < v; i++) s += exp1(ld(row, i, F32) - top);
        const float zt = tr >= 0 ? ld(row, tr, F32) : 0.f;
        loss[r] = tr >= 0 ? top + logf(s) - zt : 0.f;
        if (!grad) continue;
        if (tr < 0) {
            memset(row, 0, (size_t)v * (F32 ? 4 : 2));
            continue;
        }
        const float inv = 1.f / s;
        i = 0;
#if defined(__AVX512F__)
        const __m512 iv = _mm512_set1_ps(inv);
        for (; i + 16 <= v; i += 16) st16(row, i, _mm512_mul_ps(exp16(_mm512_sub_ps(ld16(row, i, F32), tv)), iv), F32);
#endif
        for (; i < v; i++) st(row, i, exp1(ld(row, i, F32) - top) * inv, F32);
        st(row, tr, exp1(zt - top) * inv - 1.f, F32); /* the target's, from its logit: one rounding, as torch's */
    }
}

void ptst_xent(void* z, int64_t rows, int64_t v, const int64_t* t, float* loss, int grad, int f32) {
    if (f32) xent(1, z, rows, v, t, loss, grad);
    else xent(0, z, rows, v, t, loss, grad);
}

/* Training's attention softmax for one packed row (ptst/runtime/row_attention.py), in place over the scores s
   [rows, w] of `rows` = heads * n query rows (query i = row % n) against w = p + n keys: a shared prefix of p,
   then the row's own n, causal. Each query's scores are scaled (rounded to bf16 for a bf16 model, as the model's
   bf16 product by its scaling is), softmaxed in fp32 over its p + i + 1 keys, and written back as probabilities
   in s's dtype, 0 for the keys it may not see. */
static inline __attribute__((always_inline)) void causal_softmax(const int F32, void* s, int64_t rows, int64_t n,
                                                                int64_t p, float scale) {
    const int64_t w = p + n;
#pragma omp parallel
    {
        float* e = malloc((size_t)w * sizeof(float)); /* a row's scaled scores, then their exponentials */
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            void* row = (char*)s + r * w * (F32 ? 4 : 2);
            const int64_t seen = p + r % n + 1;
            float top = -INFINITY, sum = 0.f;
            int64_t j = 0;
#if defined(__AVX512F__)
            const __m512 sv = _mm512_set1_ps(scale);
            __m512 mx = _mm512_set1_ps(-INFINITY);
            for (; j + 16 <= seen; j += 16) {
                __m512 x = _mm512_mul_ps(ld16(row, j, F32), sv);
                if (!F32) x = widen(to_bf16(x));
                _mm512_storeu_ps(e + j, x);
                mx = _mm512_max_ps(mx, x);
            }
            top = _mm512_reduce_max_ps(mx);
#endif
            for (; j < seen; j++) {
                e[j] = ld(row, j, F32) * scale;
                if (!F32) e[j] = bf2f(f2bf(e[j]));
                top = fmaxf(top, e[j]);
            }
            j = 0;
#if defined(__AVX512F__)
            const __m512 tv = _mm512_set1_ps(top);
            __m512 acc = _mm512_setzero_ps();
            for (; j + 16 <= seen; j += 16) {
                const __m512 x = exp16(_mm512_sub_ps(_mm512_loadu_ps(e + j), tv));
                _mm512_storeu_ps(e + j, x);
                acc = _mm512_add_ps(acc, x);
            }
            sum = _mm512_reduce_add_ps(acc);
#endif
            for (; j < seen; j++) {
                e[j] = exp1(e[j] - top);
                sum += e[j];
            }
            const float inv = 1.f / sum;
            j = 0;
#if defined(__AVX512F__)
            for (; j + 16 <= seen; j += 16) st16(row, j, _mm512_mul_ps(_mm512_loadu_ps(e + j), _mm512_set1_ps(inv)), F32);
#endif
            for (; j < seen; j++) st(row, j, e[j] * inv, F32);
            memset((char*)row + seen * (F32 ? 4 : 2), 0, (size_t)(w - seen) * (F32 ? 4 : 2));
        }
        free(e);
    }
}

void ptst_causal_softmax(void* s, int64_t rows, int64_t n, int64_t p, float scale, int f32) {
    if (f32) causal_softmax(1, s, rows, n, p, scale);
    else causal_softmax(0, s, rows, n, p, scale);
}

/* Its backward pass, in place over dp [rows, w], the gradient for the probabilities pr [rows, w]: the gradient for
   the unscaled scores, scale * pr * (dp - sum_j pr_j dp_j), in dp's dtype (0 where pr is 0: the unseen keys). */
static inline __attribute__((always_inline)) void causal_softmax_bwd(const int F32, const void* pr, void* dp,
                                                                    int64_t rows, int64_t n, int64_t p,
                                                                    float scale) {
    const int64_t w = p + n;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const int64_t o = r * w, seen = p + r % n + 1;
        const float pd = dot(F32, at(pr, o, F32), at(dp, o, F32), seen);
        int64_t j = 0;
#if defined(__AVX512F__)
        const __m512 dv = _mm512_set1_ps(pd), sv = _mm512_set1_ps(scale);
        for (; j + 16 <= seen; j += 16) {
            const __m512 a = ld16(pr, o + j, F32);
            const __m512 b = ld16(dp, o + j, F32);
            const __m512 g = _mm512_mul_ps(_mm512_mul_ps(a, _mm512_sub_ps(b, dv)), sv);
            st16(dp, o + j, g, F32);
        }
#endif
        for (; j < seen; j++) st(dp, o + j, ld(pr, o + j, F32) * (ld(dp, o + j, F32) - pd) * scale, F32);
        memset((char*)dp + (o + seen) * (F32 ? 4 : 2), 0, (size_t)(w - seen) * (F32 ? 4 : 2));
    }
}

void ptst_causal_softmax_backward(const void* pr, void* dp, int64_t rows, int64_t n, int64_t p, float scale,
                                  int f32) {
    if (f32) causal_softmax_bwd(1, pr, dp, rows, n, p, scale);
    else causal_softmax_bwd(0, pr, dp, rows, n, p, scale);
}
