//! Address-based access rules (`--allow CIDR`, `--deny CIDR`, `--deny-file`), as nginx's
//! `allow` and `deny`.
//!
//! Key decision: nginx's semantics exactly. Rules are checked in the order given and the first
//! that matches decides; a client no rule matches is allowed, so an allow-list ends with
//! `deny all`. Clients connecting over IPv6 with an IPv4-mapped address (`::ffff:1.2.3.4`, as
//! dual-stack sockets report IPv4 peers) are matched as the IPv4 address, against IPv4 rules
//! only. Rules are prefix/mask pairs matched by a linear scan, which allocates nothing and costs
//! a few nanoseconds per rule once per connection.

use std::net::IpAddr;

/// What a matching rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Let the client in (`allow`).
    Allow,
    /// Refuse the client (`deny`).
    Deny,
}

/// An address range: `all`, an IPv4 CIDR or an IPv6 CIDR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cidr {
    /// Every address (`all`).
    All,
    /// IPv4 addresses whose top bits equal `addr`'s under `mask`.
    V4 {
        /// Network address, host bits cleared.
        addr: u32,
        /// Netmask.
        mask: u32,
    },
    /// IPv6 addresses whose top bits equal `addr`'s under `mask`.
    V6 {
        /// Network address, host bits cleared.
        addr: u128,
        /// Netmask.
        mask: u128,
    },
}

impl Cidr {
    /// Parses `all`, `ADDR` (a single address: /32 or /128) or `ADDR/PREFIX`. As in nginx, host
    /// bits set below the prefix (`10.0.0.1/8`) are ignored.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        if s == "all" {
            return Ok(Cidr::All);
        }
        let err = || format!("invalid address or CIDR {s:?} (expected e.g. 10.0.0.0/8, ::1, all)");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                (a, Some(p.parse::<u32>().map_err(|_| err())?))
            }
            Some(_) => return Err(err()),
            None => (s, None),
        };
        match addr.parse::<IpAddr>().map_err(|_| err())? {
            IpAddr::V4(a) => {
                let bits = prefix.unwrap_or(32);
                if bits > 32 {
                    return Err(err());
                }
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                Ok(Cidr::V4 {
                    addr: u32::from(a) & mask,
                    mask,
                })
            }
            IpAddr::V6(a) => {
                let bits = prefix.unwrap_or(128);
                if bits > 128 {
                    return Err(err());
                }
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                Ok(Cidr::V6 {
                    addr: u128::from(a) & mask,
                    mask,
                })
            }
        }
    }

    /// Whether `ip` lies in the range; IPv4-mapped IPv6 addresses count as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (*self, ip.to_canonical()) {
            (Cidr::All, _) => true,
            (Cidr::V4 { addr, mask }, IpAddr::V4(a)) => u32::from(a) & mask == addr,
            (Cidr::V6 { addr, mask }, IpAddr::V6(a)) => u128::from(a) & mask == addr,
            _ => false,
        }
    }
}

/// One `allow` or `deny` rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// What the rule does to a matching client.
    pub action: Action,
    /// Which clients it matches.
    pub cidr: Cidr,
}

/// An ordered list of rules; the first match decides, no match allows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    rules: Vec<Rule>,
}

impl Rules {
    /// Parses rules in command-line order, e.g. `[(Allow, "10.0.0.0/8"), (Deny, "all")]`.
    pub fn parse<'a>(items: impl IntoIterator<Item = (Action, &'a str)>) -> Result<Rules, String> {
        let rules = items
            .into_iter()
            .map(|(action, s)| Cidr::parse(s).map(|cidr| Rule { action, cidr }))
            .collect::<Result<_, _>>()?;
        Ok(Rules { rules })
    }

    /// Appends rules after the existing ones (e.g. those of a deny file).
    pub fn extend(&mut self, rules: impl IntoIterator<Item = Rule>) {
        self.rules.extend(rules);
    }

    /// The rules in matching order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether there are no rules, so that every client is allowed.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether a client at `ip` may connect.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.rules
            .iter()
            .find(|r| r.cidr.contains(ip))
            .is_none_or(|r| r.action == Action::Allow)
    }
}

/// Parses the contents of a deny file: one address or CIDR per line, each a `deny` rule;
/// blank lines and `#` comments (whole-line or trailing) are skipped. Errors name the line.
pub fn load_deny_file(contents: &str) -> Result<Vec<Rule>, String> {
    contents
        .lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let line = line.split_once('#').map_or(line, |(l, _)| l).trim();
            (!line.is_empty()).then_some((i, line))
        })
        .map(|(i, line)| {
            Cidr::parse(line)
                .map(|cidr| Rule {
                    action: Action::Deny,
                    cidr,
                })
                .map_err(|e| format!("line {}: {e}", i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::{Allow, Deny};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_cidrs() {
        assert_eq!(Cidr::parse("all"), Ok(Cidr::All));
        assert_eq!(
            Cidr::parse("10.1.2.3/8"),
            Ok(Cidr::V4 {
                addr: 0x0a00_0000,
                mask: 0xff00_0000
            })
        );
        assert_eq!(
            Cidr::parse("192.0.2.1"),
            Ok(Cidr::V4 {
                addr: 0xc000_0201,
                mask: u32::MAX
            })
        );
        assert_eq!(Cidr::parse("0.0.0.0/0"), Ok(Cidr::V4 { addr: 0, mask: 0 }));
        assert_eq!(
            Cidr::parse("::1"),
            Ok(Cidr::V6 {
                addr: 1,
                mask: u128::MAX
            })
        );
        assert_eq!(Cidr::parse("::/0"), Ok(Cidr::V6 { addr: 0, mask: 0 }));
        for s in [
            "",
            "All",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0/8",
            "1.2.3.4/8/8",
            "[::1]",
            "fe80::1%eth0",
            "10.0.0.0/99999999999",
            " 10.0.0.1",
            "é",
        ] {
            assert!(Cidr::parse(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn matches_prefixes() {
        let c = Cidr::parse("2001:db8::/32").unwrap();
        assert!(c.contains(ip("2001:db8:ffff::1")));
        assert!(!c.contains(ip("2001:db9::1")));
        assert!(!c.contains(ip("10.0.0.1")));
        let c = Cidr::parse("172.16.0.0/12").unwrap();
        assert!(c.contains(ip("172.31.255.255")));
        assert!(!c.contains(ip("172.32.0.0")));
        assert!(!c.contains(ip("2001:db8::1")));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains(ip("255.255.255.255")));
        assert!(!Cidr::parse("0.0.0.0/0").unwrap().contains(ip("::2")));
    }

    #[test]
    fn mapped_clients_match_ipv4_rules() {
        let c = Cidr::parse("1.2.3.0/24").unwrap();
        assert!(c.contains(ip("::ffff:1.2.3.4")));
        assert!(!Cidr::parse("::/0").unwrap().contains(ip("::ffff:1.2.3.4")));
    }

    #[test]
    fn first_match_wins_and_default_allows() {
        let rules = Rules::parse([
            (Deny, "192.168.1.1"),
            (Allow, "192.168.1.0/24"),
            (Allow, "2001:db8::/32"),
            (Deny, "all"),
        ])
        .unwrap();
        assert!(!rules.allows(ip("192.168.1.1")));
        assert!(rules.allows(ip("192.168.1.2")));
        assert!(rules.allows(ip("::ffff:192.168.1.2")));
        assert!(rules.allows(ip("2001:db8::5")));
        assert!(!rules.allows(ip("10.0.0.1")));
        assert!(!rules.allows(ip("::1")));
        assert_eq!(rules.rules().len(), 4);

        assert!(Rules::default().allows(ip("10.0.0.1")));
        let deny_one = Rules::parse([(Deny, "10.0.0.1")]).unwrap();
        assert!(!deny_one.allows(ip("10.0.0.1")));
        assert!(deny_one.allows(ip("10.0.0.2")));
        assert!(Rules::parse([(Allow, "10.0.0.0/8"), (Deny, "nope")]).is_err());
    }

    #[test]
    fn deny_files() {
        let rules = load_deny_file(
            "# bad actors\n\n203.0.113.0/24\n  2001:db8::/48  # a whole site\r\n198.51.100.7\n   \n",
        )
        .unwrap();
        assert_eq!(rules.len(), 3);
        assert!(rules.iter().all(|r| r.action == Deny));
        let mut all = Rules::parse([(Allow, "203.0.113.9")]).unwrap();
        all.extend(rules);
        assert!(all.allows(ip("203.0.113.9")));
        assert!(!all.allows(ip("203.0.113.10")));
        assert!(!all.allows(ip("2001:db8:0:ffff::1")));
        assert!(all.allows(ip("2001:db8:1::1")));
        assert!(!all.allows(ip("198.51.100.7")));
        assert!(!all.is_empty());

        assert_eq!(load_deny_file(""), Ok(Vec::new()));
        let err = load_deny_file("10.0.0.0/8\n\nbogus\n").unwrap_err();
        assert!(err.starts_with("line 3:"), "{err}");
    }
}
