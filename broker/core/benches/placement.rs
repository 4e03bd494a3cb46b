//! One placement decision over a catalogue of 100 members.

use std::collections::BTreeSet;

use alliance_core::*;
use criterion::{criterion_group, criterion_main, Criterion};

fn catalogue() -> (Vec<MemberCandidate>, TenantPolicy, DataClasses) {
    let codes = ["FR", "BE", "DE", "LU", "NL", "IT", "ES", "AT", "PL", "SE"];
    let members = (0..100)
        .map(|i| MemberCandidate {
            id: MemberId::parse(&format!("member-{i:03}")).expect("id"),
            jurisdictions: [Jurisdiction::parse(codes[i % codes.len()]).expect("code")].into(),
            certifications: if i % 3 == 0 {
                [Certification::parse("hds").expect("cert")].into()
            } else {
                BTreeSet::new()
            },
            services: ResourceType::ALL.into_iter().collect(),
            sizes: BTreeSet::new(),
            status: MemberStatus::Active,
            health: MemberHealth::Up,
            price_micros: Some(10_000 + (i as u64 % 7) * 1000),
            load: i as u64 % 13,
            capabilities: Default::default(),
        })
        .collect();
    let tenant = TenantPolicy {
        id: TenantId::parse("acme").expect("tenant"),
        home_jurisdiction: Jurisdiction::parse("FR").expect("FR"),
        allowed_jurisdictions: codes
            .iter()
            .map(|c| Jurisdiction::parse(c).expect("code"))
            .collect(),
        default_data_class: DataClassName::parse("health").expect("class"),
    };
    let classes = [(
        DataClassName::parse("health").expect("class"),
        DataClassPolicy {
            certifications: [Certification::parse("hds").expect("cert")].into(),
            eu_eea_only: false,
        },
    )]
    .into_iter()
    .collect();
    (members, tenant, classes)
}

fn bench(c: &mut Criterion) {
    let (members, tenant, classes) = catalogue();
    let request = PlacementRequest {
        resource_type: ResourceType::Instance,
        jurisdiction: None,
        data_class: None,
        size: None,
        member: None,
        needs: Default::default(),
    };
    c.bench_function("placement_100_members", |b| {
        b.iter(|| decide(std::hint::black_box(&request), &tenant, &classes, &members))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
