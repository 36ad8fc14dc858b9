//! Rolling rollouts: which hosts go in which batch (`--serial`), and when
//! the failures seen so far stop the rollout (`--max-fail`).
//!
//! Sizes follow Ansible's `serial`: a count or a percentage of all hosts
//! (rounded down, at least 1), the last size repeating until every host
//! has had its batch. Unlike Ansible's `max_fail_percentage`, which is
//! per batch, `--max-fail` counts the failures of the whole rollout so far:
//! a canary batch of 1 that fails stops a rollout of 1,000 hosts.

use std::fmt;
use std::str::FromStr;

/// A number of hosts, or a share of all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    Hosts(usize),
    Percent(u8),
}

impl Size {
    fn parse(text: &str, what: &str, zero_ok: bool) -> Result<Size, String> {
        let t = text.trim();
        let size = if let Some(p) = t.strip_suffix('%') {
            match p.trim().parse::<u8>() {
                Ok(n) if n <= 100 => Size::Percent(n),
                _ => return Err(format!("{what} `{t}`: a percentage is 0% to 100%")),
            }
        } else {
            match t.parse::<usize>() {
                Ok(n) => Size::Hosts(n),
                Err(_) => {
                    return Err(format!(
                        "{what} `{t}`: give a number of hosts (5) or a percentage (10%)"
                    ))
                }
            }
        };
        if !zero_ok && matches!(size, Size::Hosts(0) | Size::Percent(0)) {
            return Err(format!("{what} `{t}`: a batch holds at least one host"));
        }
        Ok(size)
    }

    /// How many of `total` hosts this is, rounded down.
    fn of(self, total: usize) -> usize {
        match self {
            Size::Hosts(n) => n,
            Size::Percent(p) => total * usize::from(p) / 100,
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Size::Hosts(n) => write!(f, "{n}"),
            Size::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// `--serial 1,10%,100%`: the batch sizes, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Serial(Vec<Size>);

impl FromStr for Serial {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Err("--serial: give batch sizes, as in `1,10%,100%`".into());
        }
        s.split(',')
            .map(|part| Size::parse(part, "--serial", false))
            .collect::<Result<Vec<_>, _>>()
            .map(Serial)
    }
}

impl Serial {
    /// The sizes of the batches `total` hosts are cut into, in order; they
    /// add up to `total`.
    pub fn batches(&self, total: usize) -> Vec<usize> {
        let mut sizes = Vec::new();
        let mut left = total;
        let mut i = 0;
        while left > 0 {
            let size = self.0[i.min(self.0.len() - 1)];
            let n = size.of(total).max(1).min(left);
            sizes.push(n);
            left -= n;
            i += 1;
        }
        sizes
    }
}

/// `--max-fail N|P%`: how many failed hosts the rollout goes on with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxFail(Size);

impl Default for MaxFail {
    /// The first failure stops the rollout: a canary exists to be believed.
    fn default() -> Self {
        MaxFail(Size::Hosts(0))
    }
}

impl FromStr for MaxFail {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Size::parse(s, "--max-fail", true).map(MaxFail)
    }
}

impl fmt::Display for MaxFail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl MaxFail {
    /// Whether `failed` of `total` hosts is more than the rollout accepts.
    pub fn exceeded(self, failed: usize, total: usize) -> bool {
        match self.0 {
            Size::Hosts(n) => failed > n,
            // Compared exactly, not rounded: 10% of 15 hosts accepts 1.
            Size::Percent(p) => failed * 100 > usize::from(p) * total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serial(s: &str) -> Serial {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn batches_follow_the_sizes_and_the_last_repeats() {
        assert_eq!(serial("1,10%,100%").batches(50), vec![1, 5, 44]);
        assert_eq!(serial("2").batches(5), vec![2, 2, 1]);
        assert_eq!(serial("1,30%").batches(10), vec![1, 3, 3, 3]);
        // 10% of 3 hosts rounds down to 0, and a batch holds at least one.
        assert_eq!(serial("10%").batches(3), vec![1, 1, 1]);
        assert_eq!(serial("100").batches(3), vec![3]);
        assert_eq!(serial("1").batches(0), Vec::<usize>::new());
    }

    #[test]
    fn bad_sizes_are_refused_with_the_value() {
        for (bad, says) in [
            ("", "give batch sizes"),
            ("0", "at least one host"),
            ("1,0%", "at least one host"),
            ("101%", "0% to 100%"),
            ("1,x", "`x`"),
            ("-1", "`-1`"),
        ] {
            let e = bad.parse::<Serial>().err().unwrap_or_default();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert!("150%".parse::<MaxFail>().is_err());
        assert!("many".parse::<MaxFail>().is_err());
    }

    #[test]
    fn max_fail_counts_the_whole_rollout() -> Result<(), String> {
        assert!(MaxFail::default().exceeded(1, 100));
        assert!(!MaxFail::default().exceeded(0, 100));
        let two: MaxFail = "2".parse()?;
        assert!(!two.exceeded(2, 10) && two.exceeded(3, 10));
        let ten: MaxFail = "10%".parse()?;
        assert!(!ten.exceeded(1, 15) && ten.exceeded(2, 15));
        assert!(!ten.exceeded(1, 10) && ten.exceeded(2, 10));
        let all: MaxFail = "100%".parse()?;
        assert!(!all.exceeded(10, 10));
        Ok(())
    }
}
