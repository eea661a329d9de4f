//! Wildcard patterns as IAM reads them (`*` any run of characters, `?` exactly one), compiled once
//! into literal pieces and matched without regular expressions or allocation.
//!
//! A pattern is `S0 * S1 * … * Sn` where each segment has a fixed length in characters, so taking
//! the leftmost match of every middle segment is optimal and matching is linear-ish, with no
//! backtracking. Case is the caller's business: actions are lowercased on both sides first.

/// One piece of a segment: literal text or a run of `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    Lit(String),
    AnyChars(usize),
}

/// Text between two `*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Segment {
    pieces: Vec<Piece>,
    /// Length in characters.
    chars: usize,
}

impl Segment {
    fn push_literal(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        self.chars += s.chars().count();
        match self.pieces.last_mut() {
            Some(Piece::Lit(lit)) => lit.push_str(s),
            _ => self.pieces.push(Piece::Lit(s.to_owned())),
        }
    }

    fn push_any(&mut self) {
        self.chars += 1;
        match self.pieces.last_mut() {
            Some(Piece::AnyChars(n)) => *n += 1,
            _ => self.pieces.push(Piece::AnyChars(1)),
        }
    }

    /// The literal text when the segment has no `?`.
    fn as_literal(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [] => Some(""),
            [Piece::Lit(s)] => Some(s),
            _ => None,
        }
    }

    /// Matches the segment at byte `pos` of `text`; the end on success.
    fn match_at(&self, text: &str, mut pos: usize) -> Option<usize> {
        for piece in &self.pieces {
            match piece {
                Piece::Lit(lit) => {
                    if !text[pos..].starts_with(lit.as_str()) {
                        return None;
                    }
                    pos += lit.len();
                }
                Piece::AnyChars(n) => {
                    for _ in 0..*n {
                        pos += text[pos..].chars().next()?.len_utf8();
                    }
                }
            }
        }
        Some(pos)
    }

    /// The leftmost match starting at or after byte `from`: its end.
    fn find_from(&self, text: &str, from: usize) -> Option<usize> {
        if let Some(lit) = self.as_literal() {
            return text[from..].find(lit).map(|i| from + i + lit.len());
        }
        let mut start = from;
        loop {
            if let Some(end) = self.match_at(text, start) {
                return Some(end);
            }
            start += text[start..].chars().next()?.len_utf8();
        }
    }
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wildcard {
    /// `*`: everything.
    Any,
    /// No wildcard at all.
    Exact(String),
    /// `abc*`.
    Prefix(String),
    /// `*abc`.
    Suffix(String),
    /// Anything else. `first` is anchored at the start; `last` (when there is a `*`) at the end.
    General {
        first: Segment,
        middle: Vec<Segment>,
        last: Option<Segment>,
    },
}

/// Builds a [`Wildcard`] from pieces, so text coming from policy variables stays literal.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    done: Vec<Segment>,
    current: Segment,
}

impl Builder {
    /// Appends text whose `*` and `?` are wildcards.
    pub(crate) fn pattern(&mut self, s: &str) {
        let mut rest = s;
        while let Some(i) = rest.find(['*', '?']) {
            self.current.push_literal(&rest[..i]);
            if rest.as_bytes()[i] == b'*' {
                self.star();
            } else {
                self.current.push_any();
            }
            rest = &rest[i + 1..];
        }
        self.current.push_literal(rest);
    }

    /// Appends text taken literally.
    pub(crate) fn literal(&mut self, s: &str) {
        self.current.push_literal(s);
    }

    fn star(&mut self) {
        let segment = std::mem::take(&mut self.current);
        // `a**b` is `a*b`: an empty segment between two stars adds nothing.
        if !segment.pieces.is_empty() || self.done.is_empty() {
            self.done.push(segment);
        }
    }

    pub(crate) fn build(mut self) -> Wildcard {
        if self.done.is_empty() {
            return match self.current.as_literal() {
                Some(lit) => Wildcard::Exact(lit.to_owned()),
                None => Wildcard::General {
                    first: self.current,
                    middle: Vec::new(),
                    last: None,
                },
            };
        }
        let last = self.current;
        let first = self.done.remove(0);
        let middle = self.done;
        let empty = |s: &Segment| s.pieces.is_empty();
        if middle.is_empty() {
            match (first.as_literal(), last.as_literal()) {
                (Some(""), Some("")) => return Wildcard::Any,
                (Some(p), Some("")) => return Wildcard::Prefix(p.to_owned()),
                (Some(""), Some(s)) => return Wildcard::Suffix(s.to_owned()),
                _ => {}
            }
        }
        Wildcard::General {
            middle: middle.into_iter().filter(|s| !empty(s)).collect(),
            first,
            last: Some(last),
        }
    }
}

impl Wildcard {
    /// Compiles a pattern written with `*` and `?`.
    pub(crate) fn new(pattern: &str) -> Wildcard {
        let mut builder = Builder::default();
        builder.pattern(pattern);
        builder.build()
    }

    /// Whether `text` matches the whole pattern.
    pub(crate) fn matches(&self, text: &str) -> bool {
        match self {
            Wildcard::Any => true,
            Wildcard::Exact(s) => text == s,
            Wildcard::Prefix(p) => text.starts_with(p.as_str()),
            Wildcard::Suffix(s) => text.ends_with(s.as_str()),
            Wildcard::General {
                first,
                middle,
                last,
            } => {
                let Some(mut pos) = first.match_at(text, 0) else {
                    return false;
                };
                let Some(last) = last else {
                    return pos == text.len();
                };
                for segment in middle {
                    match segment.find_from(text, pos) {
                        Some(end) => pos = end,
                        None => return false,
                    }
                }
                // The last segment sits at the very end: find where its characters begin.
                let Some(start) = nth_char_from_end(text, last.chars) else {
                    return false;
                };
                start >= pos && last.match_at(text, start) == Some(text.len())
            }
        }
    }
}

/// The byte index where the last `n` characters of `text` begin.
fn nth_char_from_end(text: &str, n: usize) -> Option<usize> {
    if n == 0 {
        return Some(text.len());
    }
    text.char_indices().rev().nth(n - 1).map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything:at/all", true),
            ("**", "x", true),
            ("abc", "abc", true),
            ("abc", "abcd", false),
            ("", "", true),
            ("", "a", false),
            ("ab*", "ab", true),
            ("ab*", "abzzz", true),
            ("ab*", "a", false),
            ("*ab", "zzab", true),
            ("*ab", "zzabz", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXcYb", false),
            ("a*b*c", "abcbc", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a?c", "aéc", true),
            ("?", "é", true),
            ("??", "é", false),
            ("*?", "", false),
            ("*?", "é", true),
            ("a*?b", "ab", false),
            ("a*?b", "axb", true),
            ("*a*", "bab", true),
            ("*a*", "bbb", false),
            ("a**b", "ab", true),
            ("a*b", "ab", true),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            (
                "arn:aws:opsworks:*:*:stack/*/",
                "arn:aws:opsworks:us-east-1:1:stack/x/",
                true,
            ),
            (
                "arn:aws:opsworks:*:*:stack/*/",
                "arn:aws:opsworks:us-east-1:1:layer/x",
                false,
            ),
            ("*?*?*", "ab", true),
            ("*?*?*", "a", false),
            ("é*é", "éé", true),
            ("é*é", "é", false),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(
                Wildcard::new(pattern).matches(text),
                *want,
                "{pattern:?} against {text:?}"
            );
        }
    }

    #[test]
    fn fast_paths_are_chosen() {
        assert_eq!(Wildcard::new("*"), Wildcard::Any);
        assert_eq!(Wildcard::new("abc"), Wildcard::Exact("abc".into()));
        assert_eq!(Wildcard::new("ab*"), Wildcard::Prefix("ab".into()));
        assert_eq!(Wildcard::new("*ab"), Wildcard::Suffix("ab".into()));
    }

    #[test]
    fn literal_text_keeps_its_stars() {
        let mut b = Builder::default();
        b.pattern("home/");
        b.literal("a*b");
        b.pattern("/*");
        let w = b.build();
        assert!(w.matches("home/a*b/x"));
        assert!(!w.matches("home/aXb/x"));
    }

    /// The obvious recursive matcher over characters, as a reference.
    fn naive(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| naive(rest, &t[i..])),
            Some(('?', rest)) => !t.is_empty() && naive(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && naive(rest, &t[1..]),
        }
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_the_naive_matcher(pattern in "[ab*?é:]{0,8}", text in "[abé:]{0,10}") {
            let p: Vec<char> = pattern.chars().collect();
            let t: Vec<char> = text.chars().collect();
            proptest::prop_assert_eq!(Wildcard::new(&pattern).matches(&text), naive(&p, &t), "{:?} {:?}", pattern, text);
        }
    }
}
