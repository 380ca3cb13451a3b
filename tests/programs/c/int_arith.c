// Integer arithmetic: wrap-around, division/remainder signs, shifts, 64-bit,
// bit counting, byte swaps, sign extension, 128-bit (compiler-rt) helpers.
#include <stdint.h>
#include <stdio.h>
#include <inttypes.h>

// volatile sources stop the compiler from folding everything away
static volatile uint32_t vu32[] = {0u, 1u, 2u, 3u, 7u, 0x7fffffffu, 0x80000000u, 0xfffffffeu, 0xffffffffu, 0x12345678u, 0xdeadbeefu};
static volatile uint64_t vu64[] = {0ull, 1ull, 5ull, 0x7fffffffffffffffull, 0x8000000000000000ull, 0xffffffffffffffffull,
                                   0x0123456789abcdefull, 0xfedcba9876543210ull, 1000000007ull, 0x100000000ull};
static volatile int32_t vs32[] = {0, 1, -1, 7, -7, 3, -3, 100, -100, INT32_MAX, INT32_MIN + 1};
static volatile int64_t vs64[] = {0, 1, -1, 7, -7, 13, -13, INT64_MAX, INT64_MIN + 1, 1000000000000LL, -999999999999LL};
#define N(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t h = 1469598103934665603ull; // FNV-1a of everything, printed at the end
static void mix(uint64_t v) { for (int i = 0; i < 8; i++) { h ^= (v >> (i * 8)) & 0xff; h *= 1099511628211ull; } }

int main(void) {
    printf("== u32 wrap\n");
    for (unsigned i = 0; i < N(vu32); i++) {
        uint32_t a = vu32[i];
        uint32_t add = a + 0x80000001u, sub = 3u - a, mul = a * 0x9e3779b9u, neg = -a;
        printf("%08" PRIx32 ": add %08" PRIx32 " sub %08" PRIx32 " mul %08" PRIx32 " neg %08" PRIx32 "\n", a, add, sub, mul, neg);
        mix(add); mix(sub); mix(mul);
    }
    printf("== s32 div/rem\n");
    for (unsigned i = 0; i < N(vs32); i++)
        for (unsigned j = 0; j < N(vs32); j++) {
            int32_t a = vs32[i], b = vs32[j];
            if (b == 0) continue;
            int32_t q = a / b, r = a % b;
            mix((uint32_t)q); mix((uint32_t)r);
            if (j % 4 == 0) printf("%d/%d=%d r%d  ", a, b, q, r);
        }
    printf("\n== u32 div/rem\n");
    for (unsigned i = 0; i < N(vu32); i++) {
        uint32_t a = vu32[i], b = vu32[(i + 3) % N(vu32)];
        if (b == 0) b = 3;
        printf("%" PRIu32 "/%" PRIu32 "=%" PRIu32 " r%" PRIu32 "\n", a, b, a / b, a % b);
    }
    printf("== shifts\n");
    for (unsigned i = 0; i < N(vu32); i++) {
        uint32_t a = vu32[i];
        int32_t s = (int32_t)a;
        for (unsigned k = 0; k < 40; k += 7) {
            unsigned c = k & 31;
            uint32_t shl = a << c, shr = a >> c;
            int32_t sar = s >> c;
            uint32_t rotl = (a << c) | (a >> ((32 - c) & 31));
            mix(shl); mix(shr); mix((uint32_t)sar); mix(rotl);
        }
        printf("%08" PRIx32 ": <<5 %08" PRIx32 " >>5 %08" PRIx32 " sar5 %08" PRIx32 " rotl13 %08" PRIx32 "\n", a, a << 5, a >> 5,
               (uint32_t)(s >> 5), (a << 13) | (a >> 19));
    }
    printf("== u64\n");
    for (unsigned i = 0; i < N(vu64); i++) {
        uint64_t a = vu64[i], b = vu64[(i + 1) % N(vu64)] | 1;
        uint64_t mul = a * 0x9e3779b97f4a7c15ull, q = a / b, r = a % b;
        printf("%016" PRIx64 ": mul %016" PRIx64 " /%" PRIx64 "=%" PRIx64 " r%" PRIx64 " shl37 %016" PRIx64 " shr37 %016" PRIx64 "\n", a, mul,
               b, q, r, a << 37, a >> 37);
        printf("   clz %d ctz %d pop %d bswap %016" PRIx64 "\n", a ? __builtin_clzll(a) : 64, a ? __builtin_ctzll(a) : 64,
               __builtin_popcountll(a), __builtin_bswap64(a));
        mix(mul); mix(q); mix(r);
    }
    printf("== s64 div/rem\n");
    for (unsigned i = 0; i < N(vs64); i++) {
        int64_t a = vs64[i], b = vs64[(i + 5) % N(vs64)];
        if (b == 0) b = -3;
        printf("%" PRId64 " / %" PRId64 " = %" PRId64 " rem %" PRId64 "; sar3 %" PRId64 "\n", a, b, a / b, a % b, a >> 3);
        mix((uint64_t)(a / b));
    }
    printf("== sign extension / truncation\n");
    for (unsigned i = 0; i < N(vu32); i++) {
        uint32_t a = vu32[i];
        printf("%08" PRIx32 ": i8 %d i16 %d u8 %u u16 %u i64 %" PRId64 " u64 %" PRIu64 "\n", a, (int8_t)a, (int16_t)a, (uint8_t)a,
               (uint16_t)a, (int64_t)(int32_t)a, (uint64_t)a);
    }
    printf("== 128-bit\n");
    for (unsigned i = 0; i < N(vu64); i++) {
        unsigned __int128 p = (unsigned __int128)vu64[i] * vu64[(i + 2) % N(vu64)];
        __int128 s = (__int128)(int64_t)vu64[i] * -3;
        printf("hi %016" PRIx64 " lo %016" PRIx64 " s.hi %016" PRIx64 "\n", (uint64_t)(p >> 64), (uint64_t)p, (uint64_t)((unsigned __int128)s >> 64));
    }
    printf("== comparisons\n");
    int lt = 0, ult = 0;
    for (unsigned i = 0; i < N(vs32); i++)
        for (unsigned j = 0; j < N(vs32); j++) {
            lt += vs32[i] < vs32[j];
            ult += (uint32_t)vs32[i] < (uint32_t)vs32[j];
        }
    printf("signed-less %d unsigned-less %d\n", lt, ult);
    printf("checksum %016" PRIx64 "\n", h);
    return 0;
}
