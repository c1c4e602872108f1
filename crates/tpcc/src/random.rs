//! Random data per clause 2.1.6 (NURand) and 4.3.2 (strings, last names,
//! zip codes, "ORIGINAL" data).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The ten syllables of customer last names (clause 4.3.2.3).
pub const SYLLABLES: [&str; 10] = [
    "BAR", "OUGHT", "ABLE", "PRI", "PRES", "ESE", "ANTI", "CALLY", "ATION", "EING",
];

/// The constants `C` of NURand (clause 2.1.6): one per value of `A`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Constants {
    /// `C` for customer last names (`A = 255`).
    pub c_last: u32,
    /// `C` for customer ids (`A = 1023`).
    pub c_id: u32,
    /// `C` for item ids (`A = 8191`).
    pub ol_i_id: u32,
}

impl Constants {
    /// The constants the loader uses. Clause 2.1.6 lets them be any value
    /// in range; they are fixed here (not random) so that a `--run` in
    /// another process can pick run-time constants that satisfy clause
    /// 2.1.6.1 against them without reading them back from the database.
    pub const LOAD: Constants = Constants {
        c_last: 157,
        c_id: 259,
        ol_i_id: 7911,
    };

    /// Random run-time constants: `c_last` differs from the load's by
    /// 65..=119 but not 96 or 112 (clause 2.1.6.1); the others are random.
    pub fn run(rng: &mut impl Rng, load: Constants) -> Constants {
        loop {
            let c_last = rng.random_range(0..=255u32);
            let delta = c_last.abs_diff(load.c_last);
            if (65..=119).contains(&delta) && delta != 96 && delta != 112 {
                return Constants {
                    c_last,
                    c_id: rng.random_range(0..=1023),
                    ol_i_id: rng.random_range(0..=8191),
                };
            }
        }
    }
}

/// The random source of one loader task or terminal, with the TPC-C
/// generators.
pub struct Gen {
    rng: StdRng,
    /// The NURand constants in use.
    pub c: Constants,
}

impl Gen {
    /// A generator seeded from the OS with constants `c`.
    pub fn new(c: Constants) -> Gen {
        Gen {
            rng: StdRng::from_os_rng(),
            c,
        }
    }

    /// A deterministic generator (tests).
    pub fn seeded(seed: u64, c: Constants) -> Gen {
        Gen {
            rng: StdRng::seed_from_u64(seed),
            c,
        }
    }

    /// The underlying RNG.
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// A uniform integer in `[lo, hi]`.
    pub fn uniform(&mut self, lo: i64, hi: i64) -> i64 {
        self.rng.random_range(lo..=hi)
    }

    /// `NURand(A, x, y) = (((random(0, A) | random(x, y)) + C) % (y - x + 1)) + x`
    /// (clause 2.1.6), with the `C` for `A` from [`Gen::c`].
    pub fn nurand(&mut self, a: i64, x: i64, y: i64) -> i64 {
        let c = match a {
            255 => self.c.c_last,
            1023 => self.c.c_id,
            _ => self.c.ol_i_id,
        } as i64;
        let r = (self.uniform(0, a) | self.uniform(x, y)) + c;
        r % (y - x + 1) + x
    }

    /// A random alphanumeric string of `lo..=hi` characters (a-string).
    pub fn astring(&mut self, lo: usize, hi: usize) -> String {
        const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let n = self.rng.random_range(lo..=hi);
        (0..n)
            .map(|_| CHARS[self.rng.random_range(0..CHARS.len())] as char)
            .collect()
    }

    /// A random numeric string of `lo..=hi` digits (n-string).
    pub fn nstring(&mut self, lo: usize, hi: usize) -> String {
        let n = self.rng.random_range(lo..=hi);
        (0..n)
            .map(|_| (b'0' + self.rng.random_range(0..10u8)) as char)
            .collect()
    }

    /// A zip code: 4 random digits then `11111` (clause 4.3.2.7).
    pub fn zip(&mut self) -> String {
        format!("{}11111", self.nstring(4, 4))
    }

    /// `i_data` / `s_data`: a-string of 26..=50 characters, 10% of them
    /// with `ORIGINAL` at a random position (clause 4.3.3.1).
    pub fn data_original(&mut self) -> String {
        let mut s = self.astring(26, 50);
        if self.rng.random_range(0..10) == 0 {
            let at = self.rng.random_range(0..=s.len() - 8);
            s.replace_range(at..at + 8, "ORIGINAL");
        }
        s
    }

    /// A random last-name number for a run-time lookup: `NURand(255, 0,
    /// 999)`, folded to `0..=max` when fewer customers were loaded.
    pub fn last_name_number(&mut self, max: i64) -> i64 {
        if max >= 999 {
            self.nurand(255, 0, 999)
        } else {
            self.nurand(255, 0, max)
        }
    }
}

/// The last name for number `n` in `0..=999`: the syllables of its three
/// digits (clause 4.3.2.3).
pub fn last_name(n: i64) -> String {
    let n = n as usize;
    format!(
        "{}{}{}",
        SYLLABLES[n / 100 % 10],
        SYLLABLES[n / 10 % 10],
        SYLLABLES[n % 10]
    )
}

/// A fixed-point value with `scale` decimals drawn uniformly from
/// `[lo, hi]` given in units of `10^-scale` (`fixed(g, 100, 10_000, 2)` is
/// 1.00..=100.00); its `Display` is a valid SQL literal.
pub fn fixed(gen: &mut Gen, lo: i64, hi: i64, scale: u32) -> rust_decimal::Decimal {
    rust_decimal::Decimal::new(gen.uniform(lo, hi), scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nurand_stays_in_range_and_is_skewed() {
        let mut g = Gen::seeded(1, Constants::LOAD);
        let mut counts = vec![0u32; 1000];
        for _ in 0..100_000 {
            let v = g.nurand(255, 0, 999);
            assert!((0..=999).contains(&v));
            counts[v as usize] += 1;
        }
        for _ in 0..10_000 {
            assert!((1..=3000).contains(&g.nurand(1023, 1, 3000)));
            assert!((1..=100_000).contains(&g.nurand(8191, 1, 100_000)));
            assert!((1..=10).contains(&g.nurand(8191, 1, 10)));
        }
        // Non-uniform: the most frequent value is far above the mean (100).
        assert!(*counts.iter().max().unwrap() > 300);
    }

    #[test]
    fn run_constants_obey_the_delta_rule() {
        let mut g = Gen::seeded(2, Constants::LOAD);
        for _ in 0..1000 {
            let c = Constants::run(g.rng(), Constants::LOAD);
            let d = c.c_last.abs_diff(Constants::LOAD.c_last);
            assert!((65..=119).contains(&d) && d != 96 && d != 112, "{d}");
            assert!(c.c_last <= 255 && c.c_id <= 1023 && c.ol_i_id <= 8191);
        }
    }

    #[test]
    fn last_names() {
        assert_eq!(last_name(0), "BARBARBAR");
        assert_eq!(last_name(371), "PRICALLYOUGHT");
        assert_eq!(last_name(999), "EINGEINGEING");
        assert_eq!(last_name(40), "BARPRESBAR");
    }

    #[test]
    fn strings_and_original() {
        let mut g = Gen::seeded(3, Constants::LOAD);
        let mut originals = 0;
        for _ in 0..10_000 {
            let s = g.data_original();
            assert!((26..=50).contains(&s.len()));
            if s.contains("ORIGINAL") {
                originals += 1;
            }
        }
        assert!((800..1200).contains(&originals), "{originals}");
        let z = g.zip();
        assert_eq!(z.len(), 9);
        assert!(z.ends_with("11111"));
        let a = g.astring(8, 16);
        assert!((8..=16).contains(&a.len()));
    }
}
