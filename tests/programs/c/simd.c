/* 128-bit SIMD with v128 values live across calls, loops and recursion:
 * integer lanes (saturating, shuffles, narrowing, dot products), float
 * lanes (NaN-free arithmetic, conversions) and a v128 kept in memory. */
#include <stdint.h>
#include <stdio.h>
#include <wasm_simd128.h>

static v128_t in_memory; /* a v128 in linear memory, updated every round */

static void show(const char *what, v128_t v) {
    printf("%s %08x %08x %08x %08x\n", what, (uint32_t)wasm_i32x4_extract_lane(v, 0),
           (uint32_t)wasm_i32x4_extract_lane(v, 1), (uint32_t)wasm_i32x4_extract_lane(v, 2),
           (uint32_t)wasm_i32x4_extract_lane(v, 3));
}

__attribute__((noinline)) static v128_t mix(v128_t a, v128_t b, int i) {
    v128_t m = wasm_i32x4_mul(a, wasm_i32x4_splat(i | 1));
    m = wasm_v128_xor(m, wasm_i32x4_shl(b, i & 7));
    m = wasm_i8x16_add_sat(m, wasm_i8x16_swizzle(b, wasm_i8x16_const(3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3)));
    m = wasm_i8x16_shuffle(m, b, 0, 17, 2, 19, 4, 21, 6, 23, 8, 25, 10, 27, 12, 29, 14, 31);
    return wasm_v128_xor(m, wasm_i32x4_dot_i16x8(a, b));
}

/* Recursion with a v128 parameter: every frame holds one. */
__attribute__((noinline)) static v128_t fold(v128_t v, int depth) {
    if (depth == 0) return v;
    v128_t w = wasm_i16x8_add_sat(v, wasm_i16x8_splat((short)depth));
    v128_t r = fold(wasm_i8x16_shuffle(w, w, 1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12), depth - 1);
    return wasm_v128_bitselect(r, v, wasm_i32x4_const(-1, 0, -1, 0));
}

int main(void) {
    v128_t a = wasm_i32x4_make(1, 2, 3, 4);
    v128_t b = wasm_i16x8_splat(7);
    v128_t f = wasm_f32x4_make(0.5f, 1.5f, -2.25f, 3.0f);
    v128_t d = wasm_f64x2_make(1.0, -0.5);
    in_memory = wasm_i64x2_splat(0x0123456789abcdefLL);
    for (int i = 0; i < 3000; i++) {
        a = mix(a, b, i); /* b, f, d live across the call */
        b = wasm_i16x8_add(b, wasm_i16x8_q15mulr_sat(a, b));
        b = wasm_i8x16_narrow_i16x8(b, wasm_i16x8_extmul_low_i8x16(a, b));
        f = wasm_f32x4_add(wasm_f32x4_mul(f, wasm_f32x4_splat(0.999f)),
                           wasm_f32x4_convert_i32x4(wasm_i32x4_shr(a, 26)));
        f = wasm_f32x4_pmin(f, wasm_f32x4_splat(1.0e6f));
        d = wasm_f64x2_add(wasm_f64x2_mul(d, wasm_f64x2_splat(0.5)), wasm_f64x2_promote_low_f32x4(f));
        in_memory = wasm_i64x2_add(in_memory, wasm_u64x2_extend_high_u32x4(a));
        if (i % 500 == 0) {
            show("a", a);
            show("b", b);
            show("f", wasm_i32x4_trunc_sat_f32x4(wasm_f32x4_mul(f, wasm_f32x4_splat(1000.0f))));
            show("d", wasm_i32x4_trunc_sat_f64x2_zero(wasm_f64x2_mul(d, wasm_f64x2_splat(1000.0))));
            show("m", in_memory);
            show("r", fold(a, 40));
            printf("mask %d any %d all %d\n", wasm_i8x16_bitmask(a), wasm_v128_any_true(b), wasm_i32x4_all_true(a));
        }
    }
    show("final a", a);
    show("final b", b);
    show("final m", in_memory);
    return 0;
}
