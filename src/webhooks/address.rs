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
    #[error("the host name could not be resolved")]
    Unresolvable,
    #[error("the host resolves to an address outside the allowed networks")]
    NotAllowed,
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

/// Adapts a [`Resolver`] to the HTTP client.
pub struct ClientResolver(pub Arc<dyn Resolver>);

impl reqwest::dns::Resolve for ClientResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = resolver.resolve(&host).await?;
            let addrs: Vec<SocketAddr> =
                addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect();
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The URL rules, with the networks the operator opened.
#[derive(Clone)]
pub struct AddressPolicy {
    pub allowed: Vec<IpNet>,
    pub resolver: Arc<dyn Resolver>,
}

impl AddressPolicy {
    fn inside(&self, ip: IpAddr) -> bool {
        self.allowed.iter().any(|net| net.contains(&ip))
    }

    /// Check a URL: its shape always, and for URLs that rely on an allowed
    /// network, that every address of the host is inside it.
    pub async fn check(&self, url: &str) -> Result<reqwest::Url, AddressError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| AddressError::Malformed)?;
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
            Some(url::Host::Domain(_)) => None,
            None => return Err(AddressError::Malformed),
        };
        match literal {
            Some(ip) if self.inside(ip) => Ok(parsed),
            Some(_) => Err(AddressError::IpLiteral),
            None if https => Ok(parsed),
            None if self.allowed.is_empty() => Err(AddressError::Scheme),
            None => {
                let host = parsed.host_str().unwrap_or_default();
                let addrs = self
                    .resolver
                    .resolve(host)
                    .await
                    .map_err(|_| AddressError::Unresolvable)?;
                if addrs.is_empty() {
                    return Err(AddressError::Unresolvable);
                }
                if addrs.iter().all(|ip| self.inside(*ip)) {
                    Ok(parsed)
                } else {
                    Err(AddressError::Scheme)
                }
            }
        }
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
