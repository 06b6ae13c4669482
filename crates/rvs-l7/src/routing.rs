//! Evaluating a rule's conditions against a request: the model's [`Match`] and [`Rule`] (data,
//! parsed and validated in rvs-model) tested on the parsed request head.

use rvs_model::http::{HostPattern, Match, PathPattern, Rule};

use crate::request_view::RequestView;

/// Whether the request meets every condition of the rule.
pub(crate) fn rule_matches(rule: &Rule, req: &RequestView<'_>) -> bool {
    rule.matches.iter().all(|m| meets(m, req))
}

/// Whether the request meets this condition.
pub(crate) fn meets(m: &Match, req: &RequestView<'_>) -> bool {
    match m {
        Match::Host(HostPattern::Exact(h)) => req.host.is_some_and(|host| host.eq_ignore_ascii_case(h)),
        Match::Host(HostPattern::Suffix(s)) => req.host.is_some_and(|host| {
            host.len() > s.len() && host.as_bytes()[host.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
        }),
        Match::Path(PathPattern::Prefix(p)) => req.path.starts_with(p.as_str()),
        Match::Path(PathPattern::Exact(p)) => req.path == p,
        Match::Path(PathPattern::Regex(p)) => p.is_match(req.path.as_bytes()),
        Match::Method(me) => req.method == me,
        Match::Header { name, value } => req.header_values(name).any(|v| value.test(v)),
        Match::Query { name, value } => req.query_param(name).is_some_and(|v| value.test(v)),
        Match::Cookie { name, value } => req.cookie(name).is_some_and(|v| value.test(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use httparse::Header;
    use rvs_model::http::ValuePattern;

    fn req<'a>(
        host: Option<&'a str>,
        path: &'a str,
        query: Option<&'a str>,
        headers: &'a [Header<'a>],
    ) -> RequestView<'a> {
        RequestView { method: "GET", target: path, host, path, query, headers }
    }

    #[test]
    fn host_exact_and_wildcard() {
        let exact = Match::host("WWW.Example.com").unwrap();
        let wild = Match::host("*.example.com").unwrap();
        assert!(meets(&exact, &req(Some("www.EXAMPLE.com"), "/", None, &[])));
        assert!(!meets(&exact, &req(Some("example.com"), "/", None, &[])));
        assert!(meets(&wild, &req(Some("a.b.example.com"), "/", None, &[])));
        assert!(!meets(&wild, &req(Some("example.com"), "/", None, &[])));
        assert!(!meets(&wild, &req(Some("badexample.com"), "/", None, &[])));
        assert!(!meets(&wild, &req(None, "/", None, &[])));
    }

    #[test]
    fn paths() {
        let pre = Match::path_prefix("/api/").unwrap();
        assert!(meets(&pre, &req(None, "/api/v1", None, &[])));
        assert!(!meets(&pre, &req(None, "/apix", None, &[])));
        let ex = Match::path_exact("/login").unwrap();
        assert!(meets(&ex, &req(None, "/login", None, &[])));
        assert!(!meets(&ex, &req(None, "/login/", None, &[])));
        let re = Match::path_regex(r"^/v[0-9]+/").unwrap();
        assert!(meets(&re, &req(None, "/v2/x", None, &[])));
    }

    #[test]
    fn headers_queries_cookies() {
        let h = [Header { name: "X-Env", value: b"prod" }, Header { name: "Cookie", value: b"tier=gold" }];
        let r = req(None, "/", Some("debug=1"), &h);
        let m = |m: Result<Match, _>| meets(&m.unwrap(), &r);
        assert!(m(Match::header("x-env", ValuePattern::Present)));
        assert!(m(Match::header("X-ENV", ValuePattern::exact("prod").unwrap())));
        assert!(!m(Match::header("X-ENV", ValuePattern::exact("Prod").unwrap())));
        assert!(m(Match::header("x-env", ValuePattern::regex("^pr").unwrap())));
        assert!(m(Match::query("debug", ValuePattern::exact("1").unwrap())));
        assert!(!m(Match::query("nodebug", ValuePattern::Present)));
        assert!(m(Match::cookie("tier", ValuePattern::exact("gold").unwrap())));
    }

    #[test]
    fn a_rule_needs_all_its_conditions() {
        let r = Rule::parse("api", &["host=*.example.com", "path^=/api/"], "api-pool").unwrap();
        assert!(rule_matches(&r, &req(Some("www.example.com"), "/api/x", None, &[])));
        assert!(!rule_matches(&r, &req(Some("www.example.com"), "/web", None, &[])));
    }
}
