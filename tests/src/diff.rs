//! Readable descriptions of differences between outputs.

const MAX_SHOWN: usize = 300;

/// A line for display: lossy UTF-8, control characters escaped, long lines cut.
pub fn show_line(line: &[u8]) -> String {
    let s = String::from_utf8_lossy(line);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == MAX_SHOWN {
            out.push('…');
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out
}

/// Describe where two byte strings first differ, line by line. Empty when equal.
pub fn first_line_diff(
    expected: &[u8],
    actual: &[u8],
    expected_label: &str,
    actual_label: &str,
) -> String {
    if expected == actual {
        return String::new();
    }
    let e: Vec<&[u8]> = expected.split_inclusive(|&b| b == b'\n').collect();
    let a: Vec<&[u8]> = actual.split_inclusive(|&b| b == b'\n').collect();
    let i = e
        .iter()
        .zip(a.iter())
        .position(|(x, y)| x != y)
        .unwrap_or(e.len().min(a.len()));
    let width = expected_label.len().max(actual_label.len());
    let mut s = format!(
        "first difference at line {} ({expected_label}: {} lines/{} bytes, {actual_label}: {} lines/{} bytes)",
        i + 1,
        e.len(),
        expected.len(),
        a.len(),
        actual.len()
    );
    if i > 0 {
        s.push_str(&format!(
            "\n  {:>width$}  {}",
            "(same)",
            show_line(e[i - 1])
        ));
    }
    let line = |v: &Vec<&[u8]>| {
        v.get(i)
            .map(|l| show_line(l))
            .unwrap_or_else(|| "<end of output>".into())
    };
    s.push_str(&format!("\n  {expected_label:>width$}: {}", line(&e)));
    s.push_str(&format!("\n  {actual_label:>width$}: {}", line(&a)));
    s
}

/// The last lines of an output, for context (e.g. the stderr of a failed run).
pub fn tail(bytes: &[u8], lines: usize) -> String {
    if bytes.is_empty() {
        return "    | (empty)".into();
    }
    let all: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
    let start = all.len().saturating_sub(lines);
    all[start..]
        .iter()
        .map(|l| format!("    | {}", show_line(l.strip_suffix(b"\n").unwrap_or(l))))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_first_differing_line() {
        assert_eq!(first_line_diff(b"a\nb\n", b"a\nb\n", "x", "y"), "");
        let d = first_line_diff(b"a\nb\nc\n", b"a\nB\nc\n", "wasmtime", "aot");
        assert!(d.starts_with("first difference at line 2"), "{d}");
        assert!(
            d.contains("wasmtime: b\\n")
                && d.contains("     aot: B\\n")
                && d.contains("(same)  a\\n"),
            "{d}"
        );
        let d = first_line_diff(b"a\nb\n", b"a\n", "wasmtime", "aot");
        assert!(d.contains("aot: <end of output>"), "{d}");
        assert_eq!(tail(b"1\n2\n3\n", 2), "    | 2\n    | 3");
    }
}
