//! `std::process::exit` after some work: exit -> _Exit -> __wasi_proc_exit,
//! each `call; unreachable` in the Wasm. LLVM infers the callees never
//! return; on aarch64 a caller's `bl` was then its function's last
//! instruction, the return address the next function's first byte, and a
//! checkpoint at the last migration points failed (the C/R matrix case
//! `rust_exit` checkpoints at every point).
fn main() {
    let mut acc: u64 = 1;
    for i in 1..=20u64 {
        acc = acc.wrapping_mul(i).rotate_left(3) ^ i;
    }
    println!("acc {acc:x}");
    std::process::exit(7);
}
