//! std::env: arguments and environment variables.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    println!("{} args (argv[0] not printed)", args.len());
    for (i, a) in args.iter().enumerate().skip(1) {
        println!("arg {i}: {a:?}");
    }
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    println!("{} vars", vars.len());
    for (k, v) in &vars {
        println!("{k}={v:?}");
    }
    println!("GREETING: {:?}", std::env::var("GREETING"));
    println!("MISSING: {:?}", std::env::var("MISSING").is_err());
    let sum: i64 = args
        .iter()
        .skip(1)
        .filter_map(|a| a.parse::<i64>().ok())
        .sum();
    println!("sum of numeric args: {sum}");
}
