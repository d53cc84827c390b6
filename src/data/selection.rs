//! Which samples of a split an evaluation runs on: `--limit N` (a subset spread evenly over
//! the split) and `--shard K/N` (one of N contiguous slices, for spreading one evaluation over
//! several jobs).

use std::ops::Range;
use std::str::FromStr;

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Selection {
    /// At most this many samples, evenly spaced over the split (or over the shard).
    pub limit: Option<usize>,
    pub shard: Option<Shard>,
}

/// Slice `index` (1-based) of `count` near-equal contiguous slices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl FromStr for Shard {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Shard> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| anyhow!("--shard {s}: expected K/N, e.g. 1/4 (the first of four)"))?;
        let parse = |v: &str| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| anyhow!("--shard {s}: '{v}' is not a whole number"))
        };
        let (index, count) = (parse(k)?, parse(n)?);
        if count == 0 || index == 0 || index > count {
            bail!("--shard {s}: K must be between 1 and N (N at least 1)");
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Selection {
    pub fn limit(limit: Option<usize>) -> Selection {
        Selection { limit, shard: None }
    }

    /// The picked indices of `split`, in order.
    pub fn pick(&self, split: Range<usize>) -> Vec<usize> {
        let (start, len) = (split.start, split.len());
        let (from, to) = match self.shard {
            // Slice k covers [k·len/N, (k+1)·len/N): sizes differ by at most one.
            Some(Shard { index, count }) => (
                start + (index - 1) * len / count,
                start + index * len / count,
            ),
            None => (start, start + len),
        };
        let n = to - from;
        match self.limit {
            Some(limit) if limit < n => (0..limit).map(|j| from + j * n / limit).collect(),
            _ => (from..to).collect(),
        }
    }

    pub fn describe(&self) -> String {
        match (self.limit, self.shard) {
            (None, None) => "the whole split".into(),
            (Some(l), None) => format!("--limit {l}"),
            (None, Some(s)) => format!("--shard {s}"),
            (Some(l), Some(s)) => format!("--shard {s} --limit {l}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_split_exactly_once_and_limits_spread_over_it() {
        let split = 10..110;
        let mut all = vec![];
        for index in 1..=7 {
            let s = Selection {
                limit: None,
                shard: Some(Shard { index, count: 7 }),
            };
            let part = s.pick(split.clone());
            assert!(part.len() == 14 || part.len() == 15, "{}", part.len());
            all.extend(part);
        }
        assert_eq!(all, (10..110).collect::<Vec<_>>());
        // A class-sorted folder of 10 classes × 10: a limit of 10 takes one of each.
        let picked = Selection::limit(Some(10)).pick(0..100);
        assert_eq!(picked, (0..10).map(|c| c * 10).collect::<Vec<_>>());
        assert_eq!(Selection::limit(Some(500)).pick(0..100).len(), 100);
        let s = Selection {
            limit: Some(2),
            shard: Some("2/2".parse().unwrap()),
        };
        assert_eq!(s.pick(0..100), vec![50, 75]);
        for bad in ["0/3", "4/3", "1/0", "3", "a/b"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
