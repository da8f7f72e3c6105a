//! Shared by the benches: run each variant under criterion, then again
//! interleaved with its anchor, and print ratios measured in this run.
//!
//! Absolute times on a shared machine drift between (and within) runs; a
//! ratio of two variants measured side by side does much less. So every
//! variant is a closure `FnMut(iters) -> Duration` that criterion drives with
//! `iter_custom`, and afterwards the same closures run in `ROUNDS` rounds,
//! every variant once per round in rotating order; the ratio to the anchor is
//! taken per round and its median (and quartiles) reported.
#![allow(dead_code)]

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};

/// Rounds of the interleaved pass.
const ROUNDS: usize = 21;
/// Wall time of one variant's chunk in one round of the interleaved pass.
const CHUNK: Duration = Duration::from_millis(25);

/// One thing measured: a name, and a closure that runs it `iters` times and
/// returns the time that took.
pub struct Variant<'a> {
    pub name: String,
    pub run: Box<dyn FnMut(u64) -> Duration + 'a>,
}

impl<'a> Variant<'a> {
    pub fn new(name: impl Into<String>, run: impl FnMut(u64) -> Duration + 'a) -> Self {
        Variant {
            name: name.into(),
            run: Box::new(run),
        }
    }
}

/// What one variant measured.
#[derive(Clone, Debug)]
pub struct Measured {
    pub name: String,
    /// Median of criterion's samples (ns per iteration), if it ran.
    pub criterion_ns: Option<f64>,
    /// Median ns per iteration over the interleaved rounds.
    pub interleaved_ns: Option<f64>,
    /// Per-round ratio to the anchor: (p25, median, p75).
    pub ratio: Option<(f64, f64, f64)>,
    /// Bytes per iteration, for throughput.
    pub bytes: Option<u64>,
}

fn args() -> Vec<String> {
    std::env::args().collect()
}

/// Whether criterion runs in a mode where timing means nothing (`--test`,
/// `--list`, `--profile-time`): then the interleaved pass is skipped.
pub fn quick_mode() -> bool {
    args()
        .iter()
        .any(|a| a == "--test" || a == "--list" || a.starts_with("--profile-time"))
}

/// The positional filter criterion was given (`cargo bench --bench x -- FILTER`).
fn filter() -> Option<String> {
    let args = args();
    let mut skip_next = false;
    for a in args.iter().skip(1) {
        if skip_next {
            skip_next = false;
            continue;
        }
        if a.starts_with("--") {
            // Options of criterion's CLI that take a value.
            skip_next = !a.contains('=')
                && matches!(
                    a.as_str(),
                    "--measurement-time"
                        | "--warm-up-time"
                        | "--sample-size"
                        | "--save-baseline"
                        | "--baseline"
                        | "--baseline-lenient"
                        | "--load-baseline"
                        | "--nresamples"
                        | "--noise-threshold"
                        | "--confidence-level"
                        | "--significance-level"
                        | "--profile-time"
                        | "--plotting-backend"
                        | "--output-format"
                        | "--color"
                        | "--format"
                );
            continue;
        }
        if a == "--bench" || a.starts_with('-') {
            continue;
        }
        return Some(a.clone());
    }
    None
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

/// Runs `variants` under criterion in group `group` (each as
/// `group/variant`), then interleaved; `anchor` is the index of the variant
/// the ratios are to. `bytes`: the per-iteration throughput of each variant.
pub fn run_group(
    c: &mut Criterion,
    group: &str,
    variants: &mut [Variant<'_>],
    bytes: &[Option<u64>],
    anchor: usize,
) -> Vec<Measured> {
    let mut samples: Vec<Vec<(u64, Duration)>> = vec![Vec::new(); variants.len()];
    let mut g = c.benchmark_group(group);
    for (i, v) in variants.iter_mut().enumerate() {
        if let Some(Some(b)) = bytes.get(i) {
            g.throughput(Throughput::Bytes(*b));
        }
        let rec = &mut samples[i];
        let run = &mut v.run;
        g.bench_function(BenchmarkId::from_parameter(&v.name), |b| {
            b.iter_custom(|iters| {
                let d = run(iters);
                rec.push((iters, d));
                d
            })
        });
    }
    g.finish();
    // Criterion's measurement samples are its last `sample_size` (100) calls;
    // the earlier ones are warm-up.
    let criterion_ns: Vec<Option<f64>> = samples
        .iter()
        .map(|s| {
            if s.len() < 10 {
                return None;
            }
            let take = s.len().min(100);
            let mut per: Vec<f64> = s[s.len() - take..]
                .iter()
                .map(|(n, d)| d.as_nanos() as f64 / *n as f64)
                .collect();
            Some(median(&mut per))
        })
        .collect();

    let ran: Vec<bool> = criterion_ns.iter().map(Option::is_some).collect();
    let mut out: Vec<Measured> = variants
        .iter()
        .enumerate()
        .map(|(i, v)| Measured {
            name: v.name.clone(),
            criterion_ns: criterion_ns[i],
            interleaved_ns: None,
            ratio: None,
            bytes: bytes.get(i).copied().flatten(),
        })
        .collect();

    if !quick_mode() && ran[anchor] && ran.iter().filter(|r| **r).count() > 1 {
        // Iterations per chunk from criterion's estimate.
        let iters: Vec<u64> = criterion_ns
            .iter()
            .map(|ns| ns.map_or(0, |ns| ((CHUNK.as_nanos() as f64 / ns) as u64).max(1)))
            .collect();
        let n = variants.len();
        let mut per_round: Vec<Vec<f64>> = vec![Vec::new(); n];
        for round in 0..ROUNDS {
            let mut ns = vec![f64::NAN; n];
            for k in 0..n {
                let i = (round + k) % n;
                if !ran[i] {
                    continue;
                }
                let d = (variants[i].run)(iters[i]);
                ns[i] = d.as_nanos() as f64 / iters[i] as f64;
            }
            for i in 0..n {
                if ran[i] {
                    per_round[i].push(ns[i]);
                }
            }
        }
        let anchor_rounds = per_round[anchor].clone();
        for (i, m) in out.iter_mut().enumerate() {
            if !ran[i] {
                continue;
            }
            let mut ns = per_round[i].clone();
            m.interleaved_ns = Some(median(&mut ns));
            let mut ratios: Vec<f64> = per_round[i]
                .iter()
                .zip(&anchor_rounds)
                .map(|(x, a)| x / a)
                .collect();
            ratios.sort_by(f64::total_cmp);
            m.ratio = Some((
                quantile(&ratios, 0.25),
                quantile(&ratios, 0.5),
                quantile(&ratios, 0.75),
            ));
        }
    }
    out
}

/// Prints a table of `measured` with ratios to `anchor` (its name).
pub fn print_table(title: &str, anchor: &str, measured: &[Measured]) {
    if measured.iter().all(|m| m.criterion_ns.is_none()) {
        return;
    }
    let anchor_crit = measured
        .iter()
        .find(|m| m.name == anchor)
        .and_then(|m| m.criterion_ns);
    println!();
    println!("== {title}");
    let throughput = measured.iter().any(|m| m.bytes.is_some());
    let width = measured
        .iter()
        .map(|m| m.name.len())
        .max()
        .unwrap_or(10)
        .max(10);
    if throughput {
        println!(
            "{:width$}  {:>10}  {:>8}  {:>13}  {:>24}",
            "variant", "ns/iter", "GB/s", "time x anchor", "interleaved x (p25-p75)"
        );
    } else {
        println!(
            "{:width$}  {:>10}  {:>13}  {:>24}",
            "variant", "ns/iter", "time x anchor", "interleaved x (p25-p75)"
        );
    }
    for m in measured {
        let Some(ns) = m.criterion_ns else { continue };
        let crit_ratio = anchor_crit.map_or("-".to_owned(), |a| format!("{:.3}", ns / a));
        let inter = m.ratio.map_or("-".to_owned(), |(lo, med, hi)| {
            format!("{med:.3} ({lo:.3}-{hi:.3})")
        });
        if throughput {
            let gbs = m
                .bytes
                .map_or("-".to_owned(), |b| format!("{:.2}", b as f64 / ns));
            println!(
                "{:width$}  {:>10.1}  {:>8}  {:>13}  {:>24}",
                m.name, ns, gbs, crit_ratio, inter
            );
        } else {
            println!(
                "{:width$}  {:>10.1}  {:>13}  {:>24}",
                m.name, ns, crit_ratio, inter
            );
        }
    }
    if let Some(f) = filter() {
        println!("(filter {f:?}: variants not run are left out)");
    }
}

/// Instruction counting under callgrind (repeatable on a busy machine).
///
/// With `BENCH_PROFILE=<variant name>` in the environment, the bench runs
/// that variant a few times to warm up, then `BENCH_PROFILE_ITERS` (default
/// 20,000) times inside [`profile_loop`], prints nothing else and returns
/// `true`: run it under
/// `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*profile_loop*'`
/// and divide the total by the iterations (`benches/callgrind.sh` does).
/// `BENCH_PROFILE=list` prints the variant names.
pub fn profile_mode(variants: &mut [Variant<'_>]) -> bool {
    let Ok(wanted) = std::env::var("BENCH_PROFILE") else {
        return false;
    };
    if wanted == "list" {
        for v in variants.iter() {
            println!("{}", v.name);
        }
        return true;
    }
    let iters: u64 = std::env::var("BENCH_PROFILE_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    // Not in this group (a bench may have several): skip it.
    let Some(v) = variants.iter_mut().find(|v| v.name == wanted) else {
        return true;
    };
    // A short warm-up (callgrind runs ~50x slower than the CPU).
    (v.run)(iters.min(1_000) / 10 + 1);
    let d = profile_loop(&mut v.run, iters);
    println!("{wanted}: {iters} iterations in {d:?}");
    true
}

/// The loop callgrind counts (see [`profile_mode`]).
#[inline(never)]
pub fn profile_loop(run: &mut dyn FnMut(u64) -> Duration, iters: u64) -> Duration {
    std::hint::black_box(run(std::hint::black_box(iters)))
}
