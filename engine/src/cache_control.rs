//! The reply's `cache-control`: the most restrictive of the functions'
//! answers, so that a CDN in front of the gateway stays correct.
//!
//! Every answer must say it may be cached (`max-age=N`), or the reply is
//! `no-store`; the smallest `max-age` (or `s-maxage`, which shared caches
//! use) wins; `no-store` and `no-cache` anywhere make the reply `no-store`;
//! `private` anywhere makes it `private` (the adapter adds `private` for an
//! answer that carries `Vary`, which the merged reply cannot honour).
//! Replies with errors, mutations, replies that called no function, and
//! requests refused before execution are `no-store`.

/// What the answers so far allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CachePolicy {
    answers: usize,
    no_store: bool,
    private: bool,
    max_age: Option<u64>,
}

impl CachePolicy {
    /// Takes one answer's `cache-control` (`None`: the header is absent).
    pub fn add(&mut self, header: Option<&str>) {
        self.answers += 1;
        let Some(header) = header else {
            self.no_store = true;
            return;
        };
        let mut max_age: Option<u64> = None;
        for directive in header.split(',').map(|d| d.trim().to_ascii_lowercase()) {
            match directive.split_once('=') {
                Some(("max-age" | "s-maxage", n)) => {
                    let n = n.trim_matches('"').parse::<u64>().ok();
                    max_age = match (max_age, n) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                None if directive == "no-store" || directive == "no-cache" => self.no_store = true,
                None if directive == "private" => self.private = true,
                _ => {}
            }
        }
        match max_age {
            Some(n) => self.max_age = Some(self.max_age.map_or(n, |m| m.min(n))),
            None => self.no_store = true,
        }
    }

    /// The reply's header value: `no-store` unless the reply may be cached
    /// and every answer allowed it.
    pub fn header(&self, cacheable_reply: bool) -> std::borrow::Cow<'static, str> {
        if !cacheable_reply || self.answers == 0 {
            return "no-store".into();
        }
        match (self.no_store, self.max_age) {
            (false, Some(age)) if self.private => format!("private, max-age={age}").into(),
            (false, Some(age)) => format!("max-age={age}").into(),
            _ => "no-store".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(headers: &[Option<&str>]) -> String {
        let mut policy = CachePolicy::default();
        for h in headers {
            policy.add(*h);
        }
        policy.header(true).into_owned()
    }

    #[test]
    fn the_most_restrictive_answer_wins() {
        let cases: [(&[Option<&str>], &str); 9] = [
            (
                &[Some("max-age=60"), Some("public, max-age=30")],
                "max-age=30",
            ),
            (&[Some("max-age=600, s-maxage=10")], "max-age=10"),
            (&[Some("max-age=60"), Some("no-store")], "no-store"),
            (&[Some("max-age=60"), Some("no-cache")], "no-store"),
            (
                &[Some("max-age=60"), Some("private, max-age=90")],
                "private, max-age=60",
            ),
            (&[Some("max-age=60"), None], "no-store"),
            (&[Some("public")], "no-store"),
            (&[Some("max-age=0")], "max-age=0"),
            (&[], "no-store"),
        ];
        for (answers, expected) in cases {
            assert_eq!(merged(answers), expected, "{answers:?}");
        }
        let mut policy = CachePolicy::default();
        policy.add(Some("max-age=60"));
        assert_eq!(policy.header(false), "no-store", "errors, mutations");
    }
}
