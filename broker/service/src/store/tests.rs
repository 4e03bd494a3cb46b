//! The same store test bodies, run on SQLite and on PostgreSQL.
//!
//! PostgreSQL comes from `ALLIANCE_TEST_POSTGRES_URL` (set by `scripts/test`, which starts a
//! throwaway cluster); each test gets a fresh database. Without it the PostgreSQL tests fail
//! loudly: they never skip.

use std::collections::BTreeSet;

use alliance_core::{DataClassName, Jurisdiction, ResourceType, TenantId, TenantPolicy};

use super::tests_batch::{
    a_batch_commits_as_its_writes_one_by_one, a_creation_placed_on_an_older_tenant_writes_nothing,
};
use super::tests_changes::changes_keep_one_at_a_time_and_split_usage_at_a_resize;
use super::*;

/// A migrated SQLite store in a fresh directory, removed when the returned guard drops.
pub(crate) async fn sqlite_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("alliance-store-")
        .tempdir()
        .expect("temp dir");
    let store = Store::connect(&resolve_url("sqlite://test.db", dir.path()), 4)
        .await
        .expect("sqlite");
    store.migrate().await.expect("migrate");
    (store, dir)
}

pub(crate) async fn postgres_store() -> Store {
    let admin = std::env::var("ALLIANCE_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("ALLIANCE_TEST_POSTGRES_URL is not set: run scripts/test, which starts a PostgreSQL cluster")
    });
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&admin)
        .await
        .expect("connect to postgres");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .expect("create database");
    pool.close().await;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let store = Store::connect(&format!("{base}/{name}"), 4)
        .await
        .expect("postgres");
    store.migrate().await.expect("migrate");
    store
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { let (store, _dir) = super::sqlite_store().await; super::$name(store).await } )* }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name(super::postgres_store().await).await } )* }
    };
}

both_backends!(
    tenants_round_trip,
    resource_lifecycle_through_the_journal,
    idempotency_keys,
    audit_chain_detects_tampering,
    many_audit_events_in_one_transaction_keep_their_order,
    ssh_keys_are_per_tenant_and_named_once,
    changes_keep_one_at_a_time_and_split_usage_at_a_resize,
    a_batch_commits_as_its_writes_one_by_one,
    a_creation_placed_on_an_older_tenant_writes_nothing
);

pub(super) fn policy(id: &str) -> TenantPolicy {
    TenantPolicy {
        id: TenantId::parse(id).expect("tenant"),
        home_jurisdiction: Jurisdiction::parse("FR").expect("FR"),
        allowed_jurisdictions: BTreeSet::from([Jurisdiction::parse("FR").expect("FR")]),
        default_data_class: DataClassName::parse("standard").expect("class"),
    }
}

async fn tenants_round_trip(store: Store) {
    assert!(store
        .insert_tenant(
            &policy("acme"),
            "ACME",
            &alliance_core::rates::Currency::eur(),
            1,
            None
        )
        .await
        .expect("insert"));
    assert!(!store
        .insert_tenant(
            &policy("acme"),
            "Other",
            &alliance_core::rates::Currency::eur(),
            2,
            None
        )
        .await
        .expect("insert again"));
    let row = store
        .tenant(&TenantId::parse("acme").expect("id"))
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(row.name, "ACME");
    assert_eq!(row.policy, policy("acme"));
    assert!(store
        .tenant(&TenantId::parse("nobody").expect("id"))
        .await
        .expect("get")
        .is_none());
    store
        .insert_tenant(
            &policy("beta"),
            "Beta",
            &alliance_core::rates::Currency::eur(),
            3,
            None,
        )
        .await
        .expect("insert");
    let page = store.tenants(Some("acme"), 10).await.expect("list");
    assert_eq!(
        page.iter()
            .map(|t| t.policy.id.as_str())
            .collect::<Vec<_>>(),
        vec!["beta"]
    );
}

pub(super) fn new_resource(id: &str, tenant: &str) -> NewResource {
    NewResource {
        id: id.to_owned(),
        tenant: TenantId::parse(tenant).expect("tenant"),
        resource_type: ResourceType::Bucket,
        name: "b".into(),
        jurisdiction: Jurisdiction::parse("FR").expect("jurisdiction"),
        member_id: alliance_core::MemberId::parse("m").expect("member"),
        data_class: DataClassName::parse("standard").expect("class"),
        shape: alliance_core::ResourceShape::default(),
        placement: serde_json::json!({"reasons": ["r"]}),
        settings: Default::default(),
    }
}

pub(super) fn new_instance(id: &str) -> NewResource {
    NewResource {
        resource_type: ResourceType::Instance,
        shape: alliance_core::ResourceShape {
            size: Some(alliance_core::SizeName::parse("small").expect("size")),
            image: Some(alliance_core::ImageName::parse("debian-12").expect("image")),
            size_gb: None,
        },
        ..new_resource(id, "acme")
    }
}

pub(super) fn changes_entry() -> AuditEntry {
    entry("instance.change")
}

pub(super) fn acme_id() -> TenantId {
    TenantId::parse("acme").expect("tenant")
}

pub(super) fn entry(action: &str) -> AuditEntry {
    AuditEntry {
        actor: "tester".into(),
        roles: vec!["tenant-admin".into()],
        tenant: Some("acme".into()),
        action: action.into(),
        resource_id: None,
        outcome: "accepted".into(),
        request_id: None,
        details: serde_json::json!({"k": "v"}),
    }
}

async fn resource_lifecycle_through_the_journal(store: Store) {
    let acme = TenantScope::new(TenantId::parse("acme").expect("id"));
    let other = TenantScope::new(TenantId::parse("other").expect("id"));
    let op = new_operation(
        "op-1",
        &acme_id(),
        "bkt-1",
        ResourceType::Bucket,
        alliance_core::OperationKind::Create,
        100,
    );
    let journal = Journal {
        audit: vec![entry("bucket.create")],
        ..Journal::default()
    };
    store
        .create_resource(&new_resource("bkt-1", "acme"), &op, 10_000, &journal)
        .await
        .expect("create");
    assert!(store
        .resource(&other, ResourceType::Bucket, "bkt-1")
        .await
        .expect("read")
        .is_none());
    assert!(store
        .operation(&other, "op-1")
        .await
        .expect("read")
        .is_none());
    let claimed = store
        .claim_operations("w1", 200, 1000, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].resource.id, "bkt-1");
    // Leased: a second worker gets nothing until the lease expires.
    assert!(store
        .claim_operations("w2", 300, 1000, 10)
        .await
        .expect("claim")
        .is_empty());
    let again = store
        .claim_operations("w2", 1300, 1000, 10)
        .await
        .expect("claim after expiry");
    assert_eq!(again.len(), 1);
    // The first worker lost its lease: its commit is refused.
    let done = Finish::Succeeded {
        resource_status: alliance_core::ResourceStatus::Active,
        member_resource_id: Some("x".into()),
        update: Default::default(),
    };
    assert!(!store
        .finish_operation("op-1", "w1", &done, &[], 1400)
        .await
        .expect("fenced"));
    // A refused commit changed nothing: not the resource, not the usage ledger.
    let row = store
        .resource(&acme, ResourceType::Bucket, "bkt-1")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(row.status, alliance_core::ResourceStatus::Provisioning);
    assert_eq!(row.member_resource_id, None);
    assert!(store.usage_event_counts().await.expect("usage").is_empty());
    assert!(store
        .finish_operation("op-1", "w2", &done, &[entry("bucket.created")], 1400)
        .await
        .expect("finish"));
    let row = store
        .resource(&acme, ResourceType::Bucket, "bkt-1")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(row.status, alliance_core::ResourceStatus::Active);
    assert_eq!(row.member_resource_id.as_deref(), Some("x"));
    assert_eq!(row.updated_at, 1400);
    // Usage starts with the commit, once: a replayed finish is refused and adds nothing.
    let started = std::collections::BTreeMap::from([("start".to_owned(), 1)]);
    assert_eq!(store.usage_event_counts().await.expect("usage"), started);
    assert!(!store
        .finish_operation("op-1", "w2", &done, &[], 1500)
        .await
        .expect("replayed"));
    assert_eq!(store.usage_event_counts().await.expect("usage"), started);
    assert_eq!(
        store
            .operation(&acme, "op-1")
            .await
            .expect("op")
            .expect("op")
            .status,
        alliance_core::OperationStatus::Succeeded
    );
    // Delete goes through the journal too, and a second delete returns the same operation.
    let del = new_operation(
        "op-2",
        &acme_id(),
        "bkt-1",
        ResourceType::Bucket,
        alliance_core::OperationKind::Delete,
        2000,
    );
    let started = store
        .begin_delete(
            &acme,
            ResourceType::Bucket,
            "bkt-1",
            &del,
            9000,
            &Journal::default(),
        )
        .await
        .expect("delete");
    assert!(matches!(started, DeleteStart::Started(_)));
    let del2 = new_operation(
        "op-3",
        &acme_id(),
        "bkt-1",
        ResourceType::Bucket,
        alliance_core::OperationKind::Delete,
        2001,
    );
    match store
        .begin_delete(
            &acme,
            ResourceType::Bucket,
            "bkt-1",
            &del2,
            9000,
            &Journal::default(),
        )
        .await
        .expect("delete")
    {
        DeleteStart::Existing(op) => assert_eq!(op.id, "op-2"),
        other => panic!("expected the existing delete, got {other:?}"),
    }
    assert!(matches!(
        store
            .begin_delete(
                &other,
                ResourceType::Bucket,
                "bkt-1",
                &del2,
                9000,
                &Journal::default()
            )
            .await
            .expect("delete"),
        DeleteStart::NotFound
    ));
    let residency = store.residency(&acme).await.expect("residency");
    assert_eq!(residency.len(), 1);
    assert_eq!(residency[0].status, alliance_core::ResourceStatus::Deleting);
}

async fn idempotency_keys(store: Store) {
    let key = IdempotencyKeyRecord {
        tenant: "acme".into(),
        subject: "u".into(),
        key: "k1".into(),
        fingerprint: "f1".into(),
    };
    assert_eq!(
        store
            .claim_idempotency_key(&key, 0, 100, 1000)
            .await
            .expect("claim"),
        IdempotencyClaim::Claimed
    );
    assert_eq!(
        store
            .claim_idempotency_key(&key, 10, 100, 1000)
            .await
            .expect("claim"),
        IdempotencyClaim::InFlight
    );
    let other = IdempotencyKeyRecord {
        fingerprint: "f2".into(),
        ..key.clone()
    };
    assert_eq!(
        store
            .claim_idempotency_key(&other, 10, 100, 1000)
            .await
            .expect("claim"),
        IdempotencyClaim::Mismatch
    );
    let response = StoredResponse {
        status: 202,
        location: Some("/v1/operations/x".into()),
        body: "{\"a\":1}".into(),
    };
    store
        .complete_idempotency_key(&key, &response)
        .await
        .expect("complete");
    assert_eq!(
        store
            .claim_idempotency_key(&key, 20, 100, 1000)
            .await
            .expect("claim"),
        IdempotencyClaim::Replay(response)
    );
    // A claim abandoned by a crash is taken over once its lock expires.
    let crashed = IdempotencyKeyRecord {
        key: "k2".into(),
        ..key.clone()
    };
    store
        .claim_idempotency_key(&crashed, 0, 100, 1000)
        .await
        .expect("claim");
    assert_eq!(
        store
            .claim_idempotency_key(&crashed, 200, 100, 1000)
            .await
            .expect("claim"),
        IdempotencyClaim::Claimed
    );
    // Keys are scoped per subject.
    let someone_else = IdempotencyKeyRecord {
        subject: "v".into(),
        fingerprint: "f2".into(),
        ..key
    };
    assert_eq!(
        store
            .claim_idempotency_key(&someone_else, 20, 100, 1000)
            .await
            .expect("claim"),
        IdempotencyClaim::Claimed
    );
}

async fn audit_chain_detects_tampering(store: Store) {
    for i in 0..5 {
        store
            .append_audit(&entry(&format!("action.{i}")), i)
            .await
            .expect("append");
    }
    assert_eq!(store.verify_audit_chain().await.expect("verify"), Ok(5));
    let events = store
        .audit_events(&AuditFilter::default(), 0, 100)
        .await
        .expect("list");
    assert_eq!(events.len(), 5);
    sqlx::query("UPDATE audit_events SET outcome = 'succeeded' WHERE seq = $1")
        .bind(events[2].seq)
        .execute(&store.write)
        .await
        .expect("tamper");
    let broken = store
        .verify_audit_chain()
        .await
        .expect("verify")
        .expect_err("tampered");
    assert_eq!(broken.seq, events[2].seq);
}

async fn many_audit_events_in_one_transaction_keep_their_order(store: Store) {
    // More than one multi-row INSERT's worth, each event with its own time, after one
    // appended alone: the chain holds and `seq` follows the order given.
    store
        .append_audit(&entry("first"), 1)
        .await
        .expect("append");
    let entries: Vec<audit::AuditEntry> = (0..300).map(|i| entry(&format!("a.{i}"))).collect();
    let timed: Vec<(&audit::AuditEntry, i64)> = entries.iter().zip(10..).collect();
    let mut tx = store.write.begin().await.expect("begin");
    audit::append_timed(&mut tx, store.backend, &timed)
        .await
        .expect("append");
    tx.commit().await.expect("commit");
    assert_eq!(store.verify_audit_chain().await.expect("verify"), Ok(301));
    let events = store
        .audit_events(&AuditFilter::default(), 0, 500)
        .await
        .expect("list");
    let mut by_seq: Vec<_> = events
        .iter()
        .map(|e| (e.seq, e.action.clone(), e.at))
        .collect();
    by_seq.sort();
    assert_eq!(by_seq[0].1, "first");
    for (i, (_, action, at)) in by_seq[1..].iter().enumerate() {
        assert_eq!(action, &format!("a.{i}"));
        assert_eq!(*at, 10 + i as i64);
    }
}

async fn ssh_keys_are_per_tenant_and_named_once(store: Store) {
    let acme = TenantScope::new(TenantId::parse("acme").expect("id"));
    let other = TenantScope::new(TenantId::parse("other").expect("id"));
    let key = |name: &str, at: i64| SshKeyRow {
        name: name.to_owned(),
        algorithm: "ssh-ed25519".into(),
        public_key: "ssh-ed25519 AAAA x".into(),
        fingerprint: "SHA256:abc".into(),
        created_at: at,
    };
    assert!(store
        .insert_ssh_key(&acme, &key("b", 10), &entry("ssh_key.create"))
        .await
        .expect("insert"));
    assert!(store
        .insert_ssh_key(&acme, &key("a", 11), &entry("ssh_key.create"))
        .await
        .expect("insert"));
    assert!(!store
        .insert_ssh_key(&acme, &key("a", 12), &entry("ssh_key.create"))
        .await
        .expect("taken"));
    assert!(store
        .insert_ssh_key(&other, &key("a", 13), &entry("ssh_key.create"))
        .await
        .expect("theirs"));
    let names: Vec<String> = store
        .ssh_keys(&acme, None, 10)
        .await
        .expect("list")
        .into_iter()
        .map(|k| k.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    let after: Vec<String> = store
        .ssh_keys(&acme, Some("a"), 10)
        .await
        .expect("page")
        .into_iter()
        .map(|k| k.name)
        .collect();
    assert_eq!(after, ["b"]);
    assert_eq!(
        store
            .ssh_key(&acme, "a")
            .await
            .expect("read")
            .expect("kept")
            .created_at,
        11
    );
    assert!(store
        .delete_ssh_key(&acme, "a", &entry("ssh_key.delete"), 20)
        .await
        .expect("delete"));
    assert!(!store
        .delete_ssh_key(&acme, "a", &entry("ssh_key.delete"), 21)
        .await
        .expect("gone"));
    assert!(store.ssh_key(&acme, "a").await.expect("read").is_none());
    assert!(store.ssh_key(&other, "a").await.expect("read").is_some());
    // The refused insert and the refused delete wrote no audit event.
    let events = store
        .audit_events(&AuditFilter::default(), 0, 100)
        .await
        .expect("audit");
    assert_eq!(events.len(), 4);
}
