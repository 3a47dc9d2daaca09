//! Java `.properties` files, the format of Kafka's `server.properties`: `key=value`,
//! `key: value` or `key value` lines, `#` and `!` comments, backslash line continuations and
//! escapes (`\t`, `\n`, `\uXXXX`, `\=`...). Later keys win, as in `java.util.Properties`.

use std::collections::BTreeMap;

/// Parses the text of a properties file into `key -> value`.
pub fn parse(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        let mut logical = line.trim_start().to_string();
        if logical.is_empty() || logical.starts_with('#') || logical.starts_with('!') {
            continue;
        }
        // A line ending in an odd number of backslashes continues on the next one, whose
        // leading white space is dropped.
        while ends_in_continuation(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let (key, value) = split_key_value(&logical);
        let key = unescape(key).map_err(|e| format!("line {}: {e}", number + 1))?;
        let value = unescape(value).map_err(|e| format!("line {}: {e}", number + 1))?;
        out.insert(key, value);
    }
    Ok(out)
}

fn ends_in_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

/// Splits at the first unescaped `=`, `:` or white space; white space around the separator is
/// not part of the key or the value.
fn split_key_value(line: &str) -> (&str, &str) {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' | b':' | b' ' | b'\t' | b'\x0c' => break,
            _ => i += 1,
        }
    }
    let i = i.min(bytes.len());
    let key = &line[..i];
    let mut rest = line[i..].trim_start_matches([' ', '\t', '\x0c']);
    if let Some(r) = rest.strip_prefix(['=', ':']) {
        rest = r.trim_start_matches([' ', '\t', '\x0c']);
    }
    (key, rest)
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("bad \\u escape `\\u{hex}`"))?;
                out.push(code);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_comments_continuations_and_escapes() {
        let text = "# comment\n! also a comment\n\n  a=1\nb = two words \nc:3\nd 4\n\
                    e=x\\\n    y\\\n  z\nf=C:\\\\dir\\tx\ng\\=h=i\nu=\\u0041\nempty=\na=last\n";
        let p = parse(text).unwrap();
        let get = |k: &str| p.get(k).map(String::as_str);
        assert_eq!(get("a"), Some("last"));
        assert_eq!(get("b"), Some("two words "));
        assert_eq!(get("c"), Some("3"));
        assert_eq!(get("d"), Some("4"));
        assert_eq!(get("e"), Some("xyz"));
        assert_eq!(get("f"), Some("C:\\dir\tx"));
        assert_eq!(get("g=h"), Some("i"));
        assert_eq!(get("u"), Some("A"));
        assert_eq!(get("empty"), Some(""));
        assert!(parse("x=\\u12").is_err());
    }
}
