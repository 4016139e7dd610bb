/*
 * fpsimd.c - floating point and SIMD.
 *
 * Exercises: scalar double/float arithmetic and conversions (SSE/SSE2 scalar
 * on x86_64, FP/ASIMD registers on aarch64), libm (sqrt, sin, cos, exp, log,
 * pow, atan2, floor, ceil, fmod, lrint), printf("%.6f") and strtod, and
 * 128-bit vector intrinsics: SSE2 (<emmintrin.h>) on x86_64 and NEON
 * (<arm_neon.h>) on aarch64.  Both SIMD paths (and the scalar fallback used
 * on other architectures) compute the same values, so stdout is identical on
 * every architecture and toolchain.  The only arch-specific text ("simd path:
 * sse2|neon|scalar") goes to stderr.  Link with -lm.
 *
 * Usage:  fpsimd            (no arguments, no input)
 * Exit status: 0 (1 if a self-check fails; details on stderr).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(__x86_64__)
#include <emmintrin.h>
#define SIMD_PATH "sse2"
#elif defined(__aarch64__)
#include <arm_neon.h>
#define SIMD_PATH "neon"
#else
#define SIMD_PATH "scalar"
#endif

/* volatile inputs keep the compiler from constant-folding everything away. */
static volatile double vin[8] = {2.0, 0.5, 1.0, 3.0, 10.0, -7.25, 1e-3, 12345.678};
static volatile float fin[4] = {1.5f, -2.25f, 3.0f, 0.1f};

static void scalar_part(void)
{
    double a = vin[0], b = vin[1], c = vin[2], d = vin[3];
    float f = fin[0], g = fin[3];
    double acc = 0.0;
    int i;

    printf("sqrt(2)    = %.6f\n", sqrt(a));
    printf("sin(1)     = %.6f\n", sin(c));
    printf("cos(0.5)   = %.6f\n", cos(b));
    printf("exp(3)     = %.6f\n", exp(d));
    printf("log(10)    = %.6f\n", log(vin[4]));
    printf("pow(2,0.5) = %.6f\n", pow(a, b));
    printf("atan2      = %.6f\n", atan2(c, vin[5]));
    printf("floor/ceil = %.1f %.1f\n", floor(vin[5]), ceil(vin[5]));
    printf("fmod       = %.6f\n", fmod(vin[7], d));
    printf("lrint      = %ld %ld\n", lrint(2.5), lrint(vin[5]));
    printf("div        = %.6f\n", c / d);
    printf("float      = %.6f %.6f\n", (double)(f / 3.0f), (double)(g * 7.0f));
    printf("small      = %.3e\n", vin[6] * vin[6]);
    printf("big        = %.6f\n", vin[7] * 1e6);
    printf("to int     = %d %lld\n", (int)vin[5], (long long)(vin[7] * 1e9));
    printf("from int   = %.1f\n", (double)(int64_t)0x7ffffffffffLL);
    printf("strtod     = %.6f\n", strtod("3.14159265", NULL));
    printf("inf/nan    = %d %d\n", isinf(c / (vin[2] - 1.0)) != 0,
           isnan((vin[2] - 1.0) / (vin[2] - 1.0)) != 0);
    for (i = 1; i <= 1000; i++)
        acc += sqrt((double)i);
    printf("sum sqrt   = %.6f\n", acc);
}

struct simd_out {
    double d[2];   /* sqrt(a*b + c) per lane, then max with 1.5 */
    float f[4];    /* (x + y) * y, min with 5 */
    int32_t i[4];  /* (p + q) << 3 compare > 100 mask counting */
    int16_t s[8];  /* p16 * q16 (low 16 bits) */
    uint8_t u[16]; /* saturating unsigned add */
    int32_t cvt[2];/* truncating double -> int32 */
};

static void simd_compute(struct simd_out *o)
{
    double a0 = vin[0], a1 = vin[3], b0 = vin[4], b1 = vin[1], c0 = vin[2], c1 = vin[6];
    int32_t p[4] = {1, -20, 300, 40000}, q[4] = {7, 8, -9, 10};
    int16_t p16[8] = {1, 2, 300, -400, 5000, 6, 7, -8};
    int16_t q16[8] = {3, -4, 500, 600, 7, 8000, 9, 10};
    uint8_t ua[16], ub[16];
    int k;

    for (k = 0; k < 16; k++) {
        ua[k] = (uint8_t)(k * 17);
        ub[k] = (uint8_t)(200 - k * 3);
    }
#if defined(__x86_64__)
    {
        __m128d a = _mm_set_pd(a1, a0), b = _mm_set_pd(b1, b0), c = _mm_set_pd(c1, c0);
        __m128d r = _mm_sqrt_pd(_mm_add_pd(_mm_mul_pd(a, b), c));
        __m128 x = _mm_set_ps(fin[3], fin[2], fin[1], fin[0]);
        __m128 y = _mm_set_ps(fin[0], fin[1], fin[2], fin[3]);
        __m128 fr = _mm_min_ps(_mm_mul_ps(_mm_add_ps(x, y), y), _mm_set1_ps(5.0f));
        __m128i vp = _mm_loadu_si128((const __m128i *)p), vq = _mm_loadu_si128((const __m128i *)q);
        __m128i ir = _mm_slli_epi32(_mm_add_epi32(vp, vq), 3);
        __m128i mask = _mm_cmpgt_epi32(ir, _mm_set1_epi32(100));
        __m128i sr = _mm_mullo_epi16(_mm_loadu_si128((const __m128i *)p16),
                                     _mm_loadu_si128((const __m128i *)q16));
        __m128i ur = _mm_adds_epu8(_mm_loadu_si128((const __m128i *)ua),
                                   _mm_loadu_si128((const __m128i *)ub));
        __m128i cv;
        int32_t cvt4[4];
        r = _mm_max_pd(r, _mm_set1_pd(1.5));
        _mm_storeu_pd(o->d, r);
        _mm_storeu_ps(o->f, fr);
        /* i = ir with lanes <= 100 zeroed */
        _mm_storeu_si128((__m128i *)o->i, _mm_and_si128(ir, mask));
        _mm_storeu_si128((__m128i *)o->s, sr);
        _mm_storeu_si128((__m128i *)o->u, ur);
        cv = _mm_cvttpd_epi32(_mm_set_pd(vin[7], vin[5]));
        _mm_storeu_si128((__m128i *)cvt4, cv);
        o->cvt[0] = cvt4[0];
        o->cvt[1] = cvt4[1];
    }
#elif defined(__aarch64__)
    {
        float64x2_t a = {a0, a1}, b = {b0, b1}, c = {c0, c1};
        /* vmulq + vaddq (not vfmaq) so rounding matches SSE2 exactly */
        float64x2_t r = vsqrtq_f64(vaddq_f64(vmulq_f64(a, b), c));
        float32x4_t x = {fin[0], fin[1], fin[2], fin[3]};
        float32x4_t y = {fin[3], fin[2], fin[1], fin[0]};
        float32x4_t fr = vminq_f32(vmulq_f32(vaddq_f32(x, y), y), vdupq_n_f32(5.0f));
        int32x4_t ir = vshlq_n_s32(vaddq_s32(vld1q_s32(p), vld1q_s32(q)), 3);
        uint32x4_t mask = vcgtq_s32(ir, vdupq_n_s32(100));
        int16x8_t sr = vmulq_s16(vld1q_s16(p16), vld1q_s16(q16));
        uint8x16_t ur = vqaddq_u8(vld1q_u8(ua), vld1q_u8(ub));
        float64x2_t cvin = {vin[5], vin[7]};
        int64x2_t cv = vcvtq_s64_f64(cvin);
        r = vmaxq_f64(r, vdupq_n_f64(1.5));
        vst1q_f64(o->d, r);
        vst1q_f32(o->f, fr);
        vst1q_s32(o->i, vandq_s32(ir, vreinterpretq_s32_u32(mask)));
        vst1q_s16(o->s, sr);
        vst1q_u8(o->u, ur);
        o->cvt[0] = (int32_t)vgetq_lane_s64(cv, 0);
        o->cvt[1] = (int32_t)vgetq_lane_s64(cv, 1);
    }
#else
    {
        double a[2] = {a0, a1}, b[2] = {b0, b1}, c[2] = {c0, c1};
        float x[4] = {fin[0], fin[1], fin[2], fin[3]};
        float y[4] = {fin[3], fin[2], fin[1], fin[0]};
        for (k = 0; k < 2; k++) {
            volatile double m = a[k] * b[k];
            double r = sqrt(m + c[k]);
            o->d[k] = r > 1.5 ? r : 1.5;
        }
        for (k = 0; k < 4; k++) {
            float r = (x[k] + y[k]) * y[k];
            int32_t v = (int32_t)((uint32_t)(p[k] + q[k]) << 3);
            o->f[k] = r < 5.0f ? r : 5.0f;
            o->i[k] = v > 100 ? v : 0;
        }
        for (k = 0; k < 8; k++)
            o->s[k] = (int16_t)(p16[k] * q16[k]);
        for (k = 0; k < 16; k++)
            o->u[k] = (uint8_t)(ua[k] + ub[k] > 255 ? 255 : ua[k] + ub[k]);
        o->cvt[0] = (int32_t)vin[5];
        o->cvt[1] = (int32_t)vin[7];
    }
#endif
}

int main(void)
{
    struct simd_out o;
    uint32_t usum = 0;
    int k;

    fprintf(stderr, "simd path: %s\n", SIMD_PATH);
    scalar_part();

    simd_compute(&o);
    printf("simd d     = %.6f %.6f\n", o.d[0], o.d[1]);
    printf("simd f     = %.6f %.6f %.6f %.6f\n", (double)o.f[0], (double)o.f[1],
           (double)o.f[2], (double)o.f[3]);
    printf("simd i     = %d %d %d %d\n", o.i[0], o.i[1], o.i[2], o.i[3]);
    printf("simd s     =");
    for (k = 0; k < 8; k++)
        printf(" %d", o.s[k]);
    printf("\n");
    for (k = 0; k < 16; k++)
        usum = usum * 31u + o.u[k];
    printf("simd u     = %u %u %08x\n", o.u[0], o.u[15], (unsigned)usum);
    printf("simd cvt   = %d %d\n", o.cvt[0], o.cvt[1]);

    if (o.d[0] < 1.5 || o.u[15] != 255) {
        fprintf(stderr, "fpsimd: self-check failed\n");
        return 1;
    }
    return 0;
}
