//! Where the operator may connect for `spec.elasticsearch.url` (`--es-allow`, `--es-deny`,
//! `--eck-only`).
//!
//! Whoever may create an InferenceEndpoint chooses the URL, and the operator connects from its
//! own network position: without a policy that is a way to reach cloud metadata services and
//! internal servers. The checks here are pure; [`resolve`] does the DNS lookup, and the
//! connection is then pinned to the addresses that were checked (so a DNS answer that changes
//! between check and connect, "DNS rebinding", cannot redirect it).
//!
//! Rule syntax (comma-separated in the flags):
//! * an IP address or CIDR (`10.0.0.0/8`, `fd00::/8`, `192.0.2.7`): matched against every
//!   address the URL's host resolves to (IPv4-mapped IPv6 addresses count as IPv4);
//! * a host name (`es.example.com`) or a suffix pattern (`*.example.com`, which matches
//!   `a.example.com` and `a.b.example.com` but not `example.com`): matched against the URL's
//!   host, case-insensitively.
//!
//! A URL is allowed when no deny rule matches (neither its host nor any resolved address) and,
//! if allow rules are given, its host matches an allow host rule or every resolved address lies
//! in an allow CIDR. Deny wins over allow.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use url::{Host, Url};

/// Link-local ranges and the cloud metadata services: AWS, Azure, GCP, Oracle, DigitalOcean
/// (169.254.169.254, inside 169.254.0.0/16), AWS IPv6 (fd00:ec2::254), Alibaba
/// (100.100.100.200), GCP's names for it (metadata.google.internal, metadata.goog, metadata).
pub const DEFAULT_DENY: &str = "169.254.0.0/16,fe80::/10,fd00:ec2::254/128,100.100.100.200/32,\
                                metadata.google.internal,metadata.goog,metadata";

/// Longest a DNS lookup for a connection may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// One allow or deny rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    Net(IpNet),
    Host(String),
    /// `*.example.com`, stored as `.example.com`.
    Suffix(String),
}

impl FromStr for Rule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Ok(net) = IpNet::from_str(text) {
            return Ok(Rule::Net(net.trunc()));
        }
        if let Ok(ip) = IpAddr::from_str(text) {
            return Ok(Rule::Net(IpNet::from(ip)));
        }
        let host = text.trim_end_matches('.').to_ascii_lowercase();
        let (suffix, name) = match host.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, host.as_str()),
        };
        let valid = !name.is_empty()
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            return Err(format!(
                "{text:?} is neither an IP address, a CIDR, a host name nor *.domain"
            ));
        }
        Ok(if suffix {
            Rule::Suffix(format!(".{name}"))
        } else {
            Rule::Host(name.to_owned())
        })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Net(net) => write!(f, "{net}"),
            Rule::Host(host) => f.write_str(host),
            Rule::Suffix(suffix) => write!(f, "*{suffix}"),
        }
    }
}

impl Rule {
    fn matches_host(&self, host: &str) -> bool {
        match self {
            Rule::Host(name) => host == name,
            Rule::Suffix(suffix) => host.ends_with(suffix.as_str()),
            Rule::Net(_) => false,
        }
    }

    fn matches_ip(&self, ip: IpAddr) -> bool {
        let Rule::Net(net) = self else { return false };
        net.contains(&ip) || canonical(ip).is_some_and(|v4| net.contains(&v4))
    }
}

/// The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:169.254.169.254`).
fn canonical(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
        IpAddr::V4(_) => None,
    }
}

/// Parse a comma-separated rule list (empty items are ignored).
pub fn parse_rules(text: &str) -> Result<Vec<Rule>, String> {
    text.split(',')
        .filter(|item| !item.trim().is_empty())
        .map(Rule::from_str)
        .collect()
}

/// The operator's policy for `spec.elasticsearch.url`: part of the command line
/// ([`crate::controller::Config`]), where its defaults are written.
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct DestinationPolicy {
    /// Where `spec.elasticsearch.url` may point: comma-separated IPs, CIDRs, host names and
    /// `*.domain` patterns (default: anywhere not denied).
    // `::std::vec::Vec`: one flag value holds the whole list (clap would otherwise take one
    // rule per value).
    #[arg(long = "es-allow", env = "INFERENCE_OPERATOR_ES_ALLOW", value_name = "ES_ALLOW", default_value = "", value_parser = parse_rules)]
    pub allow: ::std::vec::Vec<Rule>,
    /// Destinations `spec.elasticsearch.url` may never reach, same syntax as --es-allow; checked
    /// against every address the host resolves to. Default: link-local and cloud metadata.
    #[arg(long = "es-deny", env = "INFERENCE_OPERATOR_ES_DENY", value_name = "ES_DENY", default_value = DEFAULT_DENY, value_parser = parse_rules)]
    pub deny: ::std::vec::Vec<Rule>,
    /// Refuse every `spec.elasticsearch`: only `elasticsearchRef` (ECK) connections.
    #[arg(long = "eck-only", env = "INFERENCE_OPERATOR_ECK_ONLY")]
    pub eck_only: bool,
}

impl Default for DestinationPolicy {
    fn default() -> Self {
        crate::controller::defaults()
    }
}

/// Why a URL is refused; the message names the rule and the flag that holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal(pub String);

/// What the host check decided before any DNS lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostCheck {
    /// Allowed by name; resolved addresses still face the deny list.
    AllowedByName,
    /// The addresses decide (allow CIDRs, or no allow list at all).
    NeedsAddresses,
}

/// The URL's host in the form rules match: lowercase, without a trailing dot or IPv6 brackets.
pub fn host_of(url: &Url) -> Option<String> {
    match url.host()? {
        Host::Domain(domain) => Some(domain.trim_end_matches('.').to_ascii_lowercase()),
        Host::Ipv4(ip) => Some(ip.to_string()),
        Host::Ipv6(ip) => Some(ip.to_string()),
    }
}

impl DestinationPolicy {
    /// Checks that need no DNS: ECK-only mode, the host name rules, and an IP address given
    /// in the URL itself.
    pub fn check_host(&self, host: &str) -> Result<HostCheck, Refusal> {
        if self.eck_only {
            return Err(Refusal(
                "the operator runs with --eck-only: only spec.elasticsearchRef (ECK) connections are allowed, spec.elasticsearch is refused".to_owned(),
            ));
        }
        if let Some(rule) = self.deny.iter().find(|r| r.matches_host(host)) {
            return Err(Refusal(format!(
                "host {host:?} matches the operator's --es-deny rule {rule}; nothing was sent to it"
            )));
        }
        if self.allow.iter().any(|r| r.matches_host(host)) {
            return Ok(HostCheck::AllowedByName);
        }
        // An address in the URL is decided here, without waiting for a lookup.
        if let Ok(ip) = IpAddr::from_str(host) {
            self.check_addresses(host, &HostCheck::NeedsAddresses, &[ip])?;
        }
        Ok(HostCheck::NeedsAddresses)
    }

    /// Checks every address `host` resolved to.
    pub fn check_addresses(
        &self,
        host: &str,
        by_name: &HostCheck,
        addresses: &[IpAddr],
    ) -> Result<(), Refusal> {
        for ip in addresses {
            if let Some(rule) = self.deny.iter().find(|r| r.matches_ip(*ip)) {
                return Err(Refusal(format!(
                    "host {host:?} resolves to {ip}, which the operator's --es-deny rule {rule} refuses; nothing was sent to it"
                )));
            }
        }
        if self.allow.is_empty() || *by_name == HostCheck::AllowedByName {
            return Ok(());
        }
        if let Some(ip) = addresses
            .iter()
            .find(|ip| !self.allow.iter().any(|r| r.matches_ip(**ip)))
        {
            let rules: Vec<String> = self.allow.iter().map(Rule::to_string).collect();
            return Err(Refusal(format!(
                "host {host:?} ({ip}) is not in the operator's --es-allow list ({}); nothing was sent to it",
                rules.join(", ")
            )));
        }
        Ok(())
    }
}

/// Resolve `host` (an IP literal resolves to itself) to the addresses to connect to.
pub async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = IpAddr::from_str(host) {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let lookup = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port)));
    match lookup.await {
        Err(_) => Err(format!("resolving host {host:?} timed out")),
        Ok(Err(_)) => Err(format!("host {host:?} could not be resolved")),
        Ok(Ok(addresses)) => {
            let addresses: Vec<SocketAddr> = addresses.collect();
            if addresses.is_empty() {
                Err(format!("host {host:?} resolved to no address"))
            } else {
                Ok(addresses)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn policy(allow: &str, deny: &str) -> DestinationPolicy {
        DestinationPolicy {
            allow: parse_rules(allow).unwrap(),
            deny: parse_rules(deny).unwrap(),
            eck_only: false,
        }
    }

    fn allowed(policy: &DestinationPolicy, host: &str, addresses: &[&str]) -> Result<(), Refusal> {
        let by_name = policy.check_host(host)?;
        let addresses: Vec<IpAddr> = addresses.iter().map(|a| ip(a)).collect();
        policy.check_addresses(host, &by_name, &addresses)
    }

    #[test]
    fn rules_parse_addresses_cidrs_hosts_and_suffixes() {
        assert_eq!(
            parse_rules("10.0.0.0/8, 192.0.2.7,fd00::/8,ES.Example.com.,*.svc,,").unwrap(),
            [
                Rule::Net("10.0.0.0/8".parse().unwrap()),
                Rule::Net("192.0.2.7/32".parse().unwrap()),
                Rule::Net("fd00::/8".parse().unwrap()),
                Rule::Host("es.example.com".into()),
                Rule::Suffix(".svc".into()),
            ]
        );
        // Host bits are dropped, as a CIDR means a network.
        assert_eq!(
            parse_rules("10.1.2.3/8").unwrap(),
            [Rule::Net("10.0.0.0/8".parse().unwrap())]
        );
        for bad in ["10.0.0.0/33", "http://es:9200", "*.", "a..b", "es/x"] {
            assert!(parse_rules(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_rules("*.svc").unwrap()[0].to_string(), "*.svc");
    }

    #[test]
    fn the_default_refuses_metadata_and_link_local_and_allows_the_rest() {
        let default = DestinationPolicy::default();
        for (host, address) in [
            ("169.254.169.254", "169.254.169.254"),
            ("evil.example", "169.254.169.254"),
            ("evil.example", "169.254.10.1"),
            ("evil.example", "::ffff:169.254.169.254"),
            ("evil.example", "fe80::1"),
            ("evil.example", "fd00:ec2::254"),
            ("evil.example", "100.100.100.200"),
        ] {
            let refusal = allowed(&default, host, &[address]).unwrap_err();
            assert!(refusal.0.contains("--es-deny"), "{refusal:?}");
        }
        // An address in the URL is refused before any lookup.
        assert!(default.check_host("169.254.169.254").is_err());
        assert!(default.check_host("fe80::1").is_err());
        for host in ["metadata.google.internal", "METADATA.goog", "metadata"] {
            assert!(
                default.check_host(&host.to_ascii_lowercase()).is_err(),
                "{host}"
            );
        }
        assert!(allowed(&default, "es.example.svc", &["10.0.0.5"]).is_ok());
        assert!(allowed(&default, "localhost", &["127.0.0.1", "::1"]).is_ok());
        // One bad address among good ones is enough to refuse.
        assert!(allowed(&default, "mixed.example", &["10.0.0.5", "169.254.169.254"]).is_err());
    }

    #[test]
    fn an_allow_list_admits_matching_hosts_or_addresses_only() {
        let p = policy("*.es.corp.example,10.0.0.0/8", DEFAULT_DENY);
        assert!(allowed(&p, "a.es.corp.example", &["192.0.2.1"]).is_ok());
        assert!(allowed(&p, "a.b.es.corp.example", &["192.0.2.1"]).is_ok());
        assert!(allowed(&p, "internal.example", &["10.1.2.3"]).is_ok());
        let refused = allowed(&p, "es.corp.example", &["192.0.2.1"]).unwrap_err();
        assert!(
            refused.0.contains("--es-allow") && refused.0.contains("*.es.corp.example, 10.0.0.0/8"),
            "{refused:?}"
        );
        // Every address must be allowed, and deny wins over an allowed name.
        assert!(allowed(&p, "internal.example", &["10.1.2.3", "192.0.2.1"]).is_err());
        assert!(allowed(&p, "x.es.corp.example", &["169.254.169.254"]).is_err());
    }

    #[test]
    fn eck_only_refuses_every_direct_url() {
        let p = DestinationPolicy {
            eck_only: true,
            ..DestinationPolicy::default()
        };
        assert!(p
            .check_host("es.example.svc")
            .unwrap_err()
            .0
            .contains("--eck-only"));
    }

    #[test]
    fn hosts_are_compared_in_canonical_form() {
        let url = Url::parse("https://ES.Example.COM.:9200/").unwrap();
        assert_eq!(host_of(&url).as_deref(), Some("es.example.com"));
        let url = Url::parse("http://[fe80::1]:9200/").unwrap();
        assert_eq!(host_of(&url).as_deref(), Some("fe80::1"));
        // The URL parser normalises numeric IPv4 forms, so 0xA9FEA9FE is 169.254.169.254.
        let url = Url::parse("http://0xA9FEA9FE/").unwrap();
        assert_eq!(host_of(&url).as_deref(), Some("169.254.169.254"));
    }

    #[tokio::test]
    async fn ip_literals_resolve_to_themselves() {
        assert_eq!(
            resolve("127.0.0.1", 9200).await.unwrap(),
            ["127.0.0.1:9200".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(
            resolve("::1", 9200).await.unwrap(),
            ["[::1]:9200".parse::<SocketAddr>().unwrap()]
        );
    }
}
