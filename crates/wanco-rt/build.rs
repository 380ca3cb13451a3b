fn main() {
    // setjmp/longjmp cannot be written in Rust: the tiny C shim catches traps.
    cc::Build::new().file("c/trap.c").flag_if_supported("-fno-omit-frame-pointer").compile("wanco_trap_shim");
    println!("cargo:rerun-if-changed=c/trap.c");
}
