//! Call counters, concurrency high-water marks and a bounded call log.
//!
//! Tests use these to count calls and to prove that the gateway fans out in
//! parallel (`max_in_flight`).

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use serde_json::{json, Map, Value};

use mock_functions::Function;

/// How many log entries are kept (the most recent ones).
pub const LOG_CAPACITY: usize = 10_000;

const N: usize = Function::ALL.len();

/// Shared statistics of one server; cheap to lock, safe to share.
#[derive(Debug)]
pub struct Stats {
    served: Vec<Function>,
    log_capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    epoch: Instant,
    generation: u64,
    total: u64,
    calls: [u64; N],
    in_flight: u64,
    in_flight_by: [u64; N],
    max_in_flight: u64,
    max_by: [u64; N],
    next_seq: u64,
    log: VecDeque<Entry>,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    function: Function,
    uri: String,
    started_us: u64,
    finished_us: Option<u64>,
}

impl Inner {
    fn new(generation: u64) -> Inner {
        Inner {
            epoch: Instant::now(),
            generation,
            total: 0,
            calls: [0; N],
            in_flight: 0,
            in_flight_by: [0; N],
            max_in_flight: 0,
            max_by: [0; N],
            next_seq: 0,
            log: VecDeque::new(),
        }
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// One function call in progress; finishing it (on drop) records its end.
///
/// Dropping also happens when the client goes away mid-request, so
/// `in_flight` never leaks.
#[derive(Debug)]
#[must_use = "the call is finished when this guard is dropped"]
pub struct Call<'a> {
    stats: &'a Stats,
    generation: u64,
    seq: u64,
    function: Function,
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        self.stats.finish(CallId {
            generation: self.generation,
            seq: self.seq,
            function: self.function,
        });
    }
}

/// A call in progress whose end is recorded by [`Stats::finish`], for an
/// answer that outlives its handler (a body streamed after the handler
/// returned).
#[derive(Debug)]
#[must_use = "the call stays in flight until Stats::finish is called with this id"]
pub struct CallId {
    generation: u64,
    seq: u64,
    function: Function,
}

impl Call<'_> {
    /// Hands the end of this call over to the returned id: it stays in
    /// flight until [`Stats::finish`] is called with it.
    pub fn detach(self) -> CallId {
        let id = CallId {
            generation: self.generation,
            seq: self.seq,
            function: self.function,
        };
        // Holds a reference and plain numbers: forgetting it leaks nothing.
        std::mem::forget(self);
        id
    }
}

impl Stats {
    /// Statistics for a server that serves `served` (reported even at 0).
    pub fn new(served: Vec<Function>) -> Stats {
        Stats::with_log_capacity(served, LOG_CAPACITY)
    }

    /// Like [`Stats::new`], keeping at most `log_capacity` log entries.
    pub fn with_log_capacity(served: Vec<Function>, log_capacity: usize) -> Stats {
        Stats {
            served,
            log_capacity,
            inner: Mutex::new(Inner::new(0)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the start of a call to `function` for request `uri`.
    pub fn begin(&self, function: Function, uri: &str) -> Call<'_> {
        let mut s = self.lock();
        let i = function.index();
        s.total += 1;
        if let Some(c) = s.calls.get_mut(i) {
            *c += 1;
        }
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
        let by = s.in_flight_by.get(i).copied().unwrap_or(0) + 1;
        if let Some(c) = s.in_flight_by.get_mut(i) {
            *c = by;
        }
        if let Some(m) = s.max_by.get_mut(i) {
            *m = (*m).max(by);
        }
        let seq = s.next_seq;
        s.next_seq += 1;
        let started_us = s.now_us();
        if self.log_capacity > 0 {
            while s.log.len() >= self.log_capacity {
                s.log.pop_front();
            }
            s.log.push_back(Entry {
                seq,
                function,
                uri: uri.to_owned(),
                started_us,
                finished_us: None,
            });
        }
        Call {
            stats: self,
            generation: s.generation,
            seq,
            function,
        }
    }

    /// Records the end of a call (one detached with [`Call::detach`]).
    pub fn finish(&self, call: CallId) {
        let mut s = self.lock();
        if s.generation != call.generation {
            return; // started before the last reset: already forgotten
        }
        s.in_flight = s.in_flight.saturating_sub(1);
        if let Some(c) = s.in_flight_by.get_mut(call.function.index()) {
            *c = c.saturating_sub(1);
        }
        let now = s.now_us();
        let front = s.log.front().map_or(0, |e| e.seq);
        let index = call
            .seq
            .checked_sub(front)
            .and_then(|i| usize::try_from(i).ok());
        if let Some(entry) = index.and_then(|i| s.log.get_mut(i)) {
            debug_assert_eq!(entry.seq, call.seq);
            entry.finished_us = Some(now);
        }
    }

    /// Zeroes counters, maxima, the log and the clock.
    ///
    /// Calls still in flight are forgotten: their end is not recorded.
    pub fn reset(&self) {
        let mut s = self.lock();
        let generation = s.generation + 1;
        *s = Inner::new(generation);
    }

    /// The `/_stats` document.
    pub fn snapshot(&self) -> Value {
        let s = self.lock();
        let per_function = |table: &[u64; N]| {
            let mut m = Map::new();
            for f in &self.served {
                let n = table.get(f.index()).copied().unwrap_or(0);
                m.insert(f.name().to_owned(), n.into());
            }
            Value::Object(m)
        };
        let log: Vec<Value> = s
            .log
            .iter()
            .map(|e| {
                json!({
                    "function": e.function.name(),
                    "uri": e.uri,
                    "started_us": e.started_us,
                    "finished_us": e.finished_us,
                })
            })
            .collect();
        json!({
            "total": s.total,
            "calls": per_function(&s.calls),
            "in_flight": s.in_flight,
            "max_in_flight": s.max_in_flight,
            "max_in_flight_by_function": per_function(&s.max_by),
            "log": log,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> Stats {
        Stats::new(Function::ALL.to_vec())
    }

    #[test]
    fn counts_calls_and_concurrency() {
        let st = stats();
        let a = st.begin(Function::UserOrders, "/user-orders?id=1");
        let b = st.begin(Function::UserOrders, "/function/user-orders?id=2");
        let c = st.begin(Function::UserProfile, "/user-profile?id=1");
        let snap = st.snapshot();
        assert_eq!(snap["total"], 3);
        assert_eq!(snap["in_flight"], 3);
        assert_eq!(snap["log"][0]["finished_us"], Value::Null);
        drop((a, b, c));
        let _d = st.begin(Function::Users, "/users");
        let snap = st.snapshot();
        assert_eq!(snap["calls"]["user-orders"], 2);
        assert_eq!(snap["calls"]["user-profile"], 1);
        assert_eq!(snap["calls"]["echo"], 0);
        assert_eq!(snap["in_flight"], 1);
        assert_eq!(snap["max_in_flight"], 3);
        assert_eq!(snap["max_in_flight_by_function"]["user-orders"], 2);
        assert_eq!(snap["max_in_flight_by_function"]["user-profile"], 1);
        assert_eq!(snap["log"][1]["uri"], "/function/user-orders?id=2");
        assert_eq!(snap["log"][1]["function"], "user-orders");
        let started = snap["log"][0]["started_us"].as_u64();
        let finished = snap["log"][0]["finished_us"].as_u64();
        assert!(started.is_some() && finished >= started);
        assert_eq!(snap["log"][3]["finished_us"], Value::Null);
    }

    #[test]
    fn a_detached_call_ends_when_finished() {
        let st = stats();
        let id = st.begin(Function::Drip, "/drip?ms=1").detach();
        let snap = st.snapshot();
        assert_eq!(snap["in_flight"], 1);
        assert_eq!(snap["log"][0]["finished_us"], Value::Null);
        st.finish(id);
        let snap = st.snapshot();
        assert_eq!(snap["in_flight"], 0);
        assert!(snap["log"][0]["finished_us"].is_u64());
        assert_eq!(snap["calls"]["drip"], 1);
    }

    #[test]
    fn reset_zeroes_everything_and_forgets_old_calls() {
        let st = stats();
        let old = st.begin(Function::Echo, "/echo");
        st.reset();
        let new = st.begin(Function::Echo, "/echo?x=1");
        drop(old); // must not touch the new generation's counters
        let snap = st.snapshot();
        assert_eq!(snap["total"], 1);
        assert_eq!(snap["in_flight"], 1);
        assert_eq!(snap["log"].as_array().map(Vec::len), Some(1));
        assert_eq!(snap["log"][0]["finished_us"], Value::Null);
        drop(new);
        assert_eq!(st.snapshot()["in_flight"], 0);
    }

    #[test]
    fn log_keeps_only_the_most_recent_entries() {
        let st = Stats::with_log_capacity(vec![Function::Users], 3);
        let first = st.begin(Function::Users, "/users?n=0");
        for n in 1..5 {
            drop(st.begin(Function::Users, &format!("/users?n={n}")));
        }
        drop(first); // evicted: finishing it must still work
        let snap = st.snapshot();
        assert_eq!(snap["total"], 5);
        assert_eq!(snap["in_flight"], 0);
        let uris: Vec<_> = snap["log"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["uri"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(uris, ["/users?n=2", "/users?n=3", "/users?n=4"]);
        assert!(snap["log"][2]["finished_us"].is_u64());
        assert_eq!(snap["calls"].as_object().map(|m| m.len()), Some(1));
    }
}
