//! A panic: the message goes to stderr, then abort -> `unreachable` trap.
fn checked(values: &[u32], i: usize) -> u32 {
    if i >= values.len() {
        panic!("index {i} out of range for {} values (boom)", values.len());
    }
    values[i]
}

fn main() {
    let values = vec![1, 2, 3];
    let n = std::env::args().count();
    println!("first value {}", checked(&values, 0));
    println!("panicking now");
    println!("{}", checked(&values, n + 10));
}
