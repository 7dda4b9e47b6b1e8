//! The reply's `cache-control`: the most restrictive of the functions'
//! answers, so that a CDN in front of the gateway stays correct.
//!
//! Every answer must say it may be cached (`max-age=N`), or the reply is
//! `no-store`; the smallest `max-age` wins; `no-store` and `no-cache`
//! anywhere make the reply `no-store`; `private` anywhere makes it
//! `private`. Replies with errors, mutations, and requests refused before
//! execution are `no-store`.

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
        let mut max_age = None;
        for directive in header.split(',').map(|d| d.trim().to_ascii_lowercase()) {
            match directive.split_once('=') {
                Some(("max-age", n)) => max_age = n.trim_matches('"').parse::<u64>().ok(),
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

    /// The reply's header value: `None` when no function was called (the
    /// reply then says nothing about caching), `no-store` when it must not
    /// be cached.
    pub fn header(&self, cacheable_reply: bool) -> Option<String> {
        if !cacheable_reply {
            return Some("no-store".into());
        }
        if self.answers == 0 {
            return None;
        }
        match (self.no_store, self.max_age) {
            (false, Some(age)) if self.private => Some(format!("private, max-age={age}")),
            (false, Some(age)) => Some(format!("max-age={age}")),
            _ => Some("no-store".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(headers: &[Option<&str>]) -> Option<String> {
        let mut policy = CachePolicy::default();
        for h in headers {
            policy.add(*h);
        }
        policy.header(true)
    }

    #[test]
    fn the_most_restrictive_answer_wins() {
        assert_eq!(
            merged(&[Some("max-age=60"), Some("public, max-age=30")]).as_deref(),
            Some("max-age=30")
        );
        assert_eq!(
            merged(&[Some("max-age=60"), Some("no-store")]).as_deref(),
            Some("no-store")
        );
        assert_eq!(
            merged(&[Some("max-age=60"), Some("no-cache")]).as_deref(),
            Some("no-store")
        );
        assert_eq!(
            merged(&[Some("max-age=60"), Some("private, max-age=90")]).as_deref(),
            Some("private, max-age=60")
        );
        assert_eq!(
            merged(&[Some("max-age=60"), None]).as_deref(),
            Some("no-store"),
            "silence is not consent"
        );
        assert_eq!(merged(&[Some("public")]).as_deref(), Some("no-store"));
        assert_eq!(merged(&[]), None);
        let mut policy = CachePolicy::default();
        policy.add(Some("max-age=60"));
        assert_eq!(
            policy.header(false).as_deref(),
            Some("no-store"),
            "errors, mutations"
        );
    }
}
