//! Support for flash's criterion benchmarks (`benches/`): the message fixtures every group
//! uses, the **floor** codecs (the same bytes as flash's cookie formats, made with bare
//! `serde_json` + `base64` + `hmac`/`sha2` and no flash code), and the servers' URLs.
//!
//! Run the benchmarks with `cargo bench -p flash-benches` and turn the results into
//! `BENCHMARKS.md` with `scripts/bench-report`.
//!
//! ```
//! use flash_benches::{floor, fixtures};
//! let floor = floor::Floor::new(b"a secret key of at least thirty-two bytes", "messages");
//! let value = floor.encode(&fixtures::floor_messages(3));
//! assert_eq!(floor.decode(&value).expect("valid").len(), 3);
//! assert!(floor.decode(&value.replace('.', ",")).is_none());
//! ```
#![deny(missing_docs)]

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The messages every group stores: realistic texts of about 40 characters.
pub mod fixtures {
    use flash_core::{Level, Message};

    const TEXTS: [(i32, &str); 5] = [
        (25, "Your profile was updated successfully!!"),
        (20, "You have 3 new notifications waiting now"),
        (30, "Your password will expire in seven days."),
        (40, "The upload failed: the file is too large"),
        (20, "Article 17 was saved and published today"),
    ];

    /// `n` message (level, text) pairs, the first three as Django's `typical_three` vector.
    pub fn pairs(n: usize) -> Vec<(i32, String)> {
        (0..n)
            .map(|i| {
                let (level, text) = TEXTS[i % TEXTS.len()];
                if i < TEXTS.len() {
                    (level, text.to_owned())
                } else {
                    // Keep every text distinct and the same length.
                    (level, format!("{}{:02}", &text[..text.len() - 2], i))
                }
            })
            .collect()
    }

    /// `n` flash messages (plain text, no extra tags).
    pub fn messages(n: usize) -> Vec<Message> {
        pairs(n)
            .into_iter()
            .map(|(level, text)| Message::new(Level::new(level), text))
            .collect()
    }

    /// The same `n` messages as the floor codec takes them.
    pub fn floor_messages(n: usize) -> Vec<(i32, String)> {
        pairs(n)
    }
}

/// The floor: flash's cookie formats made with the bare crates and nothing else.
pub mod floor {
    use std::io::{Read, Write};
    use std::time::{SystemTime, UNIX_EPOCH};

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use flate2::Compression;
    use flate2::read::ZlibDecoder;
    use flate2::write::ZlibEncoder;
    use hmac::{Hmac, KeyInit, Mac};
    use sha2::{Digest, Sha256};

    type HmacSha256 = Hmac<Sha256>;

    /// Flash's own format: `base64url(json) "." base64url(HMAC-SHA256(len name ‖ name ‖ len
    /// payload ‖ payload))`, lengths as 8-byte big-endian, with a pre-keyed MAC.
    #[derive(Clone)]
    pub struct Floor {
        mac: HmacSha256,
        name: String,
    }

    impl Floor {
        /// A floor codec for the cookie `name`, keyed with `key` used as the HMAC key.
        pub fn new(key: &[u8], name: &str) -> Self {
            Floor {
                mac: HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length"),
                name: name.to_owned(),
            }
        }

        fn signed(&self, payload: &[u8]) -> HmacSha256 {
            let mut mac = self.mac.clone();
            mac.update(&(self.name.len() as u64).to_be_bytes());
            mac.update(self.name.as_bytes());
            mac.update(&(payload.len() as u64).to_be_bytes());
            mac.update(payload);
            mac
        }

        /// Serialise, sign and encode.
        pub fn encode(&self, messages: &[(i32, String)]) -> String {
            let json = serde_json::to_vec(messages).expect("serialising pairs cannot fail");
            let signature = self.signed(&json).finalize().into_bytes();
            let mut out = String::with_capacity((json.len() + 32) * 4 / 3 + 4);
            URL_SAFE_NO_PAD.encode_string(&json, &mut out);
            out.push('.');
            URL_SAFE_NO_PAD.encode_string(signature, &mut out);
            out
        }

        /// Decode, verify (constant time) and deserialise; `None` when anything is wrong.
        pub fn decode(&self, value: &str) -> Option<Vec<(i32, String)>> {
            let (payload, signature) = value.rsplit_once('.')?;
            let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
            let mut sig = [0u8; 32];
            let n = URL_SAFE_NO_PAD
                .decode_slice(signature, &mut sig)
                .ok()
                .filter(|&n| n == 32)?;
            self.signed(&payload).verify_slice(&sig[..n]).ok()?;
            serde_json::from_slice(&payload).ok()
        }
    }

    /// Django's `messages` cookie (`CookieStorage` ≥ 3.2): `["__json_message", 0, level, text]`
    /// arrays, zlib when that is shorter (then a leading `.`), base64url, a base62 timestamp, and
    /// HMAC-SHA256 under `sha256("django.contrib.messages" "signer" "django.http.cookies"
    /// SECRET_KEY)`, all `:`-separated.
    #[derive(Clone)]
    pub struct DjangoFloor {
        mac: HmacSha256,
    }

    #[derive(serde::Serialize)]
    struct DjangoMessage<'a>(&'a str, u8, i32, &'a str);

    /// A message as Django writes it: extra tags (`""` by default) may follow the text.
    #[derive(serde::Deserialize)]
    #[allow(
        dead_code,
        reason = "every field is parsed, as a decoder must; the floor keeps two"
    )]
    struct DjangoStored<'a>(
        #[serde(borrow)] std::borrow::Cow<'a, str>,
        u8,
        i32,
        #[serde(borrow)] std::borrow::Cow<'a, str>,
        #[serde(default, borrow)] Option<std::borrow::Cow<'a, str>>,
    );

    impl DjangoFloor {
        /// A floor codec for Django's `SECRET_KEY` `secret`.
        pub fn new(secret: &[u8]) -> Self {
            let key = Sha256::new()
                .chain_update(b"django.contrib.messages")
                .chain_update(b"signer")
                .chain_update(b"django.http.cookies")
                .chain_update(secret)
                .finalize();
            DjangoFloor {
                mac: HmacSha256::new_from_slice(&key).expect("HMAC takes keys of any length"),
            }
        }

        /// Serialise, compress when shorter, encode, timestamp and sign.
        pub fn encode(&self, messages: &[(i32, String)]) -> String {
            let wire: Vec<DjangoMessage<'_>> = messages
                .iter()
                .map(|(level, text)| DjangoMessage("__json_message", 0, *level, text.as_str()))
                .collect();
            let json = serde_json::to_vec(&wire).expect("serialising cannot fail");
            let mut zlib = ZlibEncoder::new(Vec::with_capacity(json.len()), Compression::new(6));
            zlib.write_all(&json).expect("writing to a Vec cannot fail");
            let compressed = zlib.finish().expect("writing to a Vec cannot fail");
            let mut out = String::with_capacity(json.len() * 4 / 3 + 64);
            if compressed.len() < json.len() - 1 {
                out.push('.');
                URL_SAFE_NO_PAD.encode_string(&compressed, &mut out);
            } else {
                URL_SAFE_NO_PAD.encode_string(&json, &mut out);
            }
            out.push(':');
            base62(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                &mut out,
            );
            let mut mac = self.mac.clone();
            mac.update(out.as_bytes());
            let signature = mac.finalize().into_bytes();
            out.push(':');
            URL_SAFE_NO_PAD.encode_string(signature, &mut out);
            out
        }

        /// Verify (constant time), decode, decompress and deserialise; `None` when anything is
        /// wrong.
        pub fn decode(&self, value: &str) -> Option<Vec<(i32, String)>> {
            let (signed, signature) = value.rsplit_once(':')?;
            let mut sig = [0u8; 32];
            let n = URL_SAFE_NO_PAD
                .decode_slice(signature, &mut sig)
                .ok()
                .filter(|&n| n == 32)?;
            let mut mac = self.mac.clone();
            mac.update(signed.as_bytes());
            mac.verify_slice(&sig[..n]).ok()?;
            let (payload, _timestamp) = signed.rsplit_once(':')?;
            let (compressed, payload) = match payload.strip_prefix('.') {
                Some(rest) => (true, rest),
                None => (false, payload),
            };
            let mut bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
            if compressed {
                let mut json = Vec::with_capacity(bytes.len() * 3);
                ZlibDecoder::new(bytes.as_slice())
                    .read_to_end(&mut json)
                    .ok()?;
                bytes = json;
            }
            let wire: Vec<DjangoStored<'_>> = serde_json::from_slice(&bytes).ok()?;
            Some(
                wire.into_iter()
                    .map(|DjangoStored(_, _, level, text, _)| (level, text.into_owned()))
                    .collect(),
            )
        }
    }

    fn base62(mut n: u64, out: &mut String) {
        const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut buf = [0u8; 11];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = DIGITS[(n % 62) as usize];
            n /= 62;
            if n == 0 {
                break;
            }
        }
        out.extend(buf[i..].iter().map(|&b| char::from(b)));
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn base62_matches_django() {
            let mut s = String::new();
            base62(1_767_225_600, &mut s);
            assert_eq!(s, "1vb66i");
        }

        #[test]
        fn django_floor_reads_a_real_django_cookie() {
            let floor = DjangoFloor::new(b"interop-test-secret-key-0123456789");
            // Django 5.2's `typical_three` vector (shared/vectors/django/cookie_vectors.json).
            let value = ".eJx1zkEKwjAQheGrTLMOEiweRkopQzOtI3ESMkljb28puNPt4-fjDYOZpqdGmV6kiisZ6-z1Zs091gwpx4UDQUOFmjwW8qB1no90qSHsXWesMaP9ibgTgQduBD0INZBYeOEZC0fRA-XCsh5r-6_07nsFVVvMHhqHAPROnAlYQGkjAY-7Xk5l_AB8FUcz:1vb66i:NbFsoj_3-Czxe1dp4ddNK1v9Jnqd3ve83aYEh4c_P-I";
            let decoded = floor.decode(value).expect("a valid Django cookie");
            assert_eq!(decoded, crate::fixtures::pairs(3));
            assert!(floor.decode(&value.replace("1vb66i", "1vb66j")).is_none());
            let again = floor.encode(&decoded);
            assert_eq!(floor.decode(&again), Some(decoded));
        }

        #[test]
        fn flash_floor_rejects_tampering() {
            let floor = Floor::new(&[7; 32], "messages");
            let value = floor.encode(&crate::fixtures::pairs(20));
            assert_eq!(floor.decode(&value), Some(crate::fixtures::pairs(20)));
            assert!(Floor::new(&[7; 32], "other").decode(&value).is_none());
            assert!(floor.decode(&value[1..]).is_none());
            assert!(floor.decode("").is_none());
        }
    }
}

/// The server a bench needs, from the same variables as the tests, read at run time.
pub fn server_url(var: &str) -> String {
    use flash_testkit::urls;
    let default = match var {
        urls::ENV_REDIS => urls::DEFAULT_REDIS,
        urls::ENV_POSTGRES => urls::DEFAULT_POSTGRES,
        urls::ENV_MYSQL => urls::DEFAULT_MYSQL,
        _ => "",
    };
    urls::var(var, default)
}

/// Where criterion writes its results: `CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`,
/// else the workspace's `target/criterion` (criterion's own rule).
pub fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
        },
        PathBuf::from,
    );
    target.join("criterion")
}

/// Writes facts a bench measured that are not times (allocations, round trips, store calls)
/// to `<criterion dir>/flash-facts/<group>.json`, for `scripts/bench-report`.
///
/// # Errors
/// When the file cannot be written.
pub fn write_facts(group: &str, facts: &serde_json::Value) -> std::io::Result<PathBuf> {
    let dir = criterion_dir().join("flash-facts");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{group}.json"));
    let text = serde_json::to_string_pretty(facts).map_err(std::io::Error::other)?;
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Whether the benchmark filter given on the command line (criterion's positional argument,
/// as in `cargo bench -p flash-benches -- codec`) can select something in `group`, so a bench
/// target can skip an expensive setup (servers, populations) when it would measure nothing.
pub fn selected(group: &str) -> bool {
    // Criterion's options that take a value: their value is not a filter.
    const WITH_VALUE: [&str; 14] = [
        "--color",
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--profile-time",
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--plotting-backend",
    ];
    let mut filters = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if WITH_VALUE.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            filters.push(arg);
        }
    }
    filters.is_empty()
        || filters
            .iter()
            .any(|f| group.contains(f.as_str()) || f.starts_with(group))
}

/// Criterion settings for this shared 2-core machine: short warm-up and measurement, scaled by
/// `FLASH_BENCH_SCALE` (a float, default 1) for a longer or shorter run.
pub fn criterion_config() -> criterion::Criterion {
    let scale: f64 = std::env::var("FLASH_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0);
    criterion::Criterion::default()
        .warm_up_time(Duration::from_secs_f64(0.5 * scale))
        .measurement_time(Duration::from_secs_f64(2.0 * scale))
        .sample_size(30)
        .noise_threshold(0.05)
        .configure_from_args()
}

/// Paired measurement: on a shared machine whose speed drifts by tens of percent within
/// seconds, two benchmarks run one after the other compare two different machines. Here the
/// cases run interleaved, round after round (the order rotated and reversed every other round,
/// so a steady drift cancels), and each ratio is the median over rounds of the ratio *within*
/// a round: what the machine did meanwhile affects both sides alike.
pub mod paired {
    use std::time::Duration;

    /// One case: given a batch size, runs that many calls and returns the time they took
    /// (inputs may be prepared before the clock starts, as criterion's `iter_batched`).
    pub type Case<'a> = Box<dyn FnMut(u64) -> Duration + 'a>;

    /// What a paired run found for each case, in the order given.
    #[derive(Debug, Clone)]
    pub struct Outcome {
        /// The median time per call of each case, in nanoseconds.
        pub per_call_ns: Vec<f64>,
        /// The median over rounds of each case's time over the first case's, in one round.
        pub ratio_to_first: Vec<f64>,
        /// Rounds run.
        pub rounds: usize,
    }

    /// Runs `cases` interleaved: warm-up, then `rounds` rounds of `batch` calls per case.
    pub fn run(cases: &mut [Case<'_>], rounds: usize, batch: u64) -> Outcome {
        let k = cases.len();
        for case in cases.iter_mut() {
            case(batch);
        }
        let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); k];
        let mut ratios: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); k];
        for round in 0..rounds {
            let mut order: Vec<usize> = (0..k).map(|i| (i + round) % k).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            let mut this_round = vec![0.0; k];
            for &i in &order {
                this_round[i] = cases[i](batch).as_secs_f64() * 1e9 / batch as f64;
            }
            for i in 0..k {
                times[i].push(this_round[i]);
                ratios[i].push(this_round[i] / this_round[0]);
            }
        }
        Outcome {
            per_call_ns: times.iter_mut().map(|t| median(t)).collect(),
            ratio_to_first: ratios.iter_mut().map(|r| median(r)).collect(),
            rounds,
        }
    }

    fn median(values: &mut [f64]) -> f64 {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        if n == 0 {
            return f64::NAN;
        }
        if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        }
    }

    /// `FLASH_BENCH_SCALE` applied to a number of rounds.
    pub fn scaled_rounds(rounds: usize) -> usize {
        let scale: f64 = std::env::var("FLASH_BENCH_SCALE")
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|s: &f64| s.is_finite() && *s > 0.0)
            .unwrap_or(1.0);
        ((rounds as f64 * scale).round() as usize).max(5)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn ratios_are_within_round_medians() {
            // A machine that gets slower with every call: per-call times drift, the ratio of
            // the two cases within a round stays near 2.
            let clock = std::cell::Cell::new(1.0_f64);
            let tick = |base: f64, n: u64| {
                clock.set(clock.get() * 1.01);
                Duration::from_secs_f64(base * clock.get() * n as f64 * 1e-9)
            };
            let mut cases: Vec<Case<'_>> =
                vec![Box::new(|n| tick(100.0, n)), Box::new(|n| tick(200.0, n))];
            let outcome = run(&mut cases, 9, 10);
            assert!(
                (outcome.ratio_to_first[1] - 2.0).abs() < 0.05,
                "{outcome:?}"
            );
            assert!(outcome.per_call_ns[1] > outcome.per_call_ns[0]);
        }
    }
}
