//! Judge0's `callback_url`: when a submission ends, PUT it there (the eight default
//! fields, base64, as Judge0 does), 5 s per try, up to 3 tries on a connection
//! error. Off unless the operator sets `[server.judge0] callbacks = true`.
//!
//! A callback makes the coordinator connect where a stranger said, so every address
//! is checked: loopback, private, link-local, shared, multicast and other non-public
//! addresses are refused (unless `callbacks_to_private_addresses`), both when the
//! URL is submitted (an address written in it) and when it is called (what its name
//! resolves to then). The connection goes to the address that was checked, so a
//! name that resolves differently a moment later (DNS rebinding) changes nothing,
//! and redirects are not followed.

use super::response::{self, DEFAULT_FIELDS};
use crate::app::AppState;
use crate::events::Next;
use crate::store::{jobs, judge0 as store};
use gridx_proto::events::ServerEvent;
use gridx_proto::{JobId, UserName};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The longest callback URL accepted.
pub const MAX_URL_BYTES: usize = 2048;
const TRIES: u32 = 3;
const TIMEOUT: Duration = Duration::from_secs(5);
/// Callbacks in flight at once; past it, one is dropped and logged.
const IN_FLIGHT: usize = 64;

/// Whether a callback may connect to `ip`.
pub fn allowed(ip: IpAddr, private_too: bool) -> bool {
    if private_too {
        return !ip.is_unspecified() && !ip.is_multicast();
    }
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                // 100.64.0.0/10, shared address space (carrier NAT).
                || (a == 100 && (64..128).contains(&b))
                // 198.18.0.0/15, benchmarking.
                || (a == 198 && (b == 18 || b == 19))
                // 240.0.0.0/4, reserved.
                || a >= 240)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => allowed(IpAddr::V4(v4), false),
            None => {
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || v6.is_unique_local()
                    || v6.is_unicast_link_local()
                    // 2001:db8::/32, documentation.
                    || (v6.segments()[0] == 0x2001 && v6.segments()[1] == 0x0db8))
            }
        },
    }
}

/// Checks a submitted callback URL: `http` or `https`, a host, no credentials, and,
/// when the host is an address, one a callback may reach.
pub fn check_url(text: &str, private_too: bool) -> Result<String, String> {
    let text = text.trim();
    if text.len() > MAX_URL_BYTES {
        return Err(format!("is longer than {MAX_URL_BYTES} bytes"));
    }
    let url = reqwest::Url::parse(text).map_err(|e| format!("is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    let Some(host) = url.host_str() else {
        return Err("has no host".into());
    };
    // An IPv6 host comes in brackets; a name is checked when it is resolved.
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let address = match literal.parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) if host.eq_ignore_ascii_case("localhost") || host.ends_with(".localhost") => {
            Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
        }
        Err(_) => None,
    };
    if let Some(ip) = address
        && !allowed(ip, private_too)
    {
        return Err(format!(
            "points at {ip}, a loopback, private or otherwise non-public address, which callbacks may not reach"
        ));
    }
    Ok(url.to_string())
}

/// Starts the task that calls back as submissions end; it stops with the
/// coordinator.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        let mut shutdown = state.shutdown.clone();
        // Every user's job events, as an admin sees them.
        let Ok(me) = UserName::new("judge0-callbacks") else {
            tracing::error!("judge0 callbacks could not subscribe to events");
            return;
        };
        'subscribe: loop {
            let mut events = state.events.subscribe(me.clone(), true);
            loop {
                let next = tokio::select! {
                    next = events.next() => next,
                    _ = shutdown.changed() => return,
                };
                let text = match next {
                    Next::Event(text) => text,
                    Next::Lagged { missed } => {
                        tracing::warn!(
                            missed,
                            "judge0 callbacks fell behind; the callbacks of submissions that ended meanwhile are not sent"
                        );
                        continue 'subscribe;
                    }
                };
                // Workers' heartbeats come here too; only job endings matter.
                if !text.starts_with("{\"type\":\"job\"") {
                    continue;
                }
                let Ok(ServerEvent::Job { job }) = serde_json::from_str::<ServerEvent>(&text)
                else {
                    continue;
                };
                if !job.status.is_terminal() {
                    continue;
                }
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(job = %job.job_id, "too many judge0 callbacks in flight; this one is not sent");
                    continue;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    deliver(&state, job.job_id).await;
                    drop(permit);
                });
            }
        }
    })
}

async fn deliver(state: &AppState, job_id: JobId) {
    let found = state
        .reader
        .read(move |conn| {
            let Some(link) = store::with_callback(conn, job_id)? else {
                return Ok(None);
            };
            Ok(jobs::job_view(conn, job_id)?.map(|job| (job, link)))
        })
        .await;
    let (job, link) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(job = %job_id, error = %e, "judge0 callback: the submission could not be read");
            return;
        }
    };
    let Some(url) = link.callback_url.as_deref() else {
        return;
    };
    let body = response::render(&job, &link, None, &DEFAULT_FIELDS, true);
    let private_too = state.config.judge0.callbacks_to_private_addresses;
    let client = match pinned_client(url, private_too).await {
        Ok(client) => client,
        Err(why) => {
            tracing::warn!(job = %job_id, url, why, "judge0 callback not sent");
            return;
        }
    };
    for attempt in 1..=TRIES {
        match client.put(url).json(&body).send().await {
            // Any answer counts as delivered, as in Judge0.
            Ok(response) => {
                tracing::debug!(job = %job_id, status = %response.status(), "judge0 callback sent");
                return;
            }
            Err(e) if attempt < TRIES => {
                tracing::debug!(job = %job_id, error = %e, "judge0 callback failed; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                tracing::warn!(job = %job_id, url, error = %e, "judge0 callback failed {TRIES} times; given up");
            }
        }
    }
}

/// A client that connects only to an address of the URL's host that a callback may
/// reach, resolved now, follows no redirect, and gives up after [`TIMEOUT`].
async fn pinned_client(url: &str, private_too: bool) -> Result<reqwest::Client, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
    let host = parsed.host_str().ok_or("no host")?.to_owned();
    let port = parsed.port_or_known_default().ok_or("no port")?;
    let lookup = tokio::time::timeout(TIMEOUT, tokio::net::lookup_host((host.as_str(), port)))
        .await
        .map_err(|_| "name lookup timed out".to_owned())?
        .map_err(|e| format!("name lookup failed: {e}"))?;
    let addresses: Vec<SocketAddr> = lookup.collect();
    let Some(address) = addresses
        .iter()
        .copied()
        .find(|a| allowed(a.ip(), private_too))
    else {
        return Err(format!(
            "{host} resolves only to addresses callbacks may not reach ({addresses:?})"
        ));
    };
    // A name that also resolves to a refused address is refused whole: it is
    // someone's attempt to reach inside.
    if addresses.iter().any(|a| !allowed(a.ip(), private_too)) {
        return Err(format!(
            "{host} resolves to an address callbacks may not reach ({addresses:?})"
        ));
    }
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .resolve(&host, address)
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_reachable_by_default() {
        for refused in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "fc00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "198.18.0.1",
            "240.0.0.1",
        ] {
            let ip: IpAddr = refused.parse().expect("an address");
            assert!(!allowed(ip, false), "{refused}");
        }
        for ok in ["1.1.1.1", "93.184.216.34", "2606:4700::1111"] {
            let ip: IpAddr = ok.parse().expect("an address");
            assert!(allowed(ip, false), "{ok}");
        }
        assert!(allowed("127.0.0.1".parse().expect("ip"), true));
        assert!(!allowed("0.0.0.0".parse().expect("ip"), true));
    }

    #[test]
    fn submitted_urls_are_checked() {
        assert!(check_url("https://judge.example/cb?x=1", false).is_ok());
        for (bad, says) in [
            ("ftp://example.com/", "http or https"),
            ("http://user:pw@example.com/", "credentials"),
            ("http://127.0.0.1:8080/", "non-public"),
            ("http://[::1]/", "non-public"),
            ("http://localhost/", "non-public"),
            ("http://169.254.169.254/latest/meta-data", "non-public"),
            ("not a url", "is not a URL"),
        ] {
            let err = check_url(bad, false).expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
        assert!(check_url("http://127.0.0.1:8080/", true).is_ok());
        assert!(check_url(&format!("https://e.example/{}", "a".repeat(3000)), false).is_err());
    }
}
