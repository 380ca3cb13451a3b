//! A minimal JSON reader for comparing the canonical JSON of snapshots (`wanco-snap decode`):
//! parse, edit a few fields, and find the first difference between two documents, by path.
//!
//! Numbers are kept as their text (snapshot values are u64 bit patterns that do not fit an
//! f64), and object members keep their order.

use std::fmt::Write as _;

/// A JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as written.
    Number(String),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object: members in document order.
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The member `key` of an object, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        match self {
            Value::Object(m) => m.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Remove the member `key` of an object (no effect on other values).
    pub fn remove(&mut self, key: &str) {
        if let Value::Object(m) = self {
            m.retain(|(k, _)| k != key);
        }
    }

    /// Compact JSON text, cut after about `max` characters (with `…`).
    pub fn compact(&self, max: usize) -> String {
        let mut s = String::new();
        self.write_compact(&mut s, max);
        if s.len() > max {
            let mut cut = max;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push('…');
        }
        s
    }

    fn write_compact(&self, s: &mut String, max: usize) {
        if s.len() > max {
            return;
        }
        match self {
            Value::Null => s.push_str("null"),
            Value::Bool(b) => s.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => s.push_str(n),
            Value::String(t) => {
                let _ = write!(s, "{t:?}");
            }
            Value::Array(a) => {
                s.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    v.write_compact(s, max);
                    if s.len() > max {
                        return;
                    }
                }
                s.push(']');
            }
            Value::Object(m) => {
                s.push('{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    let _ = write!(s, "{k:?}:");
                    v.write_compact(s, max);
                    if s.len() > max {
                        return;
                    }
                }
                s.push('}');
            }
        }
    }
}

/// Parse a JSON document.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut p = Parser {
        b: text.as_bytes(),
        i: 0,
    };
    let v = p.value(0)?;
    p.ws();
    if p.i != p.b.len() {
        return Err(p.err("trailing characters"));
    }
    Ok(v)
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> String {
        format!("JSON: {what} at byte {}", self.i)
    }

    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn literal(&mut self, word: &str, v: Value) -> Result<Value, String> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(self.err("unexpected character"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > 200 {
            return Err(self.err("nested too deeply"));
        }
        self.ws();
        match self.b.get(self.i) {
            None => Err(self.err("unexpected end")),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b'[') => {
                self.i += 1;
                let mut a = Vec::new();
                if self.eat(b']') {
                    return Ok(Value::Array(a));
                }
                loop {
                    a.push(self.value(depth + 1)?);
                    if self.eat(b']') {
                        return Ok(Value::Array(a));
                    }
                    if !self.eat(b',') {
                        return Err(self.err("expected `,` or `]`"));
                    }
                }
            }
            Some(b'{') => {
                self.i += 1;
                let mut m = Vec::new();
                if self.eat(b'}') {
                    return Ok(Value::Object(m));
                }
                loop {
                    self.ws();
                    if self.b.get(self.i) != Some(&b'"') {
                        return Err(self.err("expected a member name"));
                    }
                    let k = self.string()?;
                    if !self.eat(b':') {
                        return Err(self.err("expected `:`"));
                    }
                    m.push((k, self.value(depth + 1)?));
                    if self.eat(b'}') {
                        return Ok(Value::Object(m));
                    }
                    if !self.eat(b',') {
                        return Err(self.err("expected `,` or `}`"));
                    }
                }
            }
            Some(c) if *c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                while self.i < self.b.len()
                    && matches!(
                        self.b[self.i],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.i += 1;
                }
                Ok(Value::Number(
                    String::from_utf8_lossy(&self.b[start..self.i]).into_owned(),
                ))
            }
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self
            .b
            .get(self.i..self.i + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| self.err("bad \\u escape"))?;
        self.i += 4;
        Ok(h)
    }

    fn string(&mut self) -> Result<String, String> {
        self.i += 1; // opening quote
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return Err(self.err("unterminated string"));
            };
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.b.get(self.i) else {
                        return Err(self.err("unterminated escape"));
                    };
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xd800..0xdc00).contains(&hi)
                                && self.b[self.i..].starts_with(b"\\u")
                            {
                                self.i += 2;
                                let lo = self.hex4()?;
                                0x10000 + ((hi - 0xd800) << 10) + (lo.wrapping_sub(0xdc00) & 0x3ff)
                            } else {
                                hi
                            };
                            char::from_u32(code).unwrap_or('\u{fffd}')
                        }
                        _ => return Err(self.err("bad escape")),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                _ => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.err("invalid UTF-8 in string"))
    }
}

/// Where two documents first differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// Path of the differing value, e.g. `frames[3]{func=7}.stack[0].F32` (array elements that
    /// are objects with a `func` or `page` member are annotated with it).
    pub path: String,
    /// The left value (compact, shortened).
    pub left: String,
    /// The right value (compact, shortened).
    pub right: String,
}

/// The first difference between `a` and `b` (depth first, in document order), if any.
pub fn first_difference(a: &Value, b: &Value) -> Option<Difference> {
    let mut path = String::new();
    diff_at(a, b, &mut path)
}

fn diff_at(a: &Value, b: &Value, path: &mut String) -> Option<Difference> {
    if a == b {
        return None;
    }
    let here = |path: &str, left: String, right: String| Difference {
        path: if path.is_empty() {
            "(root)".into()
        } else {
            path.to_string()
        },
        left,
        right,
    };
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            for (i, (u, v)) in x.iter().zip(y.iter()).enumerate() {
                if u != v {
                    let len = path.len();
                    let _ = write!(path, "[{i}]");
                    for key in ["func", "page"] {
                        if let Some(Value::Number(n)) = u.get(key) {
                            let _ = write!(path, "{{{key}={n}}}");
                        }
                    }
                    let d = diff_at(u, v, path);
                    path.truncate(len);
                    return d;
                }
            }
            Some(here(
                path,
                format!("{} elements", x.len()),
                format!("{} elements", y.len()),
            ))
        }
        (Value::Object(x), Value::Object(y)) => {
            for (k, u) in x {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                let d = match b.get(k) {
                    Some(v) => diff_at(u, v, path),
                    None => Some(here(path, u.compact(200), "(missing)".into())),
                };
                path.truncate(len);
                if d.is_some() {
                    return d;
                }
            }
            let extra = y.iter().find(|(k, _)| a.get(k).is_none())?;
            let p = if path.is_empty() {
                extra.0.clone()
            } else {
                format!("{path}.{}", extra.0)
            };
            Some(here(&p, "(missing)".into(), extra.1.compact(200)))
        }
        (Value::String(x), Value::String(y)) if x.len() > 64 || y.len() > 64 => {
            // Long strings (memory contents in hex): show where they start to differ.
            let at = x
                .bytes()
                .zip(y.bytes())
                .position(|(p, q)| p != q)
                .unwrap_or(x.len().min(y.len()));
            let from = at.saturating_sub(8) & !1;
            let window = |s: &str| {
                let end = (from + 40).min(s.len());
                s.get(from..end).unwrap_or("").to_string()
            };
            Some(here(
                &format!(
                    "{path} (character {at}, byte {} if hex; lengths {} and {})",
                    at / 2,
                    x.len(),
                    y.len()
                ),
                format!("…{}…", window(x)),
                format!("…{}…", window(y)),
            ))
        }
        _ => Some(here(path, a.compact(200), b.compact(200))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_compares() {
        let a = parse(
            r#"{"a": [1, {"func": 7, "x": "\u00e9\n"}], "b": null, "c": 18446744073709551615}"#,
        )
        .unwrap();
        assert_eq!(
            a.get("c"),
            Some(&Value::Number("18446744073709551615".into()))
        );
        let b =
            parse(r#"{"a": [1, {"func": 7, "x": "é\n"}], "b": null, "c": 18446744073709551615}"#)
                .unwrap();
        assert_eq!(first_difference(&a, &b), None);
        let c = parse(r#"{"a": [1, {"func": 7, "x": "e"}], "b": null, "c": 1}"#).unwrap();
        let d = first_difference(&a, &c).unwrap();
        assert_eq!(d.path, "a[1]{func=7}.x");
        let mut e = c.clone();
        e.remove("b");
        assert_eq!(first_difference(&c, &e).unwrap().path, "b");
        let long1 = Value::String("0".repeat(100));
        let long2 = Value::String(format!("{}1{}", "0".repeat(50), "0".repeat(49)));
        let d = first_difference(&long1, &long2).unwrap();
        assert!(d.path.contains("character 50, byte 25"), "{d:?}");
        assert!(parse("[1,]").is_err());
        assert!(parse("{} x").is_err());
    }
}
