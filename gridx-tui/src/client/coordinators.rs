//! Several coordinators, one leading: the `server` setting (`--server`,
//! `GRIDX_SERVER`, `[client]`/`[worker] server`) may list them all, `URL,URL,…`, and
//! every client of the coordinator (the API client, the live stream, the worker's
//! link) goes to whichever leads. A standby answers everything with `503 unavailable`
//! ("this coordinator is a standby; …") and applies nothing; it neither redirects nor
//! proxies. So a client moves on to the next address when a standby refuses it or a
//! connection fails, and remembers the one that answered as the leader (in every
//! clone, for the life of the process) to try it first next time.
//!
//! What may move on after a request *may have arrived* is each client's call (an
//! unkeyed submit must not be sent twice): [`Coordinators::round`] only walks the
//! list. With one address nothing of this shows: its errors are its own, as before.

use crate::client::tls::{Endpoint, EndpointError};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The most addresses a `server` setting may list.
pub const MAX_COORDINATORS: usize = 16;

/// The coordinators a client may reach, each with its TLS (`client/tls.rs`; one
/// `ca_cert` and `allow_insecure` for all), and which of them led last. Cheap to
/// clone; clones share what they learn about the leader.
#[derive(Clone)]
pub struct Coordinators {
    endpoints: Arc<[Endpoint]>,
    /// The index of the one that answered as the leader last: a round starts there.
    leader: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Coordinators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinators")
            .field("endpoints", &self.endpoints)
            .field("leader", &self.leader())
            .finish()
    }
}

/// How one coordinator of a round did.
#[derive(Debug)]
pub enum Tried<T, E> {
    /// It answered as the leader (a success, or an error that stands): the round
    /// ends, and it is tried first next time.
    Answer(Result<T, E>),
    /// It cannot serve this now (unreachable, a standby): the next one is tried.
    Next(E),
}

/// The addresses of a `server` setting: split at commas and trimmed, at most
/// [`MAX_COORDINATORS`], none empty. One address (no comma) comes back as it is, so
/// that its errors stay what they were.
pub fn addresses(server: &str) -> Result<Vec<&str>, EndpointError> {
    if !server.contains(',') {
        return Ok(vec![server]);
    }
    let list: Vec<&str> = server.split(',').map(str::trim).collect();
    if list.iter().any(|a| a.is_empty()) {
        return Err(EndpointError::EmptyEntry(server.trim().to_owned()));
    }
    if list.len() > MAX_COORDINATORS {
        return Err(EndpointError::TooMany {
            count: list.len(),
            max: MAX_COORDINATORS,
        });
    }
    Ok(list)
}

/// Whether any address of a `server` setting is plain http outside loopback (what
/// `--insecure` allows, and the dashboard's header warns of).
pub fn any_insecure(server: &str) -> bool {
    addresses(server).is_ok_and(|list| list.into_iter().any(crate::client::tls::is_insecure))
}

/// The message of a standby's refusal (`503` with the API's `unavailable` error
/// saying "standby"); `None` for any other answer, a leader's 503 included.
pub fn standby_refusal(status: u16, body: &[u8]) -> Option<String> {
    if status != 503 {
        return None;
    }
    let body: gridx_proto::api::ErrorBody = serde_json::from_slice(body).ok()?;
    (body.error.code == gridx_proto::api::ErrorCode::Unavailable
        && body.error.message.contains("standby"))
    .then_some(body.error.message)
}

impl From<Endpoint> for Coordinators {
    fn from(endpoint: Endpoint) -> Self {
        Coordinators::of(vec![endpoint])
    }
}

impl Coordinators {
    /// Reads a `server` setting ([`addresses`]), each address checked as
    /// [`Endpoint::new`] checks one; the same coordinator twice is refused.
    pub fn new(
        server: &str,
        ca_cert: Option<&Path>,
        allow_insecure: bool,
    ) -> Result<Coordinators, EndpointError> {
        let mut tls = None;
        let mut endpoints: Vec<Endpoint> = Vec::new();
        for address in addresses(server)? {
            let endpoint = Endpoint::sharing(address, ca_cert, allow_insecure, &mut tls)?;
            if endpoints
                .iter()
                .any(|e| e.base_url() == endpoint.base_url())
            {
                return Err(EndpointError::Duplicate(endpoint.base_url().to_owned()));
            }
            endpoints.push(endpoint);
        }
        Ok(Coordinators::of(endpoints))
    }

    fn of(endpoints: Vec<Endpoint>) -> Self {
        Self {
            endpoints: endpoints.into(),
            leader: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Every coordinator, in the order given.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// More than one address: failover applies.
    pub fn several(&self) -> bool {
        self.endpoints.len() > 1
    }

    /// The index of the one tried first: the last to answer as the leader.
    pub fn leader(&self) -> usize {
        self.leader.load(Ordering::Relaxed) % self.endpoints.len().max(1)
    }

    /// The one tried first (the only one, when there is one).
    pub fn in_use(&self) -> &Endpoint {
        &self.endpoints[self.leader()]
    }

    /// What a face shows for the coordinator at `index` once it is connected: its
    /// address when there are several, `None` with one (the face keeps the setting
    /// as it was given).
    pub fn label(&self, index: usize) -> Option<String> {
        self.several()
            .then(|| self.endpoints.get(index).map(|e| e.base_url().to_owned()))
            .flatten()
    }

    /// Plain http outside loopback anywhere in the list (`--insecure`).
    pub fn is_insecure(&self) -> bool {
        self.endpoints.iter().any(Endpoint::is_insecure)
    }

    /// The order of a round: each index once, the last leader first, then the ones
    /// after it, wrapping round.
    pub fn order(&self) -> impl Iterator<Item = usize> + use<> {
        let count = self.endpoints.len();
        let start = self.leader();
        (0..count).map(move |k| (start + k) % count)
    }

    /// Remembers `index` as the leader: the next round starts there.
    pub fn answered(&self, index: usize) {
        self.leader.store(index, Ordering::Relaxed);
    }

    /// The connection to `index` was lost (a leader that loses the leadership exits):
    /// the next round starts with the one after it, unless a clone already found
    /// another leader meanwhile.
    pub fn lost(&self, index: usize) {
        let next = (index + 1) % self.endpoints.len().max(1);
        let _ = self
            .leader
            .compare_exchange(index, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Tries the coordinators in [`order`](Self::order) until one answers; it is
    /// remembered. When none does, every error, in the order tried, with the index of
    /// its coordinator (one, for one address). The caller's backoff applies per round.
    pub async fn round<'a, T, E, F, Fut>(
        &'a self,
        mut attempt: F,
    ) -> Result<Result<T, E>, Vec<(usize, E)>>
    where
        F: FnMut(usize, &'a Endpoint) -> Fut,
        Fut: Future<Output = Tried<T, E>>,
    {
        let mut missed = Vec::new();
        for index in self.order() {
            match attempt(index, &self.endpoints[index]).await {
                Tried::Answer(answer) => {
                    self.answered(index);
                    return Ok(answer);
                }
                Tried::Next(error) => missed.push((index, error)),
            }
        }
        Err(missed)
    }

    /// The address of `index`, for messages.
    pub fn url(&self, index: usize) -> &str {
        self.endpoints.get(index).map_or("", Endpoint::base_url)
    }

    /// The words for a round in which no coordinator answered as the leader: each
    /// address with why it did not.
    pub fn no_leader(&self, reasons: impl IntoIterator<Item = (usize, String)>) -> String {
        let reasons: Vec<String> = reasons
            .into_iter()
            .map(|(index, reason)| format!("{}: {reason}", self.url(index)))
            .collect();
        format!(
            "no coordinator of {} answered as the leader ({})",
            self.endpoints.len(),
            reasons.join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(server: &str) -> Result<Coordinators, EndpointError> {
        Coordinators::new(server, None, false)
    }

    fn urls(c: &Coordinators) -> Vec<&str> {
        c.endpoints().iter().map(Endpoint::base_url).collect()
    }

    #[test]
    fn one_address_reads_as_before() {
        let one = list(" http://127.0.0.1:8420/v1/ ").unwrap();
        assert_eq!(urls(&one), ["http://127.0.0.1:8420"]);
        assert!(!one.several());
        assert_eq!(one.label(0), None, "the face keeps the setting as given");
        // Its errors are the single address's, word for word.
        for bad in ["", "ftp://x", "http://"] {
            let err = list(bad).unwrap_err();
            let alone = Endpoint::new(bad, None, false).unwrap_err();
            assert_eq!(err.to_string(), alone.to_string(), "{bad:?}");
        }
        assert!(matches!(
            list("http://10.0.0.5:1"),
            Err(EndpointError::Insecure { .. })
        ));
    }

    #[test]
    fn a_list_is_split_at_commas_and_trimmed() {
        let c = list("http://127.0.0.1:1, 127.0.0.2:2/ ,\thttp://localhost:3/v1").unwrap();
        assert_eq!(
            urls(&c),
            [
                "http://127.0.0.1:1",
                "http://127.0.0.2:2",
                "http://localhost:3"
            ]
        );
        assert!(c.several());
        assert_eq!(c.label(1).as_deref(), Some("http://127.0.0.2:2"));
        assert_eq!(c.in_use().base_url(), "http://127.0.0.1:1");
    }

    #[test]
    fn a_bad_entry_is_named() {
        let err = list("http://127.0.0.1:1,ftp://x").unwrap_err().to_string();
        assert!(err.contains("\"ftp://x\""), "{err}");
        let err = list("http://127.0.0.1:1,http://10.0.0.5:2")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("http://10.0.0.5:2") && err.contains("--insecure"),
            "{err}"
        );
        assert!(
            Coordinators::new("http://127.0.0.1:1,http://10.0.0.5:2", None, true)
                .unwrap()
                .is_insecure()
        );
        for empty in [
            "http://127.0.0.1:1,",
            ",http://127.0.0.1:1",
            "a:1,,b:2",
            ",",
        ] {
            assert!(
                matches!(list(empty), Err(EndpointError::EmptyEntry(_))),
                "{empty:?}"
            );
        }
        let err = list("127.0.0.1:1,http://127.0.0.1:1/").unwrap_err();
        assert_eq!(
            err.to_string(),
            "coordinator list: http://127.0.0.1:1 is given twice"
        );
    }

    #[test]
    fn a_list_holds_at_most_sixteen() {
        let many = |n: u16| {
            (1..=n)
                .map(|p| format!("127.0.0.1:{p}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(list(&many(16)).unwrap().endpoints().len(), 16);
        let err = list(&many(17)).unwrap_err();
        assert!(
            matches!(err, EndpointError::TooMany { count: 17, max: 16 }),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "coordinator list: 17 addresses, at most 16"
        );
    }

    #[test]
    fn insecure_is_any_address_outside_loopback_in_plain_http() {
        assert!(!any_insecure("http://127.0.0.1:1,https://grid:1"));
        assert!(any_insecure("http://127.0.0.1:1,http://grid:1"));
        assert!(any_insecure("grid:1"));
        assert!(!any_insecure("http://127.0.0.1:1,,"));
    }

    #[test]
    fn a_round_starts_at_the_last_leader_and_wraps() {
        let c = list("127.0.0.1:1,127.0.0.1:2,127.0.0.1:3").unwrap();
        assert_eq!(c.order().collect::<Vec<_>>(), [0, 1, 2]);
        c.answered(1);
        assert_eq!(c.order().collect::<Vec<_>>(), [1, 2, 0]);
        // A clone shares what was learnt.
        let clone = c.clone();
        assert_eq!(clone.in_use().base_url(), "http://127.0.0.1:2");
        // Losing the leader moves on to the next, once: a loss reported late, after
        // another clone found the new leader, changes nothing.
        c.lost(1);
        assert_eq!(clone.order().collect::<Vec<_>>(), [2, 0, 1]);
        c.lost(1);
        assert_eq!(c.leader(), 2);
        c.lost(2);
        assert_eq!(c.leader(), 0, "wraps round");
        let one = list("127.0.0.1:1").unwrap();
        one.lost(0);
        assert_eq!(one.order().collect::<Vec<_>>(), [0]);
    }

    #[tokio::test]
    async fn a_round_moves_on_until_one_answers_and_remembers_it() {
        let c = list("127.0.0.1:1,127.0.0.1:2,127.0.0.1:3").unwrap();
        let mut tried = Vec::new();
        let answer = c
            .round(|i, _| {
                tried.push(i);
                async move {
                    if i == 2 {
                        Tried::Answer(Ok::<_, String>(i))
                    } else {
                        Tried::Next(format!("standby {i}"))
                    }
                }
            })
            .await;
        assert_eq!(answer, Ok(Ok(2)));
        assert_eq!(tried, [0, 1, 2]);
        assert_eq!(c.leader(), 2);
        // An error that stands ends the round too (the leader said no).
        let answer = c
            .round(|i, _| async move { Tried::Answer(Err::<u8, _>(format!("no from {i}"))) })
            .await;
        assert_eq!(answer, Ok(Err("no from 2".into())));
        // Nobody answering gives every reason, in the order tried.
        let missed = c
            .round(|i, _| async move { Tried::<u8, _>::Next(format!("down {i}")) })
            .await
            .unwrap_err();
        assert_eq!(
            missed,
            [
                (2, "down 2".into()),
                (0, "down 0".into()),
                (1, "down 1".into())
            ]
        );
        assert_eq!(c.leader(), 2, "nothing learnt");
        assert_eq!(
            c.no_leader(missed),
            "no coordinator of 3 answered as the leader (http://127.0.0.1:3: down 2; http://127.0.0.1:1: down 0; http://127.0.0.1:2: down 1)"
        );
    }

    #[test]
    fn a_standby_is_told_from_its_answer() {
        let body = |code: &str, message: &str| {
            serde_json::json!({"error": {"code": code, "message": message}}).to_string()
        };
        let standby = body(
            "unavailable",
            "this coordinator is a standby; the leader is http://b:8420",
        );
        assert_eq!(
            standby_refusal(503, standby.as_bytes()).as_deref(),
            Some("this coordinator is a standby; the leader is http://b:8420")
        );
        let leaderless = body(
            "unavailable",
            "this coordinator is a standby and no coordinator leads yet",
        );
        assert!(standby_refusal(503, leaderless.as_bytes()).is_some());
        // A leader's own 503 (its store failed, it shuts down) is not a standby's.
        let store = body("unavailable", "the store is unavailable");
        assert_eq!(standby_refusal(503, store.as_bytes()), None);
        assert_eq!(standby_refusal(502, standby.as_bytes()), None);
        assert_eq!(standby_refusal(503, b"<html>busy</html>"), None);
        let other = body("rate_limited", "standby");
        assert_eq!(standby_refusal(503, other.as_bytes()), None);
    }
}
