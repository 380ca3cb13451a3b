//! f32/f64 math, NaN bit patterns, saturating casts, integer helpers.
use std::hint::black_box;

fn bits64(x: f64) -> String {
    // Sign of a NaN produced by arithmetic is nondeterministic in Wasm (x86 and aarch64 differ).
    if x.is_nan() {
        format!("nan {:016x}", x.to_bits() & 0x7fff_ffff_ffff_ffff)
    } else {
        format!("{x:e} {:016x}", x.to_bits())
    }
}
fn bits32(x: f32) -> String {
    if x.is_nan() {
        format!("nan {:08x}", x.to_bits() & 0x7fff_ffff)
    } else {
        format!("{x:e} {:08x}", x.to_bits())
    }
}

fn main() {
    let vals = [
        0.0f64,
        -0.0,
        1.0,
        2.0,
        0.5,
        10.0,
        1e-310,
        1e308,
        -3.75,
        f64::INFINITY,
    ];

    for &v in &vals {
        let v = black_box(v);
        println!(
            "x={v:e}: sqrt {} powi3 {} powf0.3 {} exp {} ln {} sin {} mul_add {}",
            bits64(v.sqrt()),
            bits64(v.powi(3)),
            bits64(v.abs().powf(0.3)),
            bits64(v.exp()),
            bits64(v.ln()),
            bits64(v.sin()),
            bits64(v.mul_add(3.0, -1.0))
        );
    }
    let fvals = [0.0f32, -1.5, 2.0, 16777216.0, 3.4e38, 1e-40];
    for &v in &fvals {
        let v = black_box(v);
        println!(
            "f32 {v:e}: sqrt {} powi2 {} recip {} round {} floor {} ceil {} trunc {}",
            bits32(v.sqrt()),
            bits32(v.powi(2)),
            bits32(v.recip()),
            v.round(),
            v.floor(),
            v.ceil(),
            v.trunc()
        );
    }
    let z = black_box(0.0f64);
    println!("0/0: {}", bits64(z / z));
    println!(
        "inf-inf: {}",
        bits64(f64::INFINITY - black_box(f64::INFINITY))
    );
    println!("sqrt(-1): {}", bits64(black_box(-1.0f64).sqrt()));
    println!("f32 0/0: {}", bits32(black_box(0.0f32) / black_box(0.0f32)));
    println!(
        "NAN const bits: {:016x} {:08x}",
        f64::NAN.to_bits(),
        f32::NAN.to_bits()
    );
    println!(
        "min/max: {} {} {} {}",
        black_box(-0.0f64).min(0.0),
        black_box(1.0f64).max(f64::NAN),
        f64::NAN.min(black_box(2.0)),
        black_box(-0.0f32).max(0.0)
    );
    println!(
        "copysign {} signum {} {} abs {}",
        black_box(3.0f64).copysign(-0.0),
        black_box(-0.0f64).signum(),
        black_box(f64::NAN).signum().is_nan(),
        black_box(-0.0f64).abs()
    );
    println!(
        "round-half: {} {} {} {} round_ties_even {}",
        black_box(0.5f64).round(),
        black_box(1.5f64).round(),
        black_box(2.5f64).round(),
        black_box(-2.5f64).round(),
        black_box(2.5f64).round_ties_even()
    );
    // saturating float->int casts (nontrapping-fptoint)
    let casts = [
        f64::NAN,
        f64::INFINITY,
        -f64::INFINITY,
        3e9,
        -3e9,
        2.9,
        -2.9,
        1e20,
        -0.0,
    ];
    for &c in &casts {
        let c = black_box(c);
        println!(
            "cast {c}: i32 {} u32 {} i64 {} u64 {} u8 {} i16 {}",
            c as i32, c as u32, c as i64, c as u64, c as u8, c as i16
        );
    }
    println!(
        "int->float: {} {} {} {}",
        u64::MAX as f64,
        i64::MIN as f32,
        (1u64 << 53) as f64 + 1.0,
        16777217i32 as f32
    );
    let a = black_box(i64::MAX);
    println!(
        "wrapping {} checked {:?} saturating {} overflowing {:?}",
        a.wrapping_add(2),
        a.checked_mul(2),
        a.saturating_add(5),
        a.overflowing_sub(-1)
    );
    println!(
        "i32: {} {} {:?} {}",
        black_box(-7i32).rem_euclid(3),
        black_box(-7i32) % 3,
        black_box(i32::MIN).checked_div(-1),
        black_box(i32::MIN).wrapping_div(-1)
    );
    let x = black_box(0x0123_4567_89ab_cdefu64);
    println!(
        "bits: lz {} tz {} ones {} rotl {:016x} swap {:016x} rev {:016x}",
        x.leading_zeros(),
        x.trailing_zeros(),
        x.count_ones(),
        x.rotate_left(12),
        x.swap_bytes(),
        x.reverse_bits()
    );
    let big = black_box(0xfedc_ba98_7654_3210_0123_4567_89ab_cdefu128);
    println!(
        "u128: {} {:x} {:x}",
        big % 1_000_000_007,
        big.wrapping_mul(big),
        big / 3
    );
    let mut acc = 0.0f64;
    for i in 1..=100_000 {
        acc += 1.0 / (i as f64 * i as f64);
    }
    println!("basel sum: {acc:.15} bits {:016x}", acc.to_bits());
    let mut accf = 0.0f32;
    for i in 1..=10_000 {
        accf += (i as f32).sqrt() * 0.001;
    }
    println!("f32 accum: {accf} bits {:08x}", accf.to_bits());
}
