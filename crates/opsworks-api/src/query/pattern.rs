//! botocore's `pattern` traits (Java regular expressions) compiled for the `regex` crate.
//!
//! The two syntaxes agree on what these models use except for two things, rewritten here: Java's
//! `\w`, `\d` and `\s` are ASCII-only where Rust's are Unicode, and Java spells code points
//! `\uHHHH` where the models also write `\u10000`-style five- and six-digit ones. A pattern must
//! match the whole value, as Java's `Matcher.matches` does.

use regex::Regex;

/// Compiles a model pattern, anchored; `None` when it has no Rust equivalent.
pub(crate) fn compile(java: &str) -> Option<Regex> {
    Regex::new(&format!("^(?:{})$", translate(java)?)).ok()
}

fn translate(java: &str) -> Option<String> {
    let chars: Vec<char> = java.chars().collect();
    let mut out = String::with_capacity(java.len() + 16);
    let mut in_class = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let next = *chars.get(i + 1)?;
                let class = match next {
                    'w' => Some("0-9A-Za-z_"),
                    'd' => Some("0-9"),
                    's' => Some(" \\t\\n\\x0B\\f\\r"),
                    _ => None,
                };
                if let Some(class) = class {
                    if in_class {
                        out.push_str(class);
                    } else {
                        out.push('[');
                        out.push_str(class);
                        out.push(']');
                    }
                    i += 2;
                    continue;
                }
                if next == 'u' {
                    let digits: String = chars[i + 2..]
                        .iter()
                        .take(6)
                        .take_while(|c| c.is_ascii_hexdigit())
                        .collect();
                    if digits.len() < 4 {
                        return None;
                    }
                    // Take five or six digits only when they still name a code point.
                    let mut len = digits.len();
                    while len > 4 && u32::from_str_radix(&digits[..len], 16).ok()? > 0x10FFFF {
                        len -= 1;
                    }
                    out.push_str(&format!("\\x{{{}}}", &digits[..len]));
                    i += 2 + len;
                    continue;
                }
                out.push('\\');
                out.push(next);
                i += 2;
                continue;
            }
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_name_pattern_is_ascii_and_anchored() {
        let re = compile(r"[\w+=,.@-]+").unwrap();
        assert!(re.is_match("OpsWorks-stack+1@x.y"));
        assert!(!re.is_match("bad name"));
        assert!(!re.is_match("é"));
        assert!(!re.is_match(""));
    }

    #[test]
    fn code_point_escapes_and_unicode_classes() {
        let path = compile(r"(\u002F)|(\u002F[\u0021-\u007E]+\u002F)").unwrap();
        assert!(path.is_match("/"));
        assert!(path.is_match("/ops/"));
        assert!(!path.is_match("/ops"));
        let doc = compile(r"[\u0009\u000A\u000D\u0020-\u00FF]+").unwrap();
        assert!(doc.is_match("{\"a\": \"é\"}\n"));
        assert!(!doc.is_match("€"));
        let wide = compile(r"[\u0020-\u007E\u10000-\u10FFFF]+").unwrap();
        assert!(wide.is_match("a😀"));
        assert!(!wide.is_match("é"));
        let tag = compile(r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*").unwrap();
        assert!(tag.is_match("équipe 1"));
        assert!(!tag.is_match("a;b"));
        assert!(
            compile(r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$")
                .unwrap()
                .is_match("x")
        );
        assert!(compile(r"\u00").is_none());
    }
}
