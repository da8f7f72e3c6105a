//! gRPC recognition costs, each next to its anchor in the same run.
//!
//! | group | variant | what |
//! |---|---|---|
//! | `grpc_lookup` | `HashSet` | a `HashSet<&str>` of the 2,666 table methods (the anchor) |
//! | | `GrpcLroMethods` | `GrpcLroMethods::googleapis().contains`: the table compiled in, in a `HashMap` built on first use, behind the opt-out/addition checks |
//! | | `GrpcLroMethods +1 -1` | the same with one method added and one opted out |
//!
//! One iteration looks up 64 `:path`s, half in the table, half not
//! (near misses: same service, other methods).
//!
//! `cargo bench --bench grpc`  (quicker: `-- --measurement-time 2 --warm-up-time 1`)

mod support;

use std::collections::HashSet;
use std::hint::black_box;
use std::time::Instant;

use criterion::Criterion;
use tower_lro::GrpcLroMethods;

use support::{print_table, run_group, Variant};

const TABLE: &str = include_str!("../data/grpc_lro_methods.tsv");

fn table_methods() -> Vec<&'static str> {
    TABLE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split('\t').next())
        .collect()
}

/// 64 paths: every 83rd table method, and as many misses.
fn probes(methods: &[&'static str]) -> Vec<String> {
    let mut probes = Vec::new();
    for m in methods.iter().step_by(methods.len() / 32).take(32) {
        probes.push((*m).to_owned());
        probes.push(format!("{m}Status"));
    }
    probes
}

fn lookup(c: &mut Criterion) {
    let methods = table_methods();
    let probes = probes(&methods);
    let set: HashSet<&str> = methods.iter().copied().collect();
    let table = GrpcLroMethods::googleapis();
    // Built once, like a layer's.
    assert!(table.contains(methods[0]));
    let edited = GrpcLroMethods::googleapis()
        .with("/acme.builds.v1.Builds/Start")
        .and_then(|m| m.without(methods[1]))
        .unwrap_or_default();

    let run = |contains: &dyn Fn(&str) -> bool, iters: u64| {
        let start = Instant::now();
        for _ in 0..iters {
            for p in &probes {
                black_box(contains(black_box(p)));
            }
        }
        start.elapsed()
    };
    let mut variants = vec![
        Variant::new("HashSet", |iters| run(&|p| set.contains(p), iters)),
        Variant::new("GrpcLroMethods", |iters| run(&|p| table.contains(p), iters)),
        Variant::new("GrpcLroMethods +1 -1", |iters| {
            run(&|p| edited.contains(p), iters)
        }),
    ];
    let measured = run_group(c, "grpc_lookup", &mut variants, &[], 0);
    print_table(
        "grpc_lookup: ns per 64 lookups (32 hits, 32 misses); ratios to HashSet",
        "HashSet",
        &measured,
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    lookup(&mut c);
    if std::env::var_os("BENCH_PROFILE").is_none() {
        c.final_summary();
    }
}
