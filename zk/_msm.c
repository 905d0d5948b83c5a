/*
 * Multi-scalar multiplication over fixed BLS12-381 G1 generators, kept affine.
 *
 * Why a few hundred lines of C: py-arkworks converts every generator from
 * projective to affine on each call and walks all 255 scalar bits, while a
 * miner's update needs ~16-bit scalars over the same 37,610 generators every
 * round. Here the generators are converted once (`prepare`), scalars are signed
 * magnitudes of any width, and Pippenger's bucket method runs over only the bits
 * in use, with signed window digits. Each window's buckets are filled by batched
 * affine additions: points are sorted by bucket and summed pairwise, level by
 * level, with one field inversion per batch (about 6 multiplications an
 * addition against 11 for mixed Jacobian additions).
 *
 * Only the arithmetic lives here; zk/pedersen.py owns encodings and checks, and
 * tests compare every result with py-arkworks and py-ecc (byte-identical).
 *
 * Field elements: 6 little-endian 64-bit limbs in Montgomery form (R = 2^384).
 * Jacobian (X, Y, Z) with Z = 0 is the identity.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t u64;
typedef unsigned __int128 u128;
typedef struct {
    u64 l[6];
} fp;
typedef struct {
    fp x, y;
} affine;
typedef struct {
    fp x, y, z;
} jacobian;
/* zk/pedersen.py slices prepared generators at 96 bytes each. */
_Static_assert(sizeof(affine) == 96, "an affine point is 96 bytes");

#define P0 0xb9feffffffffaaabULL
#define P1 0x1eabfffeb153ffffULL
#define P2 0x6730d2a0f6b0f624ULL
#define P3 0x64774b84f38512bfULL
#define P4 0x4b1ba7b6434bacd7ULL
#define P5 0x1a0111ea397fe69aULL
static const u64 P[6] = {P0, P1, P2, P3, P4, P5};
static const u64 PINV = 0x89f3fffcfffcfffdULL; /* -p^-1 mod 2^64 */
static const fp R1 = {{0x760900000002fffdULL, 0xebf4000bc40c0002ULL, 0x5f48985753c758baULL,
                       0x77ce585370525745ULL, 0x5c071a97a256ec6dULL, 0x15f65ec3fa80e493ULL}};
static const fp R2 = {{0xf4df1f341c341746ULL, 0x0a76e6a609d104f1ULL, 0x8de5476c4c95b6d5ULL,
                       0x67eb88a9939d83c0ULL, 0x9a793e85b519952dULL, 0x11988fe592cae3aaULL}};

/* ------------------------------------------------------------------ field */
static int below_p(const u64 *a) {
    for (int i = 5; i >= 0; i--) {
        if (a[i] != P[i]) return a[i] < P[i];
    }
    return 0;
}

/* Carry chains: the x86-64 intrinsics compile to plain adc/sbb chains. */
#if defined(__x86_64__)
#include <x86intrin.h>
typedef unsigned char carry_t;
static inline u64 addc(u64 a, u64 b, carry_t *carry) {
    unsigned long long s;
    *carry = _addcarry_u64(*carry, a, b, &s);
    return s;
}

static inline u64 subb(u64 a, u64 b, carry_t *borrow) {
    unsigned long long d;
    *borrow = _subborrow_u64(*borrow, a, b, &d);
    return d;
}
#else
typedef u64 carry_t;
static inline u64 addc(u64 a, u64 b, carry_t *carry) {
    u128 s = (u128)a + b + *carry;
    *carry = (u64)(s >> 64);
    return (u64)s;
}

static inline u64 subb(u64 a, u64 b, carry_t *borrow) {
    u128 d = (u128)a - b - *borrow;
    *borrow = (u64)(d >> 64) & 1;
    return (u64)d;
}
#endif

/* r = a - p unless that borrows, else a (for a < 2p); branch-free. */
static inline void reduce_once(u64 *r, const u64 *a) {
    u64 d[6];
    carry_t borrow = 0;
    for (int i = 0; i < 6; i++) d[i] = subb(a[i], P[i], &borrow);
    const u64 keep = (u64)0 - borrow; /* all ones where a < p */
    for (int i = 0; i < 6; i++) r[i] = (a[i] & keep) | (d[i] & ~keep);
}

static inline void fp_add(fp *r, const fp *a, const fp *b) {
    u64 s[6];
    carry_t carry = 0;
    for (int i = 0; i < 6; i++) s[i] = addc(a->l[i], b->l[i], &carry);
    /* a, b < p < 2^381: no carry out of six limbs. */
    reduce_once(r->l, s);
}

static inline void fp_sub(fp *r, const fp *a, const fp *b) {
    u64 d[6];
    carry_t borrow = 0, carry = 0;
    for (int i = 0; i < 6; i++) d[i] = subb(a->l[i], b->l[i], &borrow);
    const u64 mask = (u64)0 - borrow; /* add p back where a < b */
    for (int i = 0; i < 6; i++) r->l[i] = addc(d[i], P[i] & mask, &carry);
}

/*
 * Montgomery multiplication a * b / 2^384 mod p, operand scanning: each row
 * adds a * b_i, then m * p, as two independent carry chains (low and high
 * halves of the products), which keeps the multiplier busy. p < 2^381 keeps
 * every partial sum within seven limbs. Inputs and output are below p.
 */
static inline void fp_mul_portable(fp *r, const fp *a, const fp *b) {
    u64 t[7] = {0};
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) {
        u64 lo[6], hi[6];
        carry_t c = 0;
        for (int j = 0; j < 6; j++) {
            u128 prod = (u128)a->l[j] * b->l[i];
            lo[j] = (u64)prod;
            hi[j] = (u64)(prod >> 64);
        }
        for (int j = 0; j < 6; j++) t[j] = addc(t[j], lo[j], &c);
        t[6] = addc(t[6], 0, &c);
        c = 0;
        for (int j = 0; j < 6; j++) t[j + 1] = addc(t[j + 1], hi[j], &c);
        const u64 m = t[0] * PINV;
        for (int j = 0; j < 6; j++) {
            u128 prod = (u128)m * P[j];
            lo[j] = (u64)prod;
            hi[j] = (u64)(prod >> 64);
        }
        c = 0;
        for (int j = 0; j < 6; j++) t[j] = addc(t[j], lo[j], &c);
        t[6] = addc(t[6], 0, &c);
        c = 0;
        for (int j = 0; j < 6; j++) t[j + 1] = addc(t[j + 1], hi[j], &c);
        for (int j = 0; j < 6; j++) t[j] = t[j + 1]; /* t[0] is zero: divide by 2^64 */
        t[6] = 0;
    }
    reduce_once(r->l, t);
}

/* Not at -O0: unoptimised builds cannot find registers for the asm's operands. */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__OPTIMIZE__)
#include <cpuid.h>
#define HAVE_ADX 1
/* p, a zero word (carries into the top limb), -p^-1 mod 2^64. */
static const u64 K[8] = {P0, P1, P2, P3, P4, P5, 0, 0x89f3fffcfffcfffdULL};

/*
 * The same product with BMI2/ADX (mulx, adcx, adox): the low and high halves
 * of each row's products run as two carry chains at once, all in registers.
 * Seven accumulators rotate through the rows instead of shifting: after row i
 * the limb that reached zero becomes the next top one. Generated by unrolling
 * the loop of fp_mul_portable; tests compare the two on every path.
 */
static inline void fp_mul_adx(fp *r, const fp *a, const fp *b) {
    u64 t0, t1, t2, t3, t4, t5, t6, lo, hi;
    __asm__(
        "xorl %k[t0], %k[t0]\n\t"
        "xorl %k[t1], %k[t1]\n\t"
        "xorl %k[t2], %k[t2]\n\t"
        "xorl %k[t3], %k[t3]\n\t"
        "xorl %k[t4], %k[t4]\n\t"
        "xorl %k[t5], %k[t5]\n\t"
        "xorl %k[t6], %k[t6]\n\t"
        "movq 0(%[b]), %%rdx\n\t"
        "xorl %k[lo], %k[lo]\n\t"
        "mulxq 0(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t0]\n\t"
        "adoxq %[hi], %[t1]\n\t"
        "mulxq 8(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t1]\n\t"
        "adoxq %[hi], %[t2]\n\t"
        "mulxq 16(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t2]\n\t"
        "adoxq %[hi], %[t3]\n\t"
        "mulxq 24(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t3]\n\t"
        "adoxq %[hi], %[t4]\n\t"
        "mulxq 32(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t4]\n\t"
        "adoxq %[hi], %[t5]\n\t"
        "mulxq 40(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t5]\n\t"
        "adoxq %[hi], %[t6]\n\t"
        "adcxq 48(%[k]), %[t6]\n\t"
        "movq %[t0], %%rdx\n\t"
        "imulq 56(%[k]), %%rdx\n\t"
        "xorl %k[lo], %k[lo]\n\t"
        "mulxq 0(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t0]\n\t"
        "adoxq %[hi], %[t1]\n\t"
        "mulxq 8(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t1]\n\t"
        "adoxq %[hi], %[t2]\n\t"
        "mulxq 16(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t2]\n\t"
        "adoxq %[hi], %[t3]\n\t"
        "mulxq 24(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t3]\n\t"
        "adoxq %[hi], %[t4]\n\t"
        "mulxq 32(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t4]\n\t"
        "adoxq %[hi], %[t5]\n\t"
        "mulxq 40(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t5]\n\t"
        "adoxq %[hi], %[t6]\n\t"
        "adcxq 48(%[k]), %[t6]\n\t"
        "movq 8(%[b]), %%rdx\n\t"
        "xorl %k[lo], %k[lo]\n\t"
        "mulxq 0(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t1]\n\t"
        "adoxq %[hi], %[t2]\n\t"
        "mulxq 8(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t2]\n\t"
        "adoxq %[hi], %[t3]\n\t"
        "mulxq 16(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t3]\n\t"
        "adoxq %[hi], %[t4]\n\t"
        "mulxq 24(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t4]\n\t"
        "adoxq %[hi], %[t5]\n\t"
        "mulxq 32(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t5]\n\t"
        "adoxq %[hi], %[t6]\n\t"
        "mulxq 40(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t6]\n\t"
        "adoxq %[hi], %[t0]\n\t"
        "adcxq 48(%[k]), %[t0]\n\t"
        "movq %[t1], %%rdx\n\t"
        "imulq 56(%[k]), %%rdx\n\t"
        "xorl %k[lo], %k[lo]\n\t"
        "mulxq 0(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t1]\n\t"
        "adoxq %[hi], %[t2]\n\t"
        "mulxq 8(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t2]\n\t"
        "adoxq %[hi], %[t3]\n\t"
        "mulxq 16(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t3]\n\t"
        "adoxq %[hi], %[t4]\n\t"
        "mulxq 24(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t4]\n\t"
        "adoxq %[hi], %[t5]\n\t"
        "mulxq 32(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t5]\n\t"
        "adoxq %[hi], %[t6]\n\t"
        "mulxq 40(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t6]\n\t"
        "adoxq %[hi], %[t0]\n\t"
        "adcxq 48(%[k]), %[t0]\n\t"
        "movq 16(%[b]), %%rdx\n\t"
        "xorl %k[lo], %k[lo]\n\t"
        "mulxq 0(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t2]\n\t"
        "adoxq %[hi], %[t3]\n\t"
        "mulxq 8(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t3]\n\t"
        "adoxq %[hi], %[t4]\n\t"
        "mulxq 16(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t4]\n\t"
        "adoxq %[hi], %[t5]\n\t"
        "mulxq 24(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t5]\n\t"
        "adoxq %[hi], %[t6]\n\t"
        "mulxq 32(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t6]\n\t"
        "adoxq %[hi], %[t0]\n\t"
        "mulxq 40(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t0]\n\t"
        "adoxq %[hi], %[t1]\n\t"
        "adcxq 48(%[k]), %[t1]\n\t"
        "movq %[t2], %%rdx\n\t"
        "imulq 56(%[k]), %%rdx\n\t"
        "xorl %k[lo], %k[lo]\n\t"
        "mulxq 0(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t2]\n\t"
        "adoxq %[hi], %[t3]\n\t"
        "mulxq 8(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t3]\n\t"
        "adoxq %[hi], %[t4]\n\t"
        "mulxq 16(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t4]\n\t"
        "adoxq %[hi], %[t5]\n\t"
        "mulxq 24(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t5]\n\t"
        "adoxq %[hi], %[t6]\n\t"
        "mulxq 32(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t6]\n\t"
        "adoxq %[hi], %[t0]\n\t"
        "mulxq 40(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t0]\n\t"
        "adoxq %[hi], %[t1]\n\t"
        "adcxq 48(%[k]), %[t1]\n\t"
        "movq 24(%[b]), %%rdx\n\t"
        "xorl %k[lo], %k[lo]\n\t"
        "mulxq 0(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t3]\n\t"
        "adoxq %[hi], %[t4]\n\t"
        "mulxq 8(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t4]\n\t"
        "adoxq %[hi], %[t5]\n\t"
        "mulxq 16(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t5]\n\t"
        "adoxq %[hi], %[t6]\n\t"
        "mulxq 24(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t6]\n\t"
        "adoxq %[hi], %[t0]\n\t"
        "mulxq 32(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t0]\n\t"
        "adoxq %[hi], %[t1]\n\t"
        "mulxq 40(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t1]\n\t"
        "adoxq %[hi], %[t2]\n\t"
        "adcxq 48(%[k]), %[t2]\n\t"
        "movq %[t3], %%rdx\n\t"
        "imulq 56(%[k]), %%rdx\n\t"
        "xorl %k[lo], %k[lo]\n\t"
        "mulxq 0(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t3]\n\t"
        "adoxq %[hi], %[t4]\n\t"
        "mulxq 8(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t4]\n\t"
        "adoxq %[hi], %[t5]\n\t"
        "mulxq 16(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t5]\n\t"
        "adoxq %[hi], %[t6]\n\t"
        "mulxq 24(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t6]\n\t"
        "adoxq %[hi], %[t0]\n\t"
        "mulxq 32(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t0]\n\t"
        "adoxq %[hi], %[t1]\n\t"
        "mulxq 40(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t1]\n\t"
        "adoxq %[hi], %[t2]\n\t"
        "adcxq 48(%[k]), %[t2]\n\t"
        "movq 32(%[b]), %%rdx\n\t"
        "xorl %k[lo], %k[lo]\n\t"
        "mulxq 0(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t4]\n\t"
        "adoxq %[hi], %[t5]\n\t"
        "mulxq 8(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t5]\n\t"
        "adoxq %[hi], %[t6]\n\t"
        "mulxq 16(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t6]\n\t"
        "adoxq %[hi], %[t0]\n\t"
        "mulxq 24(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t0]\n\t"
        "adoxq %[hi], %[t1]\n\t"
        "mulxq 32(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t1]\n\t"
        "adoxq %[hi], %[t2]\n\t"
        "mulxq 40(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t2]\n\t"
        "adoxq %[hi], %[t3]\n\t"
        "adcxq 48(%[k]), %[t3]\n\t"
        "movq %[t4], %%rdx\n\t"
        "imulq 56(%[k]), %%rdx\n\t"
        "xorl %k[lo], %k[lo]\n\t"
        "mulxq 0(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t4]\n\t"
        "adoxq %[hi], %[t5]\n\t"
        "mulxq 8(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t5]\n\t"
        "adoxq %[hi], %[t6]\n\t"
        "mulxq 16(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t6]\n\t"
        "adoxq %[hi], %[t0]\n\t"
        "mulxq 24(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t0]\n\t"
        "adoxq %[hi], %[t1]\n\t"
        "mulxq 32(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t1]\n\t"
        "adoxq %[hi], %[t2]\n\t"
        "mulxq 40(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t2]\n\t"
        "adoxq %[hi], %[t3]\n\t"
        "adcxq 48(%[k]), %[t3]\n\t"
        "movq 40(%[b]), %%rdx\n\t"
        "xorl %k[lo], %k[lo]\n\t"
        "mulxq 0(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t5]\n\t"
        "adoxq %[hi], %[t6]\n\t"
        "mulxq 8(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t6]\n\t"
        "adoxq %[hi], %[t0]\n\t"
        "mulxq 16(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t0]\n\t"
        "adoxq %[hi], %[t1]\n\t"
        "mulxq 24(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t1]\n\t"
        "adoxq %[hi], %[t2]\n\t"
        "mulxq 32(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t2]\n\t"
        "adoxq %[hi], %[t3]\n\t"
        "mulxq 40(%[a]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t3]\n\t"
        "adoxq %[hi], %[t4]\n\t"
        "adcxq 48(%[k]), %[t4]\n\t"
        "movq %[t5], %%rdx\n\t"
        "imulq 56(%[k]), %%rdx\n\t"
        "xorl %k[lo], %k[lo]\n\t"
        "mulxq 0(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t5]\n\t"
        "adoxq %[hi], %[t6]\n\t"
        "mulxq 8(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t6]\n\t"
        "adoxq %[hi], %[t0]\n\t"
        "mulxq 16(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t0]\n\t"
        "adoxq %[hi], %[t1]\n\t"
        "mulxq 24(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t1]\n\t"
        "adoxq %[hi], %[t2]\n\t"
        "mulxq 32(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t2]\n\t"
        "adoxq %[hi], %[t3]\n\t"
        "mulxq 40(%[k]), %[lo], %[hi]\n\t"
        "adcxq %[lo], %[t3]\n\t"
        "adoxq %[hi], %[t4]\n\t"
        "adcxq 48(%[k]), %[t4]\n\t"
        : [t0] "=&r"(t0), [t1] "=&r"(t1), [t2] "=&r"(t2), [t3] "=&r"(t3), [t4] "=&r"(t4),
          [t5] "=&r"(t5), [t6] "=&r"(t6), [lo] "=&r"(lo), [hi] "=&r"(hi)
        : [a] "r"(a->l), [b] "r"(b->l), [k] "r"(K), "m"(*(const u64(*)[6])a->l),
          "m"(*(const u64(*)[6])b->l), "m"(*(const u64(*)[8])K)
        : "rdx", "cc");
    const u64 t[6] = {t6, t0, t1, t2, t3, t4}; /* the rotation after six rows */
    reduce_once(r->l, t);
}

/* Whether this CPU has BMI2 and ADX (CPUID leaf 7: EBX bits 8 and 19). */
static int cpu_has_adx(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
    return (ebx >> 8 & 1) && (ebx >> 19 & 1);
}
#endif

static int use_adx; /* set once when the module loads */

static inline void fp_mul(fp *r, const fp *a, const fp *b) {
#ifdef HAVE_ADX
    if (use_adx) {
        fp_mul_adx(r, a, b);
        return;
    }
#endif
    fp_mul_portable(r, a, b);
}

static inline void fp_sqr(fp *r, const fp *a) { fp_mul(r, a, a); }

static inline int fp_is_zero(const fp *a) {
    return (a->l[0] | a->l[1] | a->l[2] | a->l[3] | a->l[4] | a->l[5]) == 0;
}

static inline int fp_eq(const fp *a, const fp *b) { return memcmp(a, b, sizeof *a) == 0; }

static inline void fp_dbl(fp *r, const fp *a) { fp_add(r, a, a); }

static inline void fp_neg(fp *r, const fp *a) {
    static const fp zero = {{0}};
    fp_sub(r, &zero, a);
}

/* a^(p-2): the inverse of a non-zero a (Fermat's little theorem). */
static void fp_inv(fp *r, const fp *a) {
    u64 e[6];
    memcpy(e, P, sizeof e);
    e[0] -= 2; /* p's lowest limb is above 2: no borrow */
    fp acc = R1;
    for (int i = 5; i >= 0; i--) {
        for (int b = 63; b >= 0; b--) {
            fp_sqr(&acc, &acc);
            if ((e[i] >> b) & 1) fp_mul(&acc, &acc, a);
        }
    }
    *r = acc;
}

static void fp_from_be(fp *r, const unsigned char *in) {
    for (int i = 0; i < 6; i++) {
        u64 limb = 0;
        for (int k = 0; k < 8; k++) limb = (limb << 8) | in[(5 - i) * 8 + k];
        r->l[i] = limb;
    }
}

static void fp_to_be(unsigned char *out, const fp *a) {
    for (int i = 0; i < 6; i++) {
        u64 limb = a->l[i];
        for (int k = 7; k >= 0; k--) {
            out[(5 - i) * 8 + k] = (unsigned char)limb;
            limb >>= 8;
        }
    }
}

/* ------------------------------------------------------------------ group */
static inline int is_identity(const jacobian *p) { return fp_is_zero(&p->z); }

static void jac_from_affine(jacobian *r, const affine *q) {
    r->x = q->x;
    r->y = q->y;
    r->z = R1;
}

/* dbl-2009-l (a = 0). */
static void jac_double(jacobian *r, const jacobian *p) {
    if (is_identity(p)) {
        *r = *p;
        return;
    }
    fp a, b, c, d, e, f, t, x3, y3, z3;
    fp_sqr(&a, &p->x);
    fp_sqr(&b, &p->y);
    fp_sqr(&c, &b);
    fp_add(&t, &p->x, &b);
    fp_sqr(&t, &t);
    fp_sub(&t, &t, &a);
    fp_sub(&t, &t, &c);
    fp_dbl(&d, &t);
    fp_dbl(&e, &a);
    fp_add(&e, &e, &a);
    fp_sqr(&f, &e);
    fp_mul(&z3, &p->y, &p->z);
    fp_dbl(&z3, &z3);
    fp_dbl(&t, &d);
    fp_sub(&x3, &f, &t);
    fp_sub(&t, &d, &x3);
    fp_mul(&y3, &e, &t);
    fp_dbl(&c, &c);
    fp_dbl(&c, &c);
    fp_dbl(&c, &c);
    fp_sub(&y3, &y3, &c);
    r->x = x3;
    r->y = y3;
    r->z = z3;
}

/* add-2007-bl: r = p + q, both Jacobian (r may alias either). */
static void jac_add(jacobian *r, const jacobian *p, const jacobian *q) {
    if (is_identity(p)) {
        *r = *q;
        return;
    }
    if (is_identity(q)) {
        *r = *p;
        return;
    }
    fp z1z1, z2z2, u1, u2, s1, s2, h, i, j, rr, v, t, x3, y3, z3;
    fp_sqr(&z1z1, &p->z);
    fp_sqr(&z2z2, &q->z);
    fp_mul(&u1, &p->x, &z2z2);
    fp_mul(&u2, &q->x, &z1z1);
    fp_mul(&s1, &p->y, &q->z);
    fp_mul(&s1, &s1, &z2z2);
    fp_mul(&s2, &q->y, &p->z);
    fp_mul(&s2, &s2, &z1z1);
    fp_sub(&h, &u2, &u1);
    fp_sub(&rr, &s2, &s1);
    if (fp_is_zero(&h)) {
        if (fp_is_zero(&rr)) {
            jac_double(r, p);
        } else {
            memset(r, 0, sizeof *r);
        }
        return;
    }
    fp_dbl(&i, &h);
    fp_sqr(&i, &i);
    fp_mul(&j, &h, &i);
    fp_dbl(&rr, &rr);
    fp_mul(&v, &u1, &i);
    fp_sqr(&x3, &rr);
    fp_sub(&x3, &x3, &j);
    fp_dbl(&t, &v);
    fp_sub(&x3, &x3, &t);
    fp_sub(&t, &v, &x3);
    fp_mul(&y3, &rr, &t);
    fp_mul(&t, &s1, &j);
    fp_dbl(&t, &t);
    fp_sub(&y3, &y3, &t);
    fp_add(&z3, &p->z, &q->z);
    fp_sqr(&z3, &z3);
    fp_sub(&z3, &z3, &z1z1);
    fp_sub(&z3, &z3, &z2z2);
    fp_mul(&z3, &z3, &h);
    r->x = x3;
    r->y = y3;
    r->z = z3;
}

/* ------------------------------------------------- batched affine sums */
/*
 * A slot holds an affine point or the identity (`zero`): partial sums can meet
 * their negation or themselves only through a discrete-log relation between
 * the generators, but the code stays correct if they do.
 */
typedef struct {
    affine p;
    int zero;
} slot;

#define BATCH 1024

typedef struct {
    slot *dst;
    const slot *a, *b;
} pair_op;

typedef struct {
    pair_op ops[BATCH];
    fp den[BATCH], prefix[BATCH];
    int count;
} batch;

/* a + b into dst the slow way: equal x, or an identity involved. */
static void add_slow(slot *dst, const slot *a, const slot *b) {
    if (a->zero || b->zero) {
        *dst = a->zero ? *b : *a;
        return;
    }
    jacobian ja, jb;
    jac_from_affine(&ja, &a->p);
    jac_from_affine(&jb, &b->p);
    jac_add(&ja, &ja, &jb);
    if (is_identity(&ja)) {
        memset(dst, 0, sizeof *dst);
        dst->zero = 1;
        return;
    }
    fp zinv, zinv2;
    fp_inv(&zinv, &ja.z);
    fp_sqr(&zinv2, &zinv);
    fp_mul(&dst->p.x, &ja.x, &zinv2);
    fp_mul(&dst->p.y, &ja.y, &zinv2);
    fp_mul(&dst->p.y, &dst->p.y, &zinv);
    dst->zero = 0;
}

/* Finish every queued addition with one inversion (Montgomery's trick). */
static void batch_flush(batch *bt) {
    int n = bt->count;
    if (!n) return;
    bt->prefix[0] = bt->den[0];
    for (int k = 1; k < n; k++) fp_mul(&bt->prefix[k], &bt->prefix[k - 1], &bt->den[k]);
    fp inv;
    fp_inv(&inv, &bt->prefix[n - 1]);
    for (int k = n - 1; k >= 0; k--) {
        fp dinv;
        if (k) {
            fp_mul(&dinv, &inv, &bt->prefix[k - 1]);
            fp_mul(&inv, &inv, &bt->den[k]);
        } else {
            dinv = inv;
        }
        const affine *a = &bt->ops[k].a->p, *b = &bt->ops[k].b->p;
        fp lambda, x3, y3, t;
        fp_sub(&t, &b->y, &a->y);
        fp_mul(&lambda, &t, &dinv);
        fp_sqr(&x3, &lambda);
        fp_sub(&x3, &x3, &a->x);
        fp_sub(&x3, &x3, &b->x);
        fp_sub(&t, &a->x, &x3);
        fp_mul(&y3, &lambda, &t);
        fp_sub(&y3, &y3, &a->y);
        slot *dst = bt->ops[k].dst;
        dst->p.x = x3;
        dst->p.y = y3;
        dst->zero = 0;
    }
    bt->count = 0;
}

/*
 * Queue dst = a + b. dst may be a or b, but no queued operation may read a
 * slot another queued operation writes: the caller pairs disjoint slots.
 */
static void batch_add(batch *bt, slot *dst, const slot *a, const slot *b) {
    if (a->zero || b->zero || fp_eq(&a->p.x, &b->p.x)) {
        add_slow(dst, a, b);
        return;
    }
    int k = bt->count;
    bt->ops[k].dst = dst;
    bt->ops[k].a = a;
    bt->ops[k].b = b;
    fp_sub(&bt->den[k], &b->p.x, &a->p.x);
    if (++bt->count == BATCH) batch_flush(bt);
}

/*
 * Sum each bucket's run of slots into its first slot: pairwise, level by
 * level, every level's additions batched across all buckets.
 */
static void sum_runs(batch *bt, slot *slots, const Py_ssize_t *start, Py_ssize_t *len,
                     Py_ssize_t nbuckets) {
    for (;;) {
        int more = 0;
        for (Py_ssize_t b = 0; b < nbuckets; b++) {
            Py_ssize_t m = len[b];
            if (m < 2) continue;
            slot *run = slots + start[b];
            for (Py_ssize_t j = 0; j < m / 2; j++) {
                batch_add(bt, &run[2 * j], &run[2 * j], &run[2 * j + 1]);
            }
            more = 1;
        }
        batch_flush(bt);
        if (!more) return;
        for (Py_ssize_t b = 0; b < nbuckets; b++) {
            Py_ssize_t m = len[b];
            if (m < 2) continue;
            slot *run = slots + start[b];
            for (Py_ssize_t j = 1; j < (m + 1) / 2; j++) run[j] = run[2 * j];
            len[b] = (m + 1) / 2;
        }
    }
}

/* ------------------------------------------------------------- pippenger */
/* `width` (<= 30) bits of a magnitude from bit `start`. */
static u64 window_bits(const u64 *limbs, Py_ssize_t nlimbs, Py_ssize_t start, int width) {
    Py_ssize_t word = start / 64, shift = start % 64;
    if (word >= nlimbs) return 0;
    u64 bits = limbs[word] >> shift;
    if (shift + width > 64 && word + 1 < nlimbs) bits |= limbs[word + 1] << (64 - shift);
    return bits & ((1ULL << width) - 1);
}

static Py_ssize_t bit_length(const u64 *mags, Py_ssize_t n, Py_ssize_t nlimbs) {
    Py_ssize_t best = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        for (Py_ssize_t k = nlimbs - 1; k >= 0; k--) {
            u64 v = mags[i * nlimbs + k];
            if (v) {
                Py_ssize_t bits = 64 * k + (64 - __builtin_clzll(v));
                if (bits > best) best = bits;
                break;
            }
        }
    }
    return best;
}

/*
 * The window width with the fewest field multiplications: about 6 per point
 * and window (batched affine) plus about 27 per bucket (the running sums).
 */
static int choose_width(Py_ssize_t n, Py_ssize_t bits) {
    int best = 2;
    double best_cost = -1;
    for (int c = 2; c <= 20; c++) {
        double windows = (double)((bits + 1 + c - 1) / c); /* +1: the last carry */
        double cost = windows * (6.0 * (double)n + 27.0 * (double)(1 << (c - 1)));
        if (best_cost < 0 || cost < best_cost) {
            best_cost = cost;
            best = c;
        }
    }
    return best;
}

/*
 * out = sum((-1)^negative[i] * mag_i * G_i). Signed window digits d in
 * [-2^(c-1), 2^(c-1)] send G_i, negated as the signs say, to bucket |d| - 1.
 * Returns 0, or -1 when out of memory.
 */
static int msm(jacobian *out, const affine *bases, const u64 *mags, const unsigned char *negative,
               Py_ssize_t n, Py_ssize_t nlimbs) {
    memset(out, 0, sizeof *out);
    Py_ssize_t bits = bit_length(mags, n, nlimbs);
    if (bits == 0) return 0;
    const int c = choose_width(n, bits);
    const Py_ssize_t windows = (bits + 1 + c - 1) / c;
    const Py_ssize_t nbuckets = (Py_ssize_t)1 << (c - 1);
    const int64_t half = (int64_t)1 << (c - 1), full = (int64_t)1 << c;
    int32_t *digits = malloc(sizeof(int32_t) * (size_t)n * (size_t)windows);
    slot *slots = malloc(sizeof(slot) * (size_t)(n ? n : 1));
    Py_ssize_t *start = malloc(sizeof(Py_ssize_t) * (size_t)(nbuckets + 1));
    Py_ssize_t *len = malloc(sizeof(Py_ssize_t) * (size_t)nbuckets);
    batch *bt = malloc(sizeof(batch));
    int rc = -1;
    if (!digits || !slots || !start || !len || !bt) goto done;
    bt->count = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t carry = 0;
        for (Py_ssize_t w = 0; w < windows; w++) {
            int64_t d = (int64_t)window_bits(mags + i * nlimbs, nlimbs, w * c, c) + carry;
            carry = d > half;
            if (carry) d -= full;
            digits[w * n + i] = (int32_t)d;
        }
    }
    for (Py_ssize_t w = windows - 1; w >= 0; w--) {
        for (int k = 0; k < c; k++) jac_double(out, out);
        const int32_t *dw = digits + w * n;
        /* Counting sort of the points into their buckets' runs. */
        memset(len, 0, sizeof(Py_ssize_t) * (size_t)nbuckets);
        for (Py_ssize_t i = 0; i < n; i++) {
            if (dw[i]) len[(dw[i] < 0 ? -dw[i] : dw[i]) - 1]++;
        }
        start[0] = 0;
        for (Py_ssize_t b = 0; b < nbuckets; b++) start[b + 1] = start[b] + len[b];
        memset(len, 0, sizeof(Py_ssize_t) * (size_t)nbuckets);
        for (Py_ssize_t i = 0; i < n; i++) {
            int32_t d = dw[i];
            if (!d) continue;
            Py_ssize_t b = (d < 0 ? -d : d) - 1;
            slot *s = &slots[start[b] + len[b]++];
            s->p = bases[i];
            s->zero = 0;
            if ((d < 0) != (negative[i] != 0)) fp_neg(&s->p.y, &s->p.y);
        }
        sum_runs(bt, slots, start, len, nbuckets);
        /* sum(k * B_k) by running sums, top bucket first. */
        jacobian running, sum, q;
        memset(&running, 0, sizeof running);
        memset(&sum, 0, sizeof sum);
        for (Py_ssize_t b = nbuckets - 1; b >= 0; b--) {
            if (len[b] && !slots[start[b]].zero) {
                jac_from_affine(&q, &slots[start[b]].p);
                jac_add(&running, &running, &q);
            }
            jac_add(&sum, &sum, &running);
        }
        jac_add(out, out, &sum);
    }
    rc = 0;
done:
    free(digits);
    free(slots);
    free(start);
    free(len);
    free(bt);
    return rc;
}

/* ---------------------------------------------------------------- python */
static PyObject *py_prepare(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer xy;
    if (!PyArg_ParseTuple(args, "y*", &xy)) return NULL;
    PyObject *out = NULL;
    if (xy.len % 96) {
        PyErr_SetString(PyExc_ValueError, "generators are 96-byte x || y rows");
        goto done;
    }
    Py_ssize_t n = xy.len / 96;
    out = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(affine));
    if (!out) goto done;
    affine *bases = (affine *)PyBytes_AS_STRING(out);
    const unsigned char *in = xy.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        fp x, y;
        fp_from_be(&x, in + 96 * i);
        fp_from_be(&y, in + 96 * i + 48);
        if (!below_p(x.l) || !below_p(y.l)) {
            Py_CLEAR(out);
            PyErr_SetString(PyExc_ValueError, "a coordinate is not below p");
            goto done;
        }
        fp_mul(&bases[i].x, &x, &R2);
        fp_mul(&bases[i].y, &y, &R2);
    }
done:
    PyBuffer_Release(&xy);
    return out;
}

static PyObject *py_msm(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer bases, mags, negative;
    Py_ssize_t nlimbs;
    if (!PyArg_ParseTuple(args, "y*y*y*n", &bases, &mags, &negative, &nlimbs)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = negative.len;
    if (nlimbs < 1 || nlimbs > 8 || mags.len != n * nlimbs * 8 ||
        bases.len < n * (Py_ssize_t)sizeof(affine)) {
        PyErr_SetString(PyExc_ValueError, "msm: bases, magnitudes and signs disagree in size");
        goto done;
    }
    if ((uintptr_t)bases.buf % 8 || (uintptr_t)mags.buf % 8) {
        PyErr_SetString(PyExc_ValueError, "msm: bases and magnitudes must be 8-byte aligned");
        goto done;
    }
    jacobian total;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = msm(&total, bases.buf, mags.buf, negative.buf, n, nlimbs);
    Py_END_ALLOW_THREADS
    if (rc) {
        PyErr_NoMemory();
        goto done;
    }
    if (is_identity(&total)) {
        result = Py_None;
        Py_INCREF(result);
        goto done;
    }
    fp zinv, zinv2, x, y;
    const fp one = {{1, 0, 0, 0, 0, 0}};
    fp_inv(&zinv, &total.z);
    fp_sqr(&zinv2, &zinv);
    fp_mul(&x, &total.x, &zinv2);
    fp_mul(&y, &total.y, &zinv2);
    fp_mul(&y, &y, &zinv);
    fp_mul(&x, &x, &one); /* out of Montgomery form */
    fp_mul(&y, &y, &one);
    unsigned char raw[96];
    fp_to_be(raw, &x);
    fp_to_be(raw + 48, &y);
    result = PyBytes_FromStringAndSize((const char *)raw, 96);
done:
    PyBuffer_Release(&bases);
    PyBuffer_Release(&mags);
    PyBuffer_Release(&negative);
    return result;
}

/* For tests: which multiplication runs, and switching it (not while another
 * thread is inside msm(); both give the same bytes, but the switch is a plain
 * global). */
static PyObject *py_multiplier(PyObject *self, PyObject *args) {
    (void)self;
    const char *want = NULL;
    if (!PyArg_ParseTuple(args, "|s", &want)) return NULL;
    if (want) {
        if (strcmp(want, "portable") == 0) {
            use_adx = 0;
        } else if (strcmp(want, "adx") == 0) {
#ifdef HAVE_ADX
            use_adx = cpu_has_adx();
#endif
            if (!use_adx) {
                PyErr_SetString(PyExc_ValueError, "this CPU or build has no BMI2/ADX");
                return NULL;
            }
        } else {
            PyErr_SetString(PyExc_ValueError, "multiplier: 'adx' or 'portable'");
            return NULL;
        }
    }
    return PyUnicode_FromString(use_adx ? "adx" : "portable");
}

static PyMethodDef methods[] = {
    {"multiplier", py_multiplier, METH_VARARGS,
     "multiplier([name]) -> str: the field multiplication in use ('adx' or "
     "'portable'), switched first if a name is given (for tests)."},
    {"prepare", py_prepare, METH_VARARGS,
     "prepare(xy) -> bytes: affine generators, 96-byte big-endian x || y rows, "
     "in the form msm() reads."},
    {"msm", py_msm, METH_VARARGS,
     "msm(bases, magnitudes, negative, limbs) -> bytes | None: the sum of "
     "(-1)^negative[i] * magnitude[i] * G_i as 96-byte big-endian x || y, None "
     "for the identity. magnitudes: `limbs` little-endian uint64 words per "
     "scalar; negative: one byte per scalar. bases: prepare()'s output (or a "
     "slice of it) only: nothing here checks that they are curve points."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_msm", "Multi-scalar multiplication over fixed BLS12-381 G1 generators.",
    -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__msm(void) {
#ifdef HAVE_ADX
    use_adx = cpu_has_adx();
#endif
    return PyModule_Create(&module);
}
