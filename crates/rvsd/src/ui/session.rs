//! Who may use the TCP API and the dashboard: the bearer token (may change), the read-only
//! token (may look), and sessions a login exchanges a token for (an HttpOnly, SameSite=Strict
//! cookie, with a per-session CSRF value every change must carry in `X-RVS-CSRF`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::header::{AUTHORIZATION, COOKIE};
use hyper::{HeaderMap, Method};

/// The cookie a login sets.
pub const COOKIE_NAME: &str = "rvs_session";
/// The header a cookie-authenticated change must carry, equal to its session's CSRF value.
pub const CSRF_HEADER: &str = "x-rvs-csrf";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at once; the oldest goes first.
const MAX_SESSIONS: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// May look and change.
    Admin,
    /// May look only.
    ReadOnly,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::ReadOnly => "read-only",
        }
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No token, a wrong one, or no live session: 401.
    Unauthenticated,
    /// A read-only token or session asked for a change: 403.
    ReadOnly,
    /// A change through a session without its CSRF value: 403.
    Csrf,
}

struct Session {
    role: Role,
    csrf: String,
    expires: Instant,
}

/// The TCP listener's tokens and the live sessions.
pub struct Access {
    token: String,
    read_only_token: Option<String>,
    sessions: Mutex<HashMap<String, Session>>,
    /// Mark cookies `Secure` (the listener speaks TLS).
    secure: bool,
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `n` random bytes as hex, from the kernel's generator.
pub fn random_hex(n: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf));
    if read.is_err() {
        // Never a guessable value: refuse to make one.
        panic!("cannot read /dev/urandom for a session secret");
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}

impl Access {
    pub fn new(token: String, read_only_token: Option<String>) -> Self {
        Self { token, read_only_token, sessions: Mutex::new(HashMap::new()), secure: false }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The role a token gives.
    pub fn role_of_token(&self, given: &str) -> Option<Role> {
        if constant_time_eq(given.as_bytes(), self.token.as_bytes()) {
            return Some(Role::Admin);
        }
        self.read_only_token
            .as_deref()
            .filter(|t| constant_time_eq(given.as_bytes(), t.as_bytes()))
            .map(|_| Role::ReadOnly)
    }

    /// The session named by the request's cookie, if live: its role and CSRF value.
    pub fn session(&self, headers: &HeaderMap) -> Option<(Role, String)> {
        let id = session_cookie(headers)?;
        let mut sessions = self.sessions();
        let s = sessions.get(&id)?;
        if s.expires < Instant::now() {
            sessions.remove(&id);
            return None;
        }
        Some((s.role, s.csrf.clone()))
    }

    /// Who may do what the request asks: by bearer token, or by session cookie (whose changes
    /// must carry the session's CSRF value).
    pub fn authorize(&self, method: &Method, headers: &HeaderMap) -> Result<Role, Denied> {
        let bearer = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let role = match bearer {
            Some(t) => self.role_of_token(t).ok_or(Denied::Unauthenticated)?,
            None => {
                let (role, csrf) = self.session(headers).ok_or(Denied::Unauthenticated)?;
                if !safe(method) {
                    let given = headers.get(CSRF_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
                    if !constant_time_eq(given, csrf.as_bytes()) {
                        return Err(Denied::Csrf);
                    }
                }
                role
            }
        };
        if role == Role::ReadOnly && !safe(method) {
            return Err(Denied::ReadOnly);
        }
        Ok(role)
    }

    /// A new session for `role`: its id (the cookie's value) and CSRF value.
    pub fn login(&self, role: Role) -> (String, String) {
        let id = random_hex(32);
        let csrf = random_hex(16);
        let now = Instant::now();
        let mut sessions = self.sessions();
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| k.clone()) {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(id.clone(), Session { role, csrf: csrf.clone(), expires: now + SESSION_TTL });
        (id, csrf)
    }

    /// Ends the request's session, if it has one.
    pub fn logout(&self, headers: &HeaderMap) {
        if let Some(id) = session_cookie(headers) {
            self.sessions().remove(&id);
        }
    }

    /// The `Set-Cookie` value for session `id` (an empty id and no age: the cookie removed).
    pub fn cookie(&self, id: &str) -> String {
        let age = if id.is_empty() { 0 } else { SESSION_TTL.as_secs() };
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE_NAME}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={age}{secure}")
    }
}

/// The session id in the request's `Cookie` headers.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE_NAME)
        .map(|(_, v)| v.to_string())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn access() -> Access {
        Access::new("admin-token-0123456789".into(), Some("read-token-0123456789".into()))
    }

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn tokens_give_their_roles() {
        let a = access();
        let admin = headers(&[("authorization", "Bearer admin-token-0123456789".into())]);
        let ro = headers(&[("authorization", "Bearer read-token-0123456789".into())]);
        let bad = headers(&[("authorization", "Bearer nope".into())]);
        assert_eq!(a.authorize(&Method::PUT, &admin), Ok(Role::Admin));
        assert_eq!(a.authorize(&Method::GET, &ro), Ok(Role::ReadOnly));
        assert_eq!(a.authorize(&Method::PUT, &ro), Err(Denied::ReadOnly));
        assert_eq!(a.authorize(&Method::GET, &bad), Err(Denied::Unauthenticated));
        assert_eq!(a.authorize(&Method::GET, &HeaderMap::new()), Err(Denied::Unauthenticated));
    }

    #[test]
    fn a_session_changes_only_with_its_csrf_value() {
        let a = access();
        let (id, csrf) = a.login(Role::Admin);
        let cookie = ("cookie", format!("other=1; {COOKIE_NAME}={id}"));
        assert_eq!(a.authorize(&Method::GET, &headers(std::slice::from_ref(&cookie))), Ok(Role::Admin));
        assert_eq!(a.authorize(&Method::POST, &headers(std::slice::from_ref(&cookie))), Err(Denied::Csrf));
        let wrong = headers(&[cookie.clone(), (CSRF_HEADER, "00".into())]);
        assert_eq!(a.authorize(&Method::POST, &wrong), Err(Denied::Csrf));
        let right = headers(&[cookie.clone(), (CSRF_HEADER, csrf)]);
        assert_eq!(a.authorize(&Method::POST, &right), Ok(Role::Admin));
        a.logout(&right);
        assert_eq!(a.authorize(&Method::GET, &headers(&[cookie])), Err(Denied::Unauthenticated));
        assert!(a.cookie("x").contains("HttpOnly; SameSite=Strict"));
    }
}
