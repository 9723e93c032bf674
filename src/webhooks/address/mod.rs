//! Where webhooks may go: the endpoint URL rules and name resolution.
//!
//! An endpoint URL is `https://` with a host name. Networks opened with
//! `--endpoint-allow CIDR` also accept plain `http://` and IP literals; a
//! name counts as inside them only if every address it resolves to is
//! (checked when the endpoint is saved and at every attempt). Names are
//! resolved through the [`Resolver`] the server is given, so tests can use a
//! fixed map and never query a real DNS server.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use ipnet::IpNet;
use thiserror::Error;

mod deny;
pub use deny::denied;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AddressError {
    #[error("the URL is not a valid absolute URL")]
    Malformed,
    #[error("the URL must use https (plain http only to networks allowed with --endpoint-allow)")]
    Scheme,
    #[error(
        "the URL must name a host; IP addresses are allowed only inside --endpoint-allow networks"
    )]
    IpLiteral,
    #[error("the URL must not contain a user name or password")]
    UserInfo,
    #[error(
        "the host must be a fully qualified name (with a dot), not a single label like `localhost`"
    )]
    SingleLabel,
    #[error("the host name could not be resolved")]
    Unresolvable,
}

/// Turns host names into addresses.
#[async_trait]
pub trait Resolver: Send + Sync {
    async fn resolve(&self, host: &str) -> std::io::Result<Vec<IpAddr>>;
}

/// The operating system's resolver.
pub struct SystemResolver;

#[async_trait]
impl Resolver for SystemResolver {
    async fn resolve(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        let addrs = tokio::net::lookup_host((host, 0)).await?;
        Ok(addrs.map(|a| a.ip()).collect())
    }
}

/// A fixed map of names to addresses (`--resolve NAME=IP`, tests); names
/// not in the map fall through to `fallback`, or fail when there is none.
pub struct StaticResolver {
    pub names: HashMap<String, Vec<IpAddr>>,
    pub fallback: Option<Arc<dyn Resolver>>,
}

#[async_trait]
impl Resolver for StaticResolver {
    async fn resolve(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        if let Some(addrs) = self.names.get(&host.to_ascii_lowercase()) {
            return Ok(addrs.clone());
        }
        match &self.fallback {
            Some(fallback) => fallback.resolve(host).await,
            None => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "name not in the resolver's map",
            )),
        }
    }
}

/// An address the guard refused; the HTTP client reports it as the cause of
/// a failed connection (error kind `address_not_allowed`).
#[derive(Debug, Error)]
#[error("the host resolves to an address that is not allowed ({0})")]
pub struct AddressRefused(pub &'static str);

/// The resolver the HTTP client uses: resolves once, checks every address,
/// and hands the client only checked addresses, so it connects to exactly
/// what was checked (no second lookup, nothing for DNS rebinding to swap).
pub struct GuardedResolver {
    pub policy: AddressPolicy,
    /// For plain-http URLs: every address must be inside an allowed network.
    pub inside_only: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let inside_only = self.inside_only;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = policy.resolver.resolve(&host).await?;
            if addrs.is_empty() {
                return Err("the name has no addresses".into());
            }
            for ip in &addrs {
                if let Err(why) = policy.permits(*ip, inside_only) {
                    return Err(
                        Box::new(AddressRefused(why)) as Box<dyn std::error::Error + Send + Sync>
                    );
                }
            }
            let addrs: Vec<SocketAddr> =
                addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect();
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A URL that passed the shape rules.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL, fragment removed.
    pub url: reqwest::Url,
    /// Plain http: only allowed networks may be reached.
    pub inside_only: bool,
}

/// The URL rules, with the networks the operator opened.
#[derive(Clone)]
pub struct AddressPolicy {
    pub allowed: Vec<IpNet>,
    pub resolver: Arc<dyn Resolver>,
}

impl AddressPolicy {
    /// Whether a connection to `ip` is allowed: inside an opened network,
    /// or (unless `inside_only`) an ordinary public address.
    pub fn permits(&self, ip: IpAddr, inside_only: bool) -> Result<(), &'static str> {
        if deny::inside(&self.allowed, ip) {
            return Ok(());
        }
        if inside_only {
            return Err("outside_allowed_networks");
        }
        match deny::denied(ip) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// The shape rules, without resolving: https with a host name; plain
    /// http and IP literals (in any spelling, which the URL parser
    /// normalises) only inside allowed networks; no user name or password.
    pub fn shape(&self, url: &str) -> Result<Target, AddressError> {
        let mut parsed = reqwest::Url::parse(url.trim()).map_err(|_| AddressError::Malformed)?;
        parsed.set_fragment(None);
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(AddressError::UserInfo);
        }
        let https = match parsed.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(AddressError::Scheme),
        };
        let literal = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(url::Host::Domain("")) => return Err(AddressError::Malformed),
            Some(url::Host::Domain(name)) if !name.trim_end_matches('.').contains('.') => {
                return Err(AddressError::SingleLabel);
            }
            Some(url::Host::Domain(_)) => None,
            None => return Err(AddressError::Malformed),
        };
        match literal {
            Some(ip) if deny::inside(&self.allowed, ip) => {}
            Some(_) => return Err(AddressError::IpLiteral),
            None if !https && self.allowed.is_empty() => return Err(AddressError::Scheme),
            None => {}
        }
        Ok(Target {
            url: parsed,
            inside_only: !https,
        })
    }

    /// The rules applied when an endpoint is saved: the shape, and for a
    /// plain-http name, that every address it resolves to is inside an
    /// allowed network. Returns the URL to store (fragment removed).
    pub async fn check(&self, url: &str) -> Result<reqwest::Url, AddressError> {
        let target = self.shape(url)?;
        if target.inside_only && matches!(target.url.host(), Some(url::Host::Domain(_))) {
            let host = target.url.host_str().unwrap_or_default();
            let addrs = self
                .resolver
                .resolve(host)
                .await
                .map_err(|_| AddressError::Unresolvable)?;
            if addrs.is_empty() {
                return Err(AddressError::Unresolvable);
            }
            if !addrs.iter().all(|ip| deny::inside(&self.allowed, *ip)) {
                return Err(AddressError::Scheme);
            }
        }
        Ok(target.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str]) -> AddressPolicy {
        let mut names = HashMap::new();
        names.insert("hooks.test".to_owned(), vec!["127.0.0.5".parse().unwrap()]);
        names.insert(
            "mixed.test".to_owned(),
            vec!["127.0.0.5".parse().unwrap(), "10.0.0.1".parse().unwrap()],
        );
        AddressPolicy {
            allowed: allowed.iter().map(|n| n.parse().unwrap()).collect(),
            resolver: Arc::new(StaticResolver {
                names,
                fallback: None,
            }),
        }
    }

    #[tokio::test]
    async fn https_names_pass_and_everything_else_needs_an_allowed_network() {
        let closed = policy(&[]);
        assert!(closed.check("https://hooks.example/x").await.is_ok());
        assert_eq!(
            closed.check("http://hooks.example/x").await.unwrap_err(),
            AddressError::Scheme
        );
        assert_eq!(
            closed.check("https://127.0.0.1/x").await.unwrap_err(),
            AddressError::IpLiteral
        );
        assert_eq!(
            closed.check("https://[::1]/x").await.unwrap_err(),
            AddressError::IpLiteral
        );
        assert_eq!(
            closed.check("ftp://hooks.example/").await.unwrap_err(),
            AddressError::Scheme
        );
        assert_eq!(
            closed
                .check("https://u:p@hooks.example/")
                .await
                .unwrap_err(),
            AddressError::UserInfo
        );
        assert_eq!(
            closed.check("not a url").await.unwrap_err(),
            AddressError::Malformed
        );
        let open = policy(&["127.0.0.0/8"]);
        assert!(open.check("http://127.0.0.1:9/x").await.is_ok());
        assert!(open.check("http://hooks.test:9/x").await.is_ok());
        assert_eq!(
            open.check("http://mixed.test/x").await.unwrap_err(),
            AddressError::Scheme
        );
        assert_eq!(
            open.check("https://10.0.0.1/x").await.unwrap_err(),
            AddressError::IpLiteral
        );
    }
}
