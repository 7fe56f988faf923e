//! "Did you mean …?" for an unknown option name: the name of the option table nearest to
//! it by edit distance, when one is close enough to be a typo (`AuchCacheTTL` →
//! `AuthCacheTTL`, the misprint of the 6.3 reference itself). Case is ignored, as option
//! names are matched case-insensitively. No I/O.

use super::options::OPTIONS;

/// The table spelling nearest to `name`, when it is at most a third of the name's length
/// away (at least one edit, at most three) and no other name is as near.
pub fn nearest(name: &str) -> Option<&'static str> {
    let wanted = name.to_ascii_lowercase();
    let limit = (wanted.chars().count() / 3).clamp(1, 3);
    let mut best: Option<(usize, &'static str)> = None;
    let mut tie = false;
    for def in OPTIONS {
        let d = distance(&wanted, &def.name.to_ascii_lowercase());
        match best {
            Some((b, _)) if d > b => {}
            Some((b, other)) if d == b => tie |= other != def.name,
            _ => {
                best = Some((d, def.name));
                tie = false;
            }
        }
    }
    match best {
        Some((d, name)) if d <= limit && !tie => Some(name),
        _ => None,
    }
}

/// Optimal string alignment distance: insertions, deletions, substitutions and the swap
/// of two neighbours each cost one (`Timeuot` is one edit from `Timeout`).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for (i, row) in d.chunks_mut(width).enumerate() {
        row[0] = i;
    }
    for (j, cell) in d.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_the_nearest_name() {
        let cases = [
            ("AuchCacheTTL", Some("AuthCacheTTL")),
            ("auchcachettl", Some("AuthCacheTTL")),
            ("Timeuot", Some("Timeout")),
            ("LdapUlr", Some("LdapUrl")),
            ("SSLCertFiles", Some("SSLCertFile")),
            ("BindPassword", None),
            // Four edits away: a different word, not a typo (reference §2.4).
            ("StoreDownAlert", None),
            ("StoreHostList", None),
            ("MaxConcurrentConnectionAttempts", None),
            ("X", None),
        ];
        for (input, want) in cases {
            assert_eq!(nearest(input), want, "{input}");
        }
    }

    #[test]
    fn distance_counts_edits() {
        let cases = [
            ("", "", 0),
            ("abc", "abc", 0),
            ("abc", "abd", 1),
            ("abc", "acb", 1),
            ("abc", "", 3),
            ("kitten", "sitting", 3),
        ];
        for (a, b, want) in cases {
            assert_eq!(distance(a, b), want, "{a} {b}");
            assert_eq!(distance(b, a), want, "{b} {a}");
        }
    }
}
