//! Addresses webhooks must never reach unless the operator opened their
//! network: everything that is not ordinary public unicast. IPv6 forms that
//! embed an IPv4 address (6to4, NAT64) are judged by the embedded address;
//! IPv4-mapped and -compatible forms are refused outright.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

const V4: &[(&str, &str)] = &[
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared_address_space"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link_local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "protocol_assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "relay_anycast"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
];

const V6: &[(&str, &str)] = &[
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::ffff:0:0/96", "ipv4_mapped"),
    ("::/96", "ipv4_compatible"),
    ("64:ff9b:1::/48", "nat64_local"),
    ("100::/64", "discard"),
    ("2001::/32", "teredo"),
    ("2001:2::/48", "benchmarking"),
    ("2001:10::/28", "orchid"),
    ("2001:20::/28", "orchid"),
    ("2001:db8::/32", "documentation"),
    ("fc00::/7", "unique_local"),
    ("fe80::/10", "link_local"),
    ("fec0::/10", "site_local"),
    ("ff00::/8", "multicast"),
];

fn v4_table() -> &'static [(Ipv4Net, &'static str)] {
    static TABLE: OnceLock<Vec<(Ipv4Net, &'static str)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        V4.iter()
            .map(|(net, why)| (net.parse().expect("a valid network"), *why))
            .collect()
    })
}

fn v6_table() -> &'static [(Ipv6Net, &'static str)] {
    static TABLE: OnceLock<Vec<(Ipv6Net, &'static str)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        V6.iter()
            .map(|(net, why)| (net.parse().expect("a valid network"), *why))
            .collect()
    })
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    v4_table()
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, why)| *why)
}

/// The IPv4 address an IPv6 address carries by translation (NAT64
/// `64:ff9b::/96`, 6to4 `2002::/16`), if any.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let nat64: Ipv6Net = "64:ff9b::/96".parse().expect("a valid network");
    if nat64.contains(&ip) {
        return Some(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ));
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

/// Why `ip` must not be reached, or `None` for public unicast.
pub fn denied(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => {
            if let Some(why) = v6_table()
                .iter()
                .find(|(net, _)| net.contains(&v6))
                .map(|(_, why)| *why)
            {
                return Some(why);
            }
            embedded_v4(v6).and_then(v4_reason)
        }
    }
}

/// Whether `ip` is inside one of `allowed`.
pub fn inside(allowed: &[IpNet], ip: IpAddr) -> bool {
    allowed.iter().any(|net| net.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_non_public_address_is_denied() {
        for (text, why) in [
            ("0.0.0.0", "unspecified"),
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.31.255.255", "private"),
            ("192.168.0.1", "private"),
            ("100.64.0.1", "shared_address_space"),
            ("169.254.169.254", "link_local"),
            ("224.0.0.251", "multicast"),
            ("255.255.255.255", "reserved"),
            ("192.0.2.1", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "ipv4_mapped"),
            ("::ffff:8.8.8.8", "ipv4_mapped"),
            ("::127.0.0.1", "ipv4_compatible"),
            ("fe80::1", "link_local"),
            ("fd00:ec2::254", "unique_local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("64:ff9b::a9fe:a9fe", "link_local"),
            ("64:ff9b::7f00:1", "loopback"),
            ("2002:c0a8:0101::1", "private"),
            ("2002:7f00:0001::", "loopback"),
            ("2001:0:4136:e378::1", "teredo"),
        ] {
            assert_eq!(denied(text.parse().unwrap()), Some(why), "{text}");
        }
        for public in [
            "8.8.8.8",
            "93.184.216.34",
            "2606:4700:4700::1111",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
            assert_eq!(denied(public.parse().unwrap()), None, "{public}");
        }
    }
}
