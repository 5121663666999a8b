//! Fast passes over JSON text that serde_json has already validated as
//! syntax: [`measure`] (length without insignificant whitespace, nesting
//! depth, and values that are valid syntax but that readers refuse) and
//! [`minify_into`] (copy without insignificant whitespace).
//!
//! Both jump over string contents with `memchr2` (the next `"` or `\`), so
//! URLs, titles and user agents, most of an event's bytes, cost a SIMD scan
//! rather than a loop per byte. Only text outside strings, which is short,
//! is looked at byte by byte.

use memchr::memchr2;

/// What one pass over validated JSON text finds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Length without insignificant whitespace.
    pub len: usize,
    /// Deepest nesting of arrays and objects.
    pub depth: usize,
    /// The first value that is valid JSON syntax but that readers reject.
    pub problem: Option<String>,
}

/// Index just past the string whose opening quote is at `open`; calls
/// `on_escape` with the index of the character after each backslash.
fn skip_string(b: &[u8], open: usize, mut on_escape: impl FnMut(usize)) -> usize {
    let mut i = open + 1;
    while let Some(off) = b.get(i..).and_then(|rest| memchr2(b'"', b'\\', rest)) {
        let at = i + off;
        if b[at] == b'"' {
            return at + 1;
        }
        on_escape(at + 1);
        i = at + 2;
    }
    b.len()
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

/// Measures validated JSON text in one pass, and finds what JSON syntax
/// allows but readers (serde_json, Spark, DuckDB, pyarrow) refuse: numbers
/// beyond a 64-bit float (`1e999`) and lone UTF-16 surrogates (`"\ud800"`).
/// One such value would make a whole output file unreadable.
pub fn measure(json: &str) -> Scan {
    let b = json.as_bytes();
    let mut scan = Scan::default();
    let (mut depth, mut i, mut low_expected_at) = (0usize, 0, None);
    while i < b.len() {
        match b[i] {
            b'"' => {
                let end = skip_string(b, i, |e| {
                    if b[e] == b'u' && low_expected_at != Some(e) {
                        low_expected_at = check_unicode_escape(b, e, &mut scan);
                    }
                });
                scan.len += end - i;
                i = end;
                continue;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < b.len() && matches!(b[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                check_number(&json[start..i], &mut scan);
                scan.len += i - start;
                continue;
            }
            c if is_space(c) => {
                i += 1;
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                scan.depth = scan.depth.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        scan.len += 1;
        i += 1;
    }
    scan
}

/// Notes `token` if it is a number beyond f64 (only long tokens or ones
/// with an exponent can be, so most numbers are not parsed at all).
fn check_number(token: &str, scan: &mut Scan) {
    if scan.problem.is_some() || (token.len() <= 15 && !token.contains(['e', 'E'])) {
        return;
    }
    if token.parse::<f64>().is_ok_and(|v| !v.is_finite()) {
        let shown: String = token.chars().take(40).collect();
        scan.problem = Some(format!(
            "number {shown} is outside the range of a 64-bit float"
        ));
    }
}

fn hex4(bytes: &[u8], at: usize) -> Option<u16> {
    let digits = std::str::from_utf8(bytes.get(at..at + 4)?).ok()?;
    u16::from_str_radix(digits, 16).ok()
}

/// Checks the `\uXXXX` escape whose `u` is at `u_at`: a high surrogate must
/// be followed at once by a low one, and a low one must not stand alone.
/// Returns where the `u` of the expected low surrogate is.
fn check_unicode_escape(bytes: &[u8], u_at: usize, scan: &mut Scan) -> Option<usize> {
    let code = hex4(bytes, u_at + 1)?;
    let is_low = |c: u16| (0xDC00..=0xDFFF).contains(&c);
    let lone = match code {
        0xD800..=0xDBFF => {
            let next_is_low = bytes.get(u_at + 5..u_at + 7) == Some(b"\\u")
                && hex4(bytes, u_at + 7).is_some_and(is_low);
            if next_is_low {
                return Some(u_at + 6);
            }
            true
        }
        c => is_low(c),
    };
    if lone && scan.problem.is_none() {
        scan.problem = Some(format!("\\u{code:04x} is a lone UTF-16 surrogate"));
    }
    None
}

/// Appends validated JSON text without whitespace outside strings, copying
/// everything between two whitespace runs at once.
pub fn minify_into(json: &str, out: &mut Vec<u8>) {
    let b = json.as_bytes();
    out.reserve(b.len());
    let (mut i, mut run) = (0, 0);
    while i < b.len() {
        match b[i] {
            b'"' => i = skip_string(b, i, |_| {}),
            c if is_space(c) => {
                out.extend_from_slice(&b[run..i]);
                i += 1;
                run = i;
            }
            _ => i += 1,
        }
    }
    out.extend_from_slice(&b[run..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_with_escapes_and_whitespace() {
        let json = r#"{ "a" : "x \" y\\" , "b":[ 1 , 2.5e3 ,"\u00e9 \ud83d\ude00" ] }"#;
        let mut out = Vec::new();
        minify_into(json, &mut out);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            r#"{"a":"x \" y\\","b":[1,2.5e3,"\u00e9 \ud83d\ude00"]}"#
        );
        let scan = measure(json);
        assert_eq!((scan.len, scan.depth, scan.problem), (out.len(), 2, None));
    }
}
