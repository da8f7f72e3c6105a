//! Recognising an Operation in a response body, against the anchors a user
//! would otherwise run on the same bytes, in one run.
//!
//! Bodies of 300 B, 4 KiB and 256 KiB: an AIP-151 Operation whose `metadata`
//! is padded with realistic fields (strings with escapes, numbers, nested
//! objects and arrays) to the size, with `name` first or last and `done`
//! absent or `true`. Contenders, per body:
//!
//! | variant | what |
//! |---|---|
//! | `serde struct` (anchor) | `serde_json::from_slice` into `struct { #[serde(borrow)] name: Option<Cow<str>>, done: Option<bool> }` (unknown fields skipped) |
//! | `lro recognise` | the layer's recognition: `operation::peek` (a borrowed view of `name`/`done`, duplicate checks, "is it an Operation" flag) then `OperationName::parse` — via `tower_lro::__bench::recognise` |
//! | `lro peek only` | `operation::peek` alone, without validating the name (`tower_lro::__bench::peek`): the parse, like for like with `serde struct` |
//! | `serde Value` | `serde_json::from_slice::<serde_json::Value>` (what the layer must not do) |
//! | `memcpy` | copying the body into a preallocated buffer: the physical floor |
//!
//! Throughput is criterion's `Throughput::Bytes` (shown as GiB/s by
//! criterion; the table at the end prints GB/s = bytes/ns) and the ratio of
//! times to `serde struct` (below 1.0: faster than the anchor).
//!
//! `cargo bench --bench inspect`  (quicker: `-- --measurement-time 2 --warm-up-time 1`)

mod support;

use std::borrow::Cow;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use serde::Deserialize;

use support::{print_table, run_group, Variant};

const NAME: &str =
    "projects/my-project/locations/us-central1/operations/operation-1714564800000-61b7f2a0c3d4e";

/// The borrowing struct a user would write to look at an Operation.
#[derive(Deserialize)]
struct View<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    done: Option<bool>,
}

/// `metadata` of at most `len` bytes (before padding): realistic fields
/// while they fit, then items; the caller pads the last string so that the
/// whole body has exactly its size.
fn metadata(len: usize) -> String {
    let fields = [
        r#""@type":"type.googleapis.com/google.cloud.example.v1.OperationMetadata""#,
        r#""progressPercent":40"#,
        r#""createTime":"2024-05-01T12:00:00.000Z""#,
        r#""target":"projects/my-project/locations/us-central1/jobs/j-1""#,
        r#""verb":"create""#,
    ];
    let mut m = String::from("{");
    for f in fields {
        if m.len() + f.len() + 16 > len {
            break;
        }
        m.push_str(f);
        m.push(',');
    }
    if m.len() + 220 < len {
        m.push_str(r#""items":["#);
        let mut i = 0;
        while m.len() + 220 < len {
            if i > 0 {
                m.push(',');
            }
            m.push_str(&format!(
                r#"{{"id":"item-{i:05}","state":"RUNNING","bytes":{},"ratio":0.{i:03},"tags":["alpha","beta\u00e9"],"note":"line \"{i}\"\n\tpath C:\\tmp","nested":{{"a":[1,2,{{"b":null}}],"ok":true}}}}"#,
                1_000_000 + i * 7919
            ));
            i += 1;
        }
        m.push_str("],");
    }
    m.push_str(r#""pad":""#);
    m
}

/// An Operation body of exactly `size` bytes.
fn body(size: usize, name_first: bool, done: bool) -> Vec<u8> {
    let name = format!(r#""name":"{NAME}""#);
    let done = if done { r#","done":true"# } else { "" };
    let build = |pad: usize| {
        let meta = format!("{}{}\"}}", metadata(size - 140), "x".repeat(pad));
        if name_first {
            format!(r#"{{{name},"metadata":{meta}{done}}}"#)
        } else {
            format!(r#"{{"metadata":{meta}{done},{name}}}"#)
        }
    };
    let short = build(0);
    assert!(short.len() <= size, "{} > {size}", short.len());
    let body = build(size - short.len()).into_bytes();
    assert_eq!(body.len(), size);
    body
}

fn timed(iters: u64, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed()
}

fn inspect(c: &mut Criterion) {
    let sizes = [(300, "300B"), (4096, "4KiB"), (256 * 1024, "256KiB")];
    let layouts = [
        (true, false, "name first, done absent"),
        (false, false, "name last, done absent"),
        (true, true, "name first, done true"),
        (false, true, "name last, done true"),
    ];
    let mut all = Vec::new();
    for (size, size_name) in sizes {
        for (name_first, done, layout) in layouts {
            let body = body(size, name_first, done);
            // The contenders agree on what the body is.
            let view: View<'_> = serde_json::from_slice(&body).expect("valid JSON");
            assert_eq!(view.name.as_deref(), Some(NAME));
            assert_eq!(view.done.unwrap_or(false), done);
            let recognised = tower_lro::__bench::recognise(&body);
            assert_eq!(recognised.is_some(), !done, "{size_name} {layout}");
            assert_eq!(tower_lro::__bench::peek(&body), Some(done));
            let value: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
            assert_eq!(value["name"], NAME);

            let mut buffer = vec![0u8; body.len()];
            let body = &body;
            let buffer = &mut buffer;
            let mut variants = vec![
                Variant::new("serde struct", |n| {
                    timed(n, || {
                        let v: View<'_> = serde_json::from_slice(black_box(body)).expect("json");
                        black_box(&v.name);
                        black_box(v.done);
                    })
                }),
                Variant::new("lro recognise", |n| {
                    timed(n, || {
                        black_box(tower_lro::__bench::recognise(black_box(body)));
                    })
                }),
                Variant::new("lro peek only", |n| {
                    timed(n, || {
                        black_box(tower_lro::__bench::peek(black_box(body)));
                    })
                }),
                Variant::new("serde Value", |n| {
                    timed(n, || {
                        let v: serde_json::Value =
                            serde_json::from_slice(black_box(body)).expect("json");
                        black_box(v);
                    })
                }),
                Variant::new("memcpy", |n| {
                    timed(n, || {
                        buffer.copy_from_slice(black_box(body));
                        black_box(&mut *buffer);
                    })
                }),
            ];
            if std::env::var_os("BENCH_PROFILE").is_some() {
                // Under callgrind (benches/callgrind.sh): one body, the first
                // or the one named by INSPECT_BODY (e.g. "4KiB, name last, done true").
                let wanted = std::env::var("INSPECT_BODY")
                    .unwrap_or_else(|_| "300B, name first, done absent".to_owned());
                if wanted == format!("{size_name}, {layout}") {
                    support::profile_mode(&mut variants);
                    return;
                }
                continue;
            }
            let bytes = vec![Some(size as u64); variants.len()];
            let group = format!("inspect {size_name}, {layout}");
            let measured = run_group(c, &group, &mut variants, &bytes, 0);
            print_table(
                &format!("{group}: ratios to serde struct (target: lro recognise <= 1.0)"),
                "serde struct",
                &measured,
            );
            all.push((group, measured));
        }
    }
    // A summary: lro recognise against the anchors, per body.
    println!();
    println!(
        "== inspect summary: GB/s (bytes/ns); time ratios (interleaved medians where measured)"
    );
    println!(
        "{:40} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12} {:>12} {:>12}",
        "body",
        "lro",
        "peek",
        "struct",
        "Value",
        "memcpy",
        "lro/struct",
        "peek/struct",
        "lro/memcpy"
    );
    for (group, measured) in &all {
        let get = |name: &str| {
            measured
                .iter()
                .find(|m| m.name == name)
                .and_then(|m| m.criterion_ns.map(|ns| (ns, m.ratio)))
        };
        let (Some(lro), Some(pk), Some(st), Some(val), Some(mem)) = (
            get("lro recognise"),
            get("lro peek only"),
            get("serde struct"),
            get("serde Value"),
            get("memcpy"),
        ) else {
            continue;
        };
        let size = measured[0].bytes.unwrap_or(0) as f64;
        // Interleaved per-round ratio to the anchor when there is one.
        let lro_struct = lro.1.map_or(lro.0 / st.0, |(_, med, _)| med);
        let peek_struct = pk.1.map_or(pk.0 / st.0, |(_, med, _)| med);
        println!(
            "{:40} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>12.3} {:>12.3} {:>12.1}",
            group.trim_start_matches("inspect "),
            size / lro.0,
            size / pk.0,
            size / st.0,
            size / val.0,
            size / mem.0,
            lro_struct,
            peek_struct,
            lro.0 / mem.0
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    inspect(&mut c);
    if std::env::var_os("BENCH_PROFILE").is_none() {
        c.final_summary();
    }
}
