/* ptst's fused CPU kernels for the fast engine's bf16 and fp32 models (ptst/runtime/native.py builds and loads this
   file; ptst/runtime/fused.py calls it; docs/performance.md measures it). What eager PyTorch runs as ~40 small
   operations a layer: one decoding step's attention (rotary embedding, cache write, scores against the shared prefix
   and the row's own columns, softmax, values), the prefill's attention on packed prompt tokens, the residual sum
   with the next RMSNorm, the MLP's SiLU product, and (bf16) the LM head's fp32 rescoring of each row's candidates.

   Arithmetic: fp32 throughout (the residual stream, the keys, the scores). A bf16 model's linear layers read bf16
   inputs (rounded to nearest even, as torch rounds) and its rows' own values are kept in bf16 (the bf16
   projection's output, held exactly); an fp32 model's (`f32` set) are fp32 everywhere, nothing rounded. The
   AVX-512 path (d = 64 or 128) and the portable path sum in different orders, so their results can differ in the
   last bits, as any two kernels' do.

   Threads: OpenMP, loaded after torch, so the process's one libgomp (torch's) runs both. */
#include "native.h"

int ptst_native_version(void) { return 8; }

/* x * cos + roll(x, d/2) * sin, sin with its first half negated: the model's rotary embedding */
static inline void rope(const float* x, const float* c, const float* s, int64_t half, float* out) {
    for (int64_t i = 0; i < half; i++) out[i] = x[i] * c[i] + x[i + half] * s[i];
    for (int64_t i = half; i < 2 * half; i++) out[i] = x[i] * c[i] + x[i - half] * s[i];
}

#if defined(__AVX512F__)
/* The g heads' softmax-weighted values, HB heads at a time with DV = d / 16 accumulators each in registers (each
   value row read once for the HB heads): the prefix's p rows (pv), then the row's own columns (vrow, bf16, or fp32
   with F32), masked columns skipped; e [g, n] the unnormalised weights, inv [g] their sums' inverses; out [g, d]
   bf16 (fp32 with F32) */
static inline __attribute__((always_inline)) void values_block(const int DV, const int HB, const int F32,
                                                              const float* e, int64_t n, int64_t g, int64_t p,
                                                              const float* m, const float* pv, const void* vrow,
                                                              const float* inv, void* out) {
    for (int64_t j0 = 0; j0 < g; j0 += HB) {
        __m512 a[3][8]; /* fixed sizes (not variable-length arrays), so they live in registers */
        for (int jj = 0; jj < HB; jj++)
            for (int v = 0; v < DV; v++) a[jj][v] = _mm512_setzero_ps();
        for (int64_t t = 0; t < n; t++) {
            if (m[t] == -INFINITY) continue;
            __m512 x[8];
            if (t < p)
                for (int v = 0; v < DV; v++) x[v] = _mm512_loadu_ps(pv + t * DV * 16 + 16 * v);
            else if (F32) {
                const float* vt = (const float*)vrow + (t - p) * DV * 16;
                if (t + 8 < n) /* 8 columns ahead, as the keys */
                    for (int v = 0; v < DV; v++) _mm_prefetch((const char*)(vt + 8 * DV * 16 + 16 * v), _MM_HINT_T0);
                for (int v = 0; v < DV; v++) x[v] = _mm512_loadu_ps(vt + 16 * v);
            } else {
                const uint16_t* vt = (const uint16_t*)vrow + (t - p) * DV * 16;
                if (t + 8 < n)
                    for (int v = 0; v < DV; v += 2) _mm_prefetch((const char*)(vt + 8 * DV * 16 + 16 * v), _MM_HINT_T0);
                for (int v = 0; v < DV; v++) x[v] = load_bf16(vt + 16 * v);
            }
            for (int jj = 0; jj < HB; jj++) {
                const __m512 w = _mm512_set1_ps(e[(j0 + jj) * n + t]);
                for (int v = 0; v < DV; v++) a[jj][v] = _mm512_fmadd_ps(w, x[v], a[jj][v]);
            }
        }
        for (int jj = 0; jj < HB; jj++) {
            const __m512 s = _mm512_set1_ps(inv[j0 + jj]);
            for (int v = 0; v < DV; v++) {
                const int64_t at = (j0 + jj) * DV * 16 + 16 * v;
                if (F32) _mm512_storeu_ps((float*)out + at, _mm512_mul_ps(a[jj][v], s));
                else _mm256_storeu_si256((__m256i*)((uint16_t*)out + at), to_bf16(_mm512_mul_ps(a[jj][v], s)));
            }
        }
    }
}

static void values16(int64_t d, int f32, const float* e, int64_t n, int64_t g, int64_t p, const float* m,
                     const float* pv, const void* vrow, const float* inv, void* out) {
    const int hb = g % 3 == 0 ? 3 : (g % 2 == 0 ? 2 : 1);
#define PTST_VALUES(DV, F)                                                        \
    do {                                                                          \
        if (hb == 3) values_block(DV, 3, F, e, n, g, p, m, pv, vrow, inv, out);   \
        else if (hb == 2) values_block(DV, 2, F, e, n, g, p, m, pv, vrow, inv, out); \
        else values_block(DV, 1, F, e, n, g, p, m, pv, vrow, inv, out);           \
    } while (0)
    if (d == 64 && f32) PTST_VALUES(4, 1);
    else if (d == 64) PTST_VALUES(4, 0);
    else if (f32) PTST_VALUES(8, 1);
    else PTST_VALUES(8, 0);
#undef PTST_VALUES
}

/* The prefix's scores for HB query heads (q [g, d]) against 64 of its transposed keys at a time (kt [d, pp], pp a
   multiple of 64, zero past p): HB x 4 accumulators in registers, each key row loaded once for the HB heads */
static inline __attribute__((always_inline)) void prefix_block(const int HB, const float* q, int64_t g, int64_t d,
                                                              const float* kt, int64_t pp, int64_t p, int64_t n,
                                                              const float* m, float scaling, float* sc) {
    for (int64_t t0 = 0; t0 < p; t0 += 64) {
        for (int64_t j0 = 0; j0 < g; j0 += HB) {
            __m512 a[3][4];
            for (int jj = 0; jj < HB; jj++)
                for (int v = 0; v < 4; v++) a[jj][v] = _mm512_setzero_ps();
            for (int64_t i = 0; i < d; i++) {
                __m512 k[4];
                for (int v = 0; v < 4; v++) k[v] = _mm512_loadu_ps(kt + i * pp + t0 + 16 * v);
                for (int jj = 0; jj < HB; jj++) {
                    const __m512 qb = _mm512_set1_ps(q[(j0 + jj) * d + i]);
                    for (int v = 0; v < 4; v++) a[jj][v] = _mm512_fmadd_ps(qb, k[v], a[jj][v]);
                }
            }
            for (int v = 0; v < 4 && t0 + 16 * v < p; v++) { /* scaled, masked, stored: the keys before p only */
                const int64_t left = p - t0 - 16 * v;
                const __mmask16 live = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
                const __m512 mv = _mm512_maskz_loadu_ps(live, m + t0 + 16 * v);
                const __mmask16 off = _mm512_cmp_ps_mask(mv, _mm512_set1_ps(-INFINITY), _CMP_EQ_OQ);
                for (int jj = 0; jj < HB; jj++) {
                    __m512 x = _mm512_fmadd_ps(a[jj][v], _mm512_set1_ps(scaling), mv);
                    x = _mm512_mask_mov_ps(x, off, _mm512_set1_ps(-INFINITY));
                    _mm512_mask_storeu_ps(sc + (j0 + jj) * n + t0 + 16 * v, live, x);
                }
            }
        }
    }
}

/* scores [g, n] of the rotated queries q [g, d]: the prefix's keys transposed (kt [d, pp], `prefix_block`, no
   horizontal sums), the row's own keys (krow [width, d]) one at a time; then softmax's unnormalised weights */
static void attend16(const float* q, int64_t g, int64_t d, const float* kt, int64_t pp, int64_t p, const float* krow,
                     int64_t n, const float* m, float scaling, float* sc, float* inv) {
    const int hb = g % 3 == 0 ? 3 : (g % 2 == 0 ? 2 : 1);
    if (hb == 3) prefix_block(3, q, g, d, kt, pp, p, n, m, scaling, sc);
    else if (hb == 2) prefix_block(2, q, g, d, kt, pp, p, n, m, scaling, sc);
    else prefix_block(1, q, g, d, kt, pp, p, n, m, scaling, sc);
    for (int64_t t = p; t < n; t++) {
        const float* k = krow + (t - p) * d;
        if (t + 8 < n) /* the cache comes from memory: ask for the key 8 columns ahead */
            for (int64_t i = 0; i < d; i += 16) _mm_prefetch((const char*)(k + 8 * d + i), _MM_HINT_T0);
        if (m[t] == -INFINITY) { /* a pad column: never read (whatever it holds) */
            for (int64_t j = 0; j < g; j++) sc[j * n + t] = -INFINITY;
            continue;
        }
        for (int64_t j = 0; j < g; j++) {
            __m512 a = _mm512_mul_ps(_mm512_loadu_ps(q + j * d), _mm512_loadu_ps(k));
            for (int64_t v = 16; v < d; v += 16)
                a = _mm512_fmadd_ps(_mm512_loadu_ps(q + j * d + v), _mm512_loadu_ps(k + v), a);
            sc[j * n + t] = _mm512_reduce_add_ps(a) * scaling + m[t];
        }
    }
    for (int64_t j = 0; j < g; j++) {
        float* sj = sc + j * n;
        __m512 mx = _mm512_set1_ps(-INFINITY);
        int64_t t = 0;
        for (; t + 16 <= n; t += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(sj + t));
        float top = _mm512_reduce_max_ps(mx);
        for (; t < n; t++) top = sj[t] > top ? sj[t] : top;
        const __m512 tv = _mm512_set1_ps(top);
        __m512 sum = _mm512_setzero_ps();
        for (t = 0; t + 16 <= n; t += 16) {
            const __m512 x = _mm512_loadu_ps(sj + t);
            const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-INFINITY), _CMP_NEQ_OQ);
            const __m512 e = _mm512_maskz_mov_ps(live, exp16(_mm512_sub_ps(x, tv)));
            _mm512_storeu_ps(sj + t, e);
            sum = _mm512_add_ps(sum, e);
        }
        float total = _mm512_reduce_add_ps(sum);
        for (; t < n; t++) {
            sj[t] = sj[t] == -INFINITY ? 0.f : exp1(sj[t] - top);
            total += sj[t];
        }
        inv[j] = 1.f / total;
    }
}
#endif

/* the same as attend16 and values16, for any d and any CPU */
static void attend_any(const float* q, int64_t g, int64_t d, const float* pk, int64_t p, const float* krow,
                       const float* pv, const void* vrow, int f32, int64_t n, const float* m, float scaling,
                       float* sc, float* acc, void* out) {
    for (int64_t t = 0; t < n; t++) {
        const float* k = t < p ? pk + t * d : krow + (t - p) * d;
        for (int64_t j = 0; j < g; j++) {
            if (m[t] == -INFINITY) {
                sc[j * n + t] = -INFINITY;
                continue;
            }
            float a = 0.f;
            for (int64_t i = 0; i < d; i++) a += q[j * d + i] * k[i];
            sc[j * n + t] = a * scaling + m[t];
        }
    }
    for (int64_t j = 0; j < g; j++) {
        float* sj = sc + j * n;
        float top = -INFINITY, total = 0.f;
        for (int64_t t = 0; t < n; t++) top = sj[t] > top ? sj[t] : top;
        for (int64_t t = 0; t < n; t++) {
            sj[t] = sj[t] == -INFINITY ? 0.f : exp1(sj[t] - top);
            total += sj[t];
        }
        float* aj = acc + j * d;
        for (int64_t i = 0; i < d; i++) aj[i] = 0.f;
        for (int64_t t = 0; t < n; t++) {
            if (m[t] == -INFINITY) continue;
            if (t < p)
                for (int64_t i = 0; i < d; i++) aj[i] += sj[t] * pv[t * d + i];
            else
                for (int64_t i = 0; i < d; i++) aj[i] += sj[t] * ld(vrow, (t - p) * d + i, f32);
        }
        for (int64_t i = 0; i < d; i++) st(out, j * d + i, aj[i] / total, f32);
    }
}

/* the g query heads of key/value head h in the projection row `row` (bf16, or fp32 with f32), rotated, into q [g, d] */
static void queries(const void* row, int f32, int64_t h, int64_t g, int64_t d, const float* c, const float* s,
                    float* raw, float* q) {
    for (int64_t j = 0; j < g; j++) {
        for (int64_t i = 0; i < d; i++) raw[i] = ld(row, (h * g + j) * d + i, f32);
        rope(raw, c, s, d / 2, q + j * d);
    }
}

/* one token's g query heads (q) attend to key/value head h's prefix and n - p own columns; out o [g, d] (values and
   out bf16, or fp32 with f32) */
static void attend(const float* q, int64_t g, int64_t d, int64_t h, const float* pk, const float* pkt, int64_t pp,
                   const float* pv, int64_t p, const float* krow, const void* vrow, int f32, int64_t n, const float* m,
                   float scaling, float* sc, float* inv, float* acc, void* o) {
    const float* pvh = p ? pv + h * p * d : NULL; /* no prefix: no pointers into it */
#if defined(__AVX512F__)
    if (d == 64 || d == 128) {
        attend16(q, g, d, p ? pkt + h * d * pp : NULL, pp, p, krow, n, m, scaling, sc, inv);
        values16(d, f32, sc, n, g, p, m, pvh, vrow, inv, o);
        return;
    }
#endif
    (void)pkt, (void)pp, (void)inv;
    attend_any(q, g, d, p ? pk + h * p * d : NULL, p, krow, pvh, vrow, f32, n, m, scaling, sc, acc, o);
}

/* One decoding step's attention, a task for each row r and key/value head h: the new key (rotated) and value
   written at column `col` of the row's cache, then the head's g = hq / hkv query heads attend to the shared
   prefix (p keys) and the row's first `width` columns, `mask` [B, >= p + width] (0 or -inf) added to the scores.
   qkv [B, qkv_stride] bf16 (the q heads, the k heads, the v heads); cosv/sinv [B, d] fp32 (sin's first half
   negated); kc [hkv * B, wtot, d] fp32 and vc the same in bf16 (the values are the bf16 projection's output, so
   bf16 holds them exactly, in half the bytes a step reads), head-major; pk/pv [hkv, p, d] fp32 and pkt
   [hkv, d, pp] (pk transposed, pp >= p a multiple of 64, used by the AVX-512 path); out [B, hq * d] bf16. With f32
   (an fp32 model) qkv, vc and out are fp32. */
void ptst_decode_attention(const void* qkv, int64_t qkv_stride, const float* cosv, const float* sinv, float* kc,
                           void* vc, int64_t wtot, int64_t col, int64_t width, const float* pk, const float* pkt,
                           int64_t pp, const float* pv, int64_t p, const float* mask, int64_t mask_stride, int64_t b,
                           int64_t hq, int64_t hkv, int64_t d, float scaling, void* out, int f32) {
    const int64_t g = hq / hkv, half = d / 2, n = p + width, es = f32 ? 4 : 2; /* es: bytes an element */
#pragma omp parallel
    {
        const size_t floats = (size_t)(g * n + 3 * g * d + g);
        float* sc = (float*)malloc(sizeof(float) * floats); /* [g, n] scores, then [g, d] q, acc, raw, [g] inv */
        if (!sc) abort(); /* a few KB a thread: no memory left at all */
        float* q = sc + g * n;
        float* acc = q + g * d;
        float* raw = acc + g * d;
        float* inv = raw + g * d;
#pragma omp for schedule(static)
        for (int64_t task = 0; task < hkv * b; task++) {
            const int64_t h = task / b, r = task % b;
            const char* row = (const char*)qkv + r * qkv_stride * es;
            const float *c = cosv + r * d, *s = sinv + r * d, *m = mask + r * mask_stride;
            float* krow = kc + (h * b + r) * wtot * d;
            char* vrow = (char*)vc + (h * b + r) * wtot * d * es;
            for (int64_t i = 0; i < d; i++) raw[i] = ld(row, (hq + h) * d + i, f32);
            rope(raw, c, s, half, krow + col * d);
            memcpy(vrow + col * d * es, row + (hq + hkv + h) * d * es, es * d);
            queries(row, f32, h, g, d, c, s, raw, q);
            attend(q, g, d, h, pk, pkt, pp, pv, p, krow, vrow, f32, n, m, scaling, sc, inv, acc,
                   (char*)out + (r * hq * d + h * g * d) * es);
        }
        free(sc);
    }
}

/* The prompts' attention in the prefill, a task for each row r and key/value head h: row r's tokens are the packed
   rows starts[r] .. starts[r + 1] - 1 of qkv (bf16 [T, qkv_stride]; cosv/sinv [T, d] their rotary tables), at the
   last n_r of the row's first s cache columns (left padding before them). Their keys (rotated, fp32) and values
   (bf16, exact) are written into the cache, then each token's g query heads attend to the shared prefix and to the
   row's own tokens up to itself; out [T, hq * d] bf16. Cache, prefix, pkt and f32 as in ptst_decode_attention. */
void ptst_prefill_attention(const void* qkv, int64_t qkv_stride, const float* cosv, const float* sinv, float* kc,
                            void* vc, int64_t wtot, const int64_t* starts, int64_t s, const float* pk,
                            const float* pkt, int64_t pp, const float* pv, int64_t p, int64_t b, int64_t hq,
                            int64_t hkv, int64_t d, float scaling, void* out, int f32) {
    const int64_t g = hq / hkv, half = d / 2, n = p + s, es = f32 ? 4 : 2;
#pragma omp parallel
    {
        const size_t floats = (size_t)(g * n + 3 * g * d + g + n);
        float* sc = (float*)malloc(sizeof(float) * floats);
        if (!sc) abort(); /* a few KB a thread: no memory left at all */
        float* q = sc + g * n;
        float* acc = q + g * d;
        float* raw = acc + g * d;
        float* inv = raw + g * d;
        float* zeros = inv + g; /* the mask: every column a token reaches is visible */
        for (int64_t t = 0; t < n; t++) zeros[t] = 0.f;
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < hkv * b; task++) {
            const int64_t h = task / b, r = task % b, first = starts[r], count = starts[r + 1] - starts[r];
            const int64_t lo = s - count;
            float* krow = kc + ((h * b + r) * wtot + lo) * d;
            char* vrow = (char*)vc + ((h * b + r) * wtot + lo) * d * es;
            for (int64_t j = 0; j < count; j++) {
                const char* row = (const char*)qkv + (first + j) * qkv_stride * es;
                for (int64_t i = 0; i < d; i++) raw[i] = ld(row, (hq + h) * d + i, f32);
                rope(raw, cosv + (first + j) * d, sinv + (first + j) * d, half, krow + j * d);
                memcpy(vrow + j * d * es, row + (hq + hkv + h) * d * es, es * d);
            }
            for (int64_t j = 0; j < count; j++) {
                const char* row = (const char*)qkv + (first + j) * qkv_stride * es;
                queries(row, f32, h, g, d, cosv + (first + j) * d, sinv + (first + j) * d, raw, q);
                /* the prefix and the row's tokens up to this one */
                attend(q, g, d, h, pk, pkt, pp, pv, p, krow, vrow, f32, p + j + 1, zeros, scaling, sc, inv, acc,
                       (char*)out + ((first + j) * hq * d + h * g * d) * es);
            }
        }
        free(sc);
    }
}

/* The LM head's bf16 logits [b, v] as fp32 (out), with every token whose logit lies within
   slack (||h_r|| wmax + |top_r|) of its row's maximum top_r computed again in fp32 from the row's fp32 hidden state
   h [b, hd] and the bf16 weights w [v, hd] (plus bias, fp32 [v], or NULL): FastLM._refine's window, so the row's
   argmax is the fp32 argmax of the bf16 weights. A row holding NaN or infinity gets no candidates. */
void ptst_head_refine(const uint16_t* logits, int64_t b, int64_t v, const float* h, int64_t hd, const uint16_t* w,
                      const float* bias, float slack, float wmax, float* out) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < b; r++) {
        const uint16_t* lr = logits + r * v;
        const float* hr = h + r * hd;
        float* o = out + r * v;
        float top = -INFINITY, norm = 0.f;
        int64_t j = 0;
#if defined(__AVX512F__)
        __m512 mx = _mm512_set1_ps(-INFINITY);
        __mmask16 bad = 0;
        for (; j + 16 <= v; j += 16) {
            const __m512 x = load_bf16(lr + j);
            _mm512_storeu_ps(o + j, x);
            bad |= _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
            mx = _mm512_max_ps(mx, x);
        }
        top = bad ? NAN : _mm512_reduce_max_ps(mx);
#endif
        for (; j < v; j++) {
            o[j] = bf2f(lr[j]);
            top = (o[j] != o[j] || top != top) ? NAN : (o[j] > top ? o[j] : top);
        }
        for (int64_t i = 0; i < hd; i++) norm += hr[i] * hr[i];
        const float low = top - slack * (sqrtf(norm) * wmax + fabsf(top));
        if (!isfinite(low)) continue;
        for (j = 0; j < v; j++) {
            if (!(o[j] >= low)) continue;
            const uint16_t* wj = w + j * hd;
            float a = 0.f;
            for (int64_t i = 0; i < hd; i++) a += hr[i] * bf2f(wj[i]);
            o[j] = bias ? a + bias[j] : a;
        }
    }
}

/* x [rows, h] fp32 += delta (bf16 [rows, h], or NULL); out [rows, h] bf16 = w * (x * rsqrt(mean(x^2) + eps)). With
   f32 (an fp32 model) delta and out are fp32, nothing rounded. */
void ptst_add_rms(float* x, const void* delta, const float* w, float eps, int64_t rows, int64_t h, void* out, int f32) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        float* xr = x + r * h;
        if (delta && f32)
            for (int64_t i = 0; i < h; i++) xr[i] += ((const float*)delta)[r * h + i];
        else if (delta)
            for (int64_t i = 0; i < h; i++) xr[i] += bf2f(((const uint16_t*)delta)[r * h + i]);
        float ss = 0.f;
        for (int64_t i = 0; i < h; i++) ss += xr[i] * xr[i];
        const float inv = 1.f / sqrtf(ss / (float)h + eps);
        if (f32)
            for (int64_t i = 0; i < h; i++) ((float*)out)[r * h + i] = w[i] * (xr[i] * inv);
        else
            for (int64_t i = 0; i < h; i++) ((uint16_t*)out)[r * h + i] = f2bf(w[i] * (xr[i] * inv));
    }
}

/* gate_up [rows, 2n] -> out [rows, n] = silu(gate) * up, a row at a time */
static inline __attribute__((always_inline)) void silu_mul(const int F32, const void* gu, int64_t rows, int64_t n,
                                                          void* out) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++)
        silu_span(F32, at(gu, r * 2 * n, F32), at(gu, r * 2 * n + n, F32), n, (void*)at(out, r * n, F32));
}

void ptst_silu_mul(const void* gate_up, int64_t rows, int64_t n, void* out, int f32) {
    if (f32) silu_mul(1, gate_up, rows, n, out);
    else silu_mul(0, gate_up, rows, n, out);
}
