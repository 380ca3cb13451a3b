//! std collections, strings and formatting: word frequencies over a built-in text.
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;

const TEXT: &str =
    "It was the best of times, it was the worst of times, it was the age of wisdom, \
it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity, \
it was the season of Light, it was the season of Darkness, it was the spring of hope, \
it was the winter of despair, we had everything before us, we had nothing before us, \
we were all going direct to Heaven, we were all going direct the other way. Ünïcödé straße ÉTÉ.";

fn main() {
    // HashMap iteration order is random: always sort before printing.
    let mut freq: HashMap<String, usize> = HashMap::new();
    for w in TEXT
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        *freq.entry(w.to_lowercase()).or_default() += 1;
    }
    let mut by_count: Vec<(&String, &usize)> = freq.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    println!("distinct words: {}", freq.len());
    for (w, c) in by_count.iter().take(8) {
        println!("{w:>12} {c:3} {}", "*".repeat(**c));
    }
    let btree: BTreeMap<usize, Vec<&str>> =
        by_count.iter().fold(BTreeMap::new(), |mut m, (w, c)| {
            m.entry(w.chars().count())
                .or_insert_with(Vec::new)
                .push(w.as_str());
            let _ = c;
            m
        });
    for (len, words) in &btree {
        let mut words = words.clone();
        words.sort_unstable();
        println!("len {len:2}: {}", words.join(","));
    }
    let set: BTreeSet<char> = TEXT
        .chars()
        .filter(|c| c.is_alphabetic())
        .flat_map(|c| c.to_uppercase())
        .collect();
    println!("letters: {}", set.iter().collect::<String>());
    let hs: HashSet<u64> = (0..1000u64).map(|i| i * i % 977).collect();
    println!("distinct squares mod 977: {}", hs.len());

    let mut dq: VecDeque<i32> = (1..=10).collect();
    dq.rotate_left(3);
    dq.push_front(-1);
    dq.push_back(99);
    println!("deque: {:?}", dq);
    let mut heap: BinaryHeap<(u32, &str)> = [(3, "c"), (9, "i"), (1, "a"), (5, "e")]
        .into_iter()
        .collect();
    let mut order = Vec::new();
    while let Some((p, s)) = heap.pop() {
        order.push(format!("{s}{p}"));
    }
    println!("heap order: {}", order.join(" "));

    let mut v: Vec<f64> = (0..20)
        .map(|i| ((i * 7919) % 101) as f64 / 7.0 - 5.0)
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mut s = String::new();
    for x in &v[..6] {
        write!(s, "{x:.3} ").unwrap();
    }
    println!("sorted floats: {s}");
    println!(
        "floats: {} {} {} {:e} {:.0} {:10.4}| {:<8.2}| {:+}",
        0.1 + 0.2,
        1e21,
        1.0f64 / 3.0,
        123456.789,
        2.5,
        std::f64::consts::PI,
        -1.005,
        7.0
    );
    println!(
        "f32: {} {} {}",
        0.1f32 + 0.2f32,
        f32::MAX,
        f32::MIN_POSITIVE
    );
    println!(
        "ints: {:08x} {:#b} {:o} {:>6} {:<6}| {:^7}|",
        3735928559u32, 10, 64, -42, 42, "mid"
    );
    println!(
        "debug: {:?} {:?} {:?}",
        Some("x"),
        (1, 'c', 2.0),
        vec![Some(1), None]
    );
    let rev: String = "héllo wörld".chars().rev().collect();
    println!(
        "reversed: {rev}, upper: {}, bytes: {}",
        "straße".to_uppercase(),
        "héllo".len()
    );
    let parsed: Vec<i64> = "12 -7 300000000000 0x1f"
        .split(' ')
        .map(|t| t.parse::<i64>().unwrap_or(i64::MIN))
        .collect();
    println!("parsed: {:?}", parsed);
    println!(
        "parse float: {:?} {:?}",
        "3.25e2".parse::<f64>(),
        "nanx".parse::<f64>().is_err()
    );
}
