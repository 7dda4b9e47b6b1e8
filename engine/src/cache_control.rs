//! The reply's `cache-control`: the most restrictive of the functions'
//! answers, so that a CDN in front of the gateway stays correct and never
//! shares one user's data with another.
//!
//! * Every answer must say it may be cached (`max-age=N` or `s-maxage=N`),
//!   or the reply is `no-store`; `no-store` and `no-cache` anywhere make
//!   the reply `no-store`.
//! * `max-age` and `s-maxage` are kept apart: the reply's `max-age` is the
//!   smallest answer `max-age`, its `s-maxage` the smallest shared-cache
//!   lifetime, which for each answer is its `s-maxage` or, without one, its
//!   `max-age` (what a shared cache would use). An answer with `s-maxage`
//!   alone gives that value to `max-age` too. The reply says
//!   `max-age=A, s-maxage=S`.
//! * The reply is `private, max-age=A` (no `s-maxage`) when any answer is
//!   `private` (the adapter adds `private` for an answer that carries
//!   `Vary`, which the merged reply cannot honour), and when any call of
//!   the request carried a header of the client's (`forward_headers` or
//!   `rename_headers`; the request id does not count): what a function
//!   answers with the client's credentials may be that client's alone.
//! * An answer's lifetimes count from when the function's cache got it:
//!   its `Age` (which the adapter passes as an `age=N` directive) is taken
//!   off. `must-revalidate` and `proxy-revalidate` in any answer are kept
//!   in the reply, so that no cache serves it stale.
//! * Replies with errors, mutations, replies that called no function, and
//!   requests refused before execution are `no-store`.

/// What the answers so far allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CachePolicy {
    answers: usize,
    no_store: bool,
    private: bool,
    /// The smallest lifetime for private caches.
    max_age: Option<u64>,
    /// The smallest lifetime for shared caches.
    s_maxage: Option<u64>,
    must_revalidate: bool,
    proxy_revalidate: bool,
}

/// The smaller of two optional lifetimes (either may be absent).
fn min(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
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
        let mut s_maxage: Option<u64> = None;
        let mut age: u64 = 0;
        for directive in header.split(',').map(|d| d.trim().to_ascii_lowercase()) {
            match directive.split_once('=') {
                Some((name, n)) => {
                    let n = n.trim_matches('"').parse::<u64>().ok();
                    match name.trim() {
                        "max-age" => max_age = min(max_age, n),
                        "s-maxage" => s_maxage = min(s_maxage, n),
                        "age" => age = age.max(n.unwrap_or(0)),
                        _ => {}
                    }
                }
                None if directive == "no-store" || directive == "no-cache" => self.no_store = true,
                None if directive == "private" => self.private = true,
                None if directive == "must-revalidate" => self.must_revalidate = true,
                None if directive == "proxy-revalidate" => self.proxy_revalidate = true,
                None => {}
            }
        }
        let max_age = max_age.map(|n| n.saturating_sub(age));
        let s_maxage = s_maxage.map(|n| n.saturating_sub(age));
        // Without `s-maxage`, a shared cache goes by `max-age`; with
        // `s-maxage` alone, so does the reply's `max-age`.
        match (max_age.or(s_maxage), s_maxage.or(max_age)) {
            (Some(private), Some(shared)) => {
                self.max_age = min(self.max_age, Some(private));
                self.s_maxage = min(self.s_maxage, Some(shared));
            }
            _ => self.no_store = true,
        }
    }

    /// A call of the request carried a header of the client's: the reply
    /// may hold that client's data, and is `private`.
    pub fn personal(&mut self) {
        self.private = true;
    }

    /// The reply's header value: `no-store` unless the reply may be cached
    /// and every answer allowed it.
    pub fn header(&self, cacheable_reply: bool) -> std::borrow::Cow<'static, str> {
        if !cacheable_reply || self.answers == 0 || self.no_store {
            return "no-store".into();
        }
        let mut value = match (self.max_age, self.s_maxage) {
            (Some(age), _) if self.private => format!("private, max-age={age}"),
            (Some(age), Some(shared)) => format!("max-age={age}, s-maxage={shared}"),
            _ => return "no-store".into(),
        };
        if self.must_revalidate {
            value.push_str(", must-revalidate");
        }
        if self.proxy_revalidate && !self.private {
            value.push_str(", proxy-revalidate");
        }
        value.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answers_age_is_taken_off_and_revalidation_is_kept() {
        assert_eq!(
            merged(&[Some("max-age=60, age=55")]),
            "max-age=5, s-maxage=5"
        );
        assert_eq!(
            merged(&[Some("max-age=60, s-maxage=120, age=100")]),
            "max-age=0, s-maxage=20"
        );
        assert_eq!(
            merged(&[
                Some("max-age=60, must-revalidate"),
                Some("max-age=30, proxy-revalidate")
            ]),
            "max-age=30, s-maxage=30, must-revalidate, proxy-revalidate"
        );
        assert_eq!(
            merged(&[Some("private, max-age=60, proxy-revalidate")]),
            "private, max-age=60"
        );
    }

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
                "max-age=30, s-maxage=30",
            ),
            (&[Some("max-age=60"), Some("no-store")], "no-store"),
            (&[Some("max-age=60"), Some("no-cache")], "no-store"),
            (
                &[Some("max-age=60"), Some("private, max-age=90")],
                "private, max-age=60",
            ),
            (&[Some("max-age=60"), None], "no-store"),
            (&[Some("public")], "no-store"),
            (&[Some("max-age=0")], "max-age=0, s-maxage=0"),
            (&[Some("max-age=\"45\"")], "max-age=45, s-maxage=45"),
            (&[], "no-store"),
        ];
        for (answers, expected) in cases {
            assert_eq!(merged(answers), expected, "{answers:?}");
        }
        let mut policy = CachePolicy::default();
        policy.add(Some("max-age=60"));
        assert_eq!(policy.header(false), "no-store", "errors, mutations");
    }

    #[test]
    fn max_age_and_s_maxage_are_kept_apart() {
        let cases: [(&[Option<&str>], &str); 6] = [
            // Shared caches may keep it less long than browsers.
            (
                &[Some("max-age=600, s-maxage=10")],
                "max-age=600, s-maxage=10",
            ),
            // Or longer.
            (
                &[Some("max-age=10, s-maxage=600")],
                "max-age=10, s-maxage=600",
            ),
            // An answer without s-maxage bounds shared caches by its max-age.
            (
                &[Some("max-age=600, s-maxage=300"), Some("max-age=60")],
                "max-age=60, s-maxage=60",
            ),
            (
                &[Some("max-age=60, s-maxage=30"), Some("max-age=120")],
                "max-age=60, s-maxage=30",
            ),
            // s-maxage alone: the reply's max-age too.
            (
                &[Some("s-maxage=30"), Some("max-age=120")],
                "max-age=30, s-maxage=30",
            ),
            // Private: shared caches keep nothing, s-maxage is not said.
            (
                &[
                    Some("max-age=600, s-maxage=10"),
                    Some("private, max-age=90"),
                ],
                "private, max-age=90",
            ),
        ];
        for (answers, expected) in cases {
            assert_eq!(merged(answers), expected, "{answers:?}");
        }
    }

    #[test]
    fn a_call_with_the_clients_headers_makes_the_reply_private() {
        let mut policy = CachePolicy::default();
        policy.add(Some("max-age=60, s-maxage=30"));
        policy.personal();
        assert_eq!(policy.header(true), "private, max-age=60");
        // It never makes an uncacheable reply cacheable.
        let mut policy = CachePolicy::default();
        policy.personal();
        policy.add(Some("no-store"));
        assert_eq!(policy.header(true), "no-store");
        let mut policy = CachePolicy::default();
        policy.personal();
        assert_eq!(policy.header(true), "no-store", "no function called");
    }
}
