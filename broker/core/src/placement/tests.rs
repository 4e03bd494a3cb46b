//! Placement tests: the demo federation as a table of cases, and a property test that
//! cross-checks `decide` against a naive oracle over random catalogues.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;
use crate::policy::DataClassPolicy;

fn j(code: &str) -> Jurisdiction {
    Jurisdiction::parse(code).expect("jurisdiction")
}

fn set<T: Ord, const N: usize>(items: [T; N]) -> BTreeSet<T> {
    items.into_iter().collect()
}

fn member(id: &str, jurisdiction: &str, certs: &[&str]) -> MemberCandidate {
    MemberCandidate {
        id: MemberId::parse(id).expect("id"),
        jurisdictions: set([j(jurisdiction)]),
        certifications: certs
            .iter()
            .map(|c| Certification::parse(c).expect("cert"))
            .collect(),
        services: ResourceType::ALL.into_iter().collect(),
        sizes: BTreeSet::new(),
        status: MemberStatus::Active,
        health: MemberHealth::Up,
        price_micros: None,
        load: 0,
        capabilities: Default::default(),
    }
}

fn demo_members() -> Vec<MemberCandidate> {
    vec![
        member("numergy-fr", "FR", &["secnumcloud", "hds", "gaia-x-2"]),
        member("belgacom-be", "BE", &["gaia-x-1"]),
        member("telekom-de", "DE", &["c5", "gaia-x-1"]),
    ]
}

fn demo_classes() -> DataClasses {
    let class = |certs: &[&str], eu| DataClassPolicy {
        certifications: certs
            .iter()
            .map(|c| Certification::parse(c).expect("cert"))
            .collect(),
        eu_eea_only: eu,
    };
    [
        ("standard", class(&[], false)),
        ("personal", class(&[], true)),
        ("health", class(&["hds"], false)),
        ("public-sector", class(&["secnumcloud"], false)),
    ]
    .into_iter()
    .map(|(name, policy)| (DataClassName::parse(name).expect("class"), policy))
    .collect()
}

fn tenant(home: &str, allowed: &[&str], class: &str) -> TenantPolicy {
    TenantPolicy {
        id: crate::TenantId::parse("t").expect("tenant"),
        home_jurisdiction: j(home),
        allowed_jurisdictions: allowed.iter().map(|c| j(c)).collect(),
        default_data_class: DataClassName::parse(class).expect("class"),
    }
}

fn request(jurisdiction: Option<&str>, class: Option<&str>) -> PlacementRequest {
    PlacementRequest {
        resource_type: ResourceType::Instance,
        jurisdiction: jurisdiction.map(j),
        data_class: class.map(|c| DataClassName::parse(c).expect("class")),
        size: None,
        member: None,
        needs: Default::default(),
    }
}

#[test]
fn demo_table() {
    let acme = tenant("FR", &["FR", "BE", "DE"], "standard");
    let santeplus = tenant("FR", &["FR"], "health");
    type Case<'a> = (
        &'a str,
        &'a TenantPolicy,
        Option<&'a str>,
        Option<&'a str>,
        PlacementOutcome,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "acme FR",
            &acme,
            Some("FR"),
            None,
            PlacementOutcome::Placed(MemberId::parse("numergy-fr").expect("id")),
        ),
        (
            "acme BE",
            &acme,
            Some("BE"),
            None,
            PlacementOutcome::Placed(MemberId::parse("belgacom-be").expect("id")),
        ),
        (
            "acme DE",
            &acme,
            Some("DE"),
            None,
            PlacementOutcome::Placed(MemberId::parse("telekom-de").expect("id")),
        ),
        (
            "acme home",
            &acme,
            None,
            None,
            PlacementOutcome::Placed(MemberId::parse("numergy-fr").expect("id")),
        ),
        (
            "acme IT",
            &acme,
            Some("IT"),
            None,
            PlacementOutcome::JurisdictionNotAllowed,
        ),
        (
            "acme health BE",
            &acme,
            Some("BE"),
            Some("health"),
            PlacementOutcome::NoEligibleMember,
        ),
        (
            "acme personal DE",
            &acme,
            Some("DE"),
            Some("personal"),
            PlacementOutcome::Placed(MemberId::parse("telekom-de").expect("id")),
        ),
        (
            "acme public-sector DE",
            &acme,
            Some("DE"),
            Some("public-sector"),
            PlacementOutcome::NoEligibleMember,
        ),
        (
            "acme unknown class",
            &acme,
            None,
            Some("secret"),
            PlacementOutcome::UnknownDataClass,
        ),
        (
            "santeplus default",
            &santeplus,
            None,
            None,
            PlacementOutcome::Placed(MemberId::parse("numergy-fr").expect("id")),
        ),
        (
            "santeplus BE",
            &santeplus,
            Some("BE"),
            None,
            PlacementOutcome::JurisdictionNotAllowed,
        ),
    ];
    for (name, tenant, jurisdiction, class, expected) in cases {
        let decision = decide(
            &request(jurisdiction, class),
            tenant,
            &demo_classes(),
            &demo_members(),
        );
        assert_eq!(decision.outcome, expected, "case {name}");
    }
}

#[test]
fn health_data_in_belgium_names_the_missing_certification() {
    let acme = tenant("FR", &["FR", "BE", "DE"], "standard");
    let decision = decide(
        &request(Some("BE"), Some("health")),
        &acme,
        &demo_classes(),
        &demo_members(),
    );
    let be = decision
        .candidates
        .iter()
        .find(|c| c.member.as_str() == "belgacom-be")
        .expect("belgacom-be considered");
    let reasons = decision.reasons_of(be).join("; ");
    assert!(reasons.contains("hds"), "{reasons}");
}

#[test]
fn a_down_member_fails_over_within_the_jurisdiction_only() {
    let acme = tenant("FR", &["FR", "BE", "DE"], "standard");
    let mut members = demo_members();
    members[0].health = MemberHealth::Down;
    let decision = decide(&request(Some("FR"), None), &acme, &demo_classes(), &members);
    assert_eq!(decision.outcome, PlacementOutcome::MembersUnavailable);

    let mut second = member("ovh-fr", "FR", &[]);
    second.health = MemberHealth::Degraded;
    members.push(second);
    let decision = decide(&request(Some("FR"), None), &acme, &demo_classes(), &members);
    assert_eq!(decision.chosen().map(MemberId::as_str), Some("ovh-fr"));
}

#[test]
fn suspended_members_get_nothing_and_ties_break_by_id() {
    let acme = tenant("FR", &["FR"], "standard");
    let mut members = vec![
        member("b-fr", "FR", &[]),
        member("a-fr", "FR", &[]),
        member("c-fr", "FR", &[]),
    ];
    members[1].status = MemberStatus::Suspended;
    let decision = decide(&request(None, None), &acme, &demo_classes(), &members);
    assert_eq!(decision.chosen().map(MemberId::as_str), Some("b-fr"));
    let reasons = decision.reasons(&acme, &demo_classes()).join("\n");
    assert!(reasons.contains("a-fr: is suspended"), "{reasons}");
}

#[test]
fn a_member_that_lacks_a_needed_capability_is_not_chosen_and_says_why() {
    let mut members = vec![member("old-fr", "FR", &[]), member("new-fr", "FR", &[])];
    members[1].capabilities = set([crate::Capability::InstanceAccess]);
    let mut wanted = request(Some("FR"), Some("standard"));
    wanted.needs = set([crate::Capability::InstanceAccess]);
    let policy = tenant("FR", &["FR"], "standard");
    let decision = decide(&wanted, &policy, &demo_classes(), &members);
    assert_eq!(decision.chosen().map(MemberId::as_str), Some("new-fr"));
    let old = decision
        .candidates
        .iter()
        .find(|c| c.member.as_str() == "old-fr")
        .expect("old-fr");
    assert!(!old.eligible);
    assert_eq!(
        decision.reasons_of(old),
        vec!["does not offer instance.access".to_owned()]
    );
    // Without the need, both are eligible.
    wanted.needs.clear();
    let decision = decide(&wanted, &policy, &demo_classes(), &members);
    assert!(decision.candidates.iter().all(|c| c.eligible));
}

#[test]
fn price_and_load_rank_eligible_members() {
    let acme = tenant("FR", &["FR"], "standard");
    let mut members = vec![member("a-fr", "FR", &[]), member("b-fr", "FR", &[])];
    members[0].price_micros = Some(20_000);
    members[1].price_micros = Some(10_000);
    let decision = decide(&request(None, None), &acme, &demo_classes(), &members);
    assert_eq!(decision.chosen().map(MemberId::as_str), Some("b-fr"));
    members[1].load = 100;
    let decision = decide(&request(None, None), &acme, &demo_classes(), &members);
    assert_eq!(decision.chosen().map(MemberId::as_str), Some("a-fr"));
}

// ---- property test against a naive oracle ----

const CODES: [&str; 6] = ["FR", "BE", "DE", "LU", "CH", "US"];
const CERTS: [&str; 4] = ["hds", "secnumcloud", "c5", "gaia-x-1"];

fn arb_member(index: usize) -> impl Strategy<Value = MemberCandidate> {
    (
        proptest::sample::subsequence(CODES.to_vec(), 1..=2),
        proptest::sample::subsequence(CERTS.to_vec(), 0..=3),
        proptest::sample::subsequence(ResourceType::ALL.to_vec(), 1..=3),
        prop_oneof![
            Just(MemberStatus::Active),
            Just(MemberStatus::Active),
            Just(MemberStatus::Suspended),
            Just(MemberStatus::Draining)
        ],
        prop_oneof![
            Just(MemberHealth::Up),
            Just(MemberHealth::Degraded),
            Just(MemberHealth::Down)
        ],
        proptest::option::of(0u64..5),
        0u64..150,
    )
        .prop_map(
            move |(codes, certs, services, status, health, price, load)| MemberCandidate {
                id: MemberId::parse(&format!("m{index}")).expect("id"),
                jurisdictions: codes.iter().map(|c| j(c)).collect(),
                certifications: certs
                    .iter()
                    .map(|c| Certification::parse(c).expect("cert"))
                    .collect(),
                services: services.into_iter().collect(),
                sizes: BTreeSet::new(),
                status,
                health,
                price_micros: price.map(|p| p * 1000),
                load,
                capabilities: Default::default(),
            },
        )
}

fn arb_members() -> impl Strategy<Value = Vec<MemberCandidate>> {
    (0usize..8).prop_flat_map(|n| (0..n).map(arb_member).collect::<Vec<_>>())
}

/// The oracle: eligibility written as plainly as possible, independent of `decide`.
fn oracle_eligible(
    req: &PlacementRequest,
    t: &TenantPolicy,
    classes: &DataClasses,
    m: &MemberCandidate,
) -> bool {
    let jur = req.jurisdiction.unwrap_or(t.home_jurisdiction);
    let class = req
        .data_class
        .clone()
        .unwrap_or_else(|| t.default_data_class.clone());
    let Some(policy) = classes.get(&class) else {
        return false;
    };
    t.allowed_jurisdictions.contains(&jur)
        && m.jurisdictions.contains(&jur)
        && m.services.contains(&req.resource_type)
        && policy
            .certifications
            .iter()
            .all(|c| m.certifications.contains(c))
        && (!policy.eu_eea_only || m.jurisdictions.iter().all(|x| x.is_eu_eea()))
        && m.status == MemberStatus::Active
        && m.health != MemberHealth::Down
}

proptest! {
    #[test]
    fn placement_never_violates_policy_and_agrees_with_the_oracle(
        members in arb_members(),
        home in proptest::sample::select(CODES.to_vec()),
        allowed in proptest::sample::subsequence(CODES.to_vec(), 0..=4),
        requested in proptest::option::of(proptest::sample::select(CODES.to_vec())),
        class in proptest::sample::select(vec!["standard", "personal", "health", "public-sector"]),
        resource_type in proptest::sample::select(ResourceType::ALL.to_vec()),
    ) {
        let mut t = tenant(home, &allowed, "standard");
        t.allowed_jurisdictions.insert(j(home));
        let req = PlacementRequest {
            resource_type,
            jurisdiction: requested.map(j),
            data_class: Some(DataClassName::parse(class).expect("class")),
            size: None,
            member: None,
            needs: Default::default(),
        };
        let classes = demo_classes();
        let decision = decide(&req, &t, &classes, &members);
        prop_assert_eq!(decision.check(&t, &classes, &members), Ok(()));
        // Deterministic: the same inputs, in another order, give the same choice.
        let mut reversed = members.clone();
        reversed.reverse();
        let again = decide(&req, &t, &classes, &reversed);
        prop_assert_eq!(decision.chosen(), again.chosen());
        // Agrees with the oracle on who is eligible, and chooses iff someone is.
        for c in &decision.candidates {
            let m = members.iter().find(|m| m.id == c.member).expect("candidate is a member");
            prop_assert_eq!(c.eligible, oracle_eligible(&req, &t, &classes, m), "member {:?}", m);
        }
        let any = members.iter().any(|m| oracle_eligible(&req, &t, &classes, m));
        prop_assert_eq!(decision.chosen().is_some(), any);
        if let Some(chosen) = decision.chosen() {
            prop_assert!(t.allowed_jurisdictions.contains(&decision.jurisdiction));
            let m = members.iter().find(|m| &m.id == chosen).expect("chosen member");
            prop_assert!(m.jurisdictions.contains(&decision.jurisdiction));
        }
    }
}
