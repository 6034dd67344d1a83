//! fnmatch(3) without flags, as systemd matches networkd's `[Match]` lists and sysctl.d's
//! keys: one matcher for both (`config::networkd`, `plan::reliance`).

/// fnmatch(3) without flags: `*`, `?`, `[...]` (with `!`/`^` and ranges), `\` quoting.
/// Linear backtracking on the last `*`: no input makes it slow.
pub fn glob(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = s.chars().collect();
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, si));
                pi += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => match class(&p, pi, s[si]) {
                Some((true, next)) => Some(next - pi),
                Some((false, _)) => None,
                None => (s[si] == '[').then_some(1),
            },
            Some('\\') if pi + 1 < p.len() => (p[pi + 1] == s[si]).then_some(2),
            Some(c) => (*c == s[si]).then_some(1),
            None => None,
        };
        match (step, star) {
            (Some(n), _) => {
                pi += n;
                si += 1;
            }
            (None, Some((sp, ss))) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi.min(p.len())..].iter().all(|c| *c == '*')
}

/// A bracket expression at `p[at]`: whether `c` is in it, and where the pattern goes on;
/// `None` where it does not close (then `[` is itself).
fn class(p: &[char], at: usize, c: char) -> Option<(bool, usize)> {
    let mut i = at + 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    loop {
        let lo = *p.get(i)?;
        if lo == ']' && !first {
            return Some((found != negate, i + 1));
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|hi| *hi != ']') {
            let hi = p[i + 2];
            found |= lo <= c && c <= hi;
            i += 3;
        } else {
            found |= lo == c;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_as_fnmatch() {
        for (p, s, want) in [
            ("wg0", "wg0", true),
            ("wg*", "wg0", true),
            ("*", "", true),
            ("*0", "wg0", true),
            ("w*g*0", "wg0", true),
            ("w*x", "wg0", false),
            ("wg?", "wg10", false),
            ("wg[0-3]", "wg2", true),
            ("wg[!0-3]", "wg2", false),
            ("wg[^a]", "wg2", true),
            ("wg[]]", "wg]", true),
            ("wg[", "wg[", true),
            ("wg\\*", "wg*", true),
            ("wg\\*", "wg0", false),
            ("wg0\\", "wg0", false),
            ("", "wg0", false),
            ("[a-", "[a-", true),
            // systemd-sysctl's keys: slashes are plain characters.
            ("a*c", "a/b/c", true),
            ("a[a-c]c", "abc", true),
            ("*b*b", "abab", true),
            ("a*", "b", false),
        ] {
            assert_eq!(glob(p, s), want, "{p} {s}");
        }
        // No backtracking blowup.
        let p = "*a".repeat(5000) + "b";
        assert!(!glob(&p, &"a".repeat(5000)));
    }
}
