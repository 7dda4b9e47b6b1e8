//! The catalogue of mock functions served by this binary.

use std::fmt;

/// One mock function, served at `/<name>` and at `/function/<name>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Function {
    /// `GET /user-profile?id=ID`: one user object.
    UserProfile,
    /// `GET /user-orders?id=ID`: the orders of one user.
    UserOrders,
    /// `GET /user-orders-batch?ids=1,2`: orders of several users keyed by id.
    UserOrdersBatch,
    /// `GET /users`: every user.
    Users,
    /// `GET /inventory?sku=SKU`: stock of one SKU.
    Inventory,
    /// `GET /node?id=ID`: a user or an order, with `__typename`.
    Node,
    /// `GET /search?text=T`: users and SKUs matching, tagged with `kind`.
    Search,
    /// `GET /platform-profile?id=ID`: a user in a platform envelope,
    /// `{"code": 0, "msg": "ok", "data": {"user": {...snake_case...}}}`;
    /// an unknown user is code 40401 (still HTTP 200).
    PlatformProfile,
    /// `GET /sleep?ms=N`: answers `{"slept": N}` after N ms (at most 60 s).
    Sleep,
    /// `ANY /echo`: echoes the received request as JSON.
    Echo,
    /// `GET /status?code=N`: answers with status `N`.
    Status,
    /// `GET /not-json`: a `text/plain` body.
    NotJson,
    /// `POST /create-order`: creates an order with a global sequence number.
    CreateOrder,
    /// `GET /person?id=ID`: one of 30 people, `{"id": "1", "name": "Person 1"}`.
    Person,
    /// `GET /people-batch?ids=1,2`: the friends of several people keyed by
    /// id; everyone is a friend of everyone, themselves included.
    PeopleBatch,
    /// `GET /quirks?kind=K`: fixed answers that test result coercion
    /// (numeric IDs, a bad item in a list of lists, a bad `Int`).
    Quirks,
    /// `GET /drip?id=ID&ms=N`: `user-profile`'s answer for `ID` (default
    /// `1`), its headers at once and then its body **one byte at a time**,
    /// N ms before each byte (default 200, at most 60 s). A function that
    /// is alive but never done: only a deadline on the whole answer ends it.
    Drip,
    /// `GET /hang?ms=N`: reads the request and answers nothing until the
    /// client goes away; after N ms (default and at most 60 s) it gives up
    /// with a 504, so no call outlives that.
    Hang,
    /// `GET /identity`: verifies a login credential, the cookie
    /// `session=TOKEN` or else `authorization: Bearer TOKEN`, and maps it to
    /// the platform's user id: `good-N` (N a user) is `200 {"uid": "u-N",
    /// "name": ...}`, `slow-N` the same after 2 s, `broken` a 500, anything
    /// else (or no credential) a 401.
    Identity,
    /// `GET /cookie-profile?id=ID`: `user-profile`'s answer for `ID` plus
    /// headers for the client: two `set-cookie` lines, `x-trace-id: fn-N`
    /// and `x-ratelimit-remaining: 1000 - N` (N counts the calls since the
    /// last `/_reset`).
    CookieProfile,
}

impl Function {
    /// Every function, in a stable order.
    pub const ALL: [Function; 20] = [
        Function::UserProfile,
        Function::UserOrders,
        Function::UserOrdersBatch,
        Function::Users,
        Function::Inventory,
        Function::Node,
        Function::Search,
        Function::PlatformProfile,
        Function::Sleep,
        Function::Echo,
        Function::Status,
        Function::NotJson,
        Function::CreateOrder,
        Function::Person,
        Function::PeopleBatch,
        Function::Quirks,
        Function::Drip,
        Function::Hang,
        Function::Identity,
        Function::CookieProfile,
    ];

    /// The name used in URLs, CLI flags and stats.
    pub const fn name(self) -> &'static str {
        match self {
            Function::UserProfile => "user-profile",
            Function::UserOrders => "user-orders",
            Function::UserOrdersBatch => "user-orders-batch",
            Function::Users => "users",
            Function::Inventory => "inventory",
            Function::Node => "node",
            Function::Search => "search",
            Function::PlatformProfile => "platform-profile",
            Function::Sleep => "sleep",
            Function::Echo => "echo",
            Function::Status => "status",
            Function::NotJson => "not-json",
            Function::CreateOrder => "create-order",
            Function::Person => "person",
            Function::PeopleBatch => "people-batch",
            Function::Quirks => "quirks",
            Function::Drip => "drip",
            Function::Hang => "hang",
            Function::Identity => "identity",
            Function::CookieProfile => "cookie-profile",
        }
    }

    /// Looks a function up by its name.
    pub fn from_name(name: &str) -> Option<Function> {
        Function::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Index of this function in [`Function::ALL`], for per-function tables.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_index_matches_all() {
        for (i, f) in Function::ALL.into_iter().enumerate() {
            assert_eq!(Function::from_name(f.name()), Some(f));
            assert_eq!(f.index(), i);
        }
        assert_eq!(Function::from_name("nope"), None);
    }
}
