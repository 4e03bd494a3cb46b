//! One batch of the group committer holding every kind of write at once gives what the
//! writes would have given one by one: on SQLite they are applied one by one, on
//! PostgreSQL most of them in two statements (`grouped.rs`).

use alliance_core::{OperationKind, OperationStatus, ResourceStatus, ResourceType};

use super::batch::{commit, Write};
use super::operations::new_operation;
use super::tests::{acme_id, entry, new_resource, policy};
use super::*;

fn create(n: usize, at: i64) -> Write {
    create_on(n, at, None)
}

/// A creation placed on the tenant at `tenant_version`, when given.
fn create_on(n: usize, at: i64, tenant_version: Option<i64>) -> Write {
    Write::Create {
        resource: new_resource(&format!("bkt-{n}"), "acme"),
        operation: new_operation(
            &format!("op-{n}"),
            &acme_id(),
            &format!("bkt-{n}"),
            ResourceType::Bucket,
            OperationKind::Create,
            at,
        ),
        deadline_at: at + 10_000,
        audit: vec![entry("bucket.create")],
        idempotency: None,
        traceparent: None,
        tenant_version,
    }
}

fn finish(op: &str, owner: &str, finish: Finish) -> Write {
    Write::Finish {
        id: op.to_owned(),
        owner: owner.to_owned(),
        finish,
        audit: vec![entry("bucket.finish")],
        now: 2_000,
    }
}

fn active(member_id: &str) -> Finish {
    Finish::Succeeded {
        resource_status: ResourceStatus::Active,
        member_resource_id: Some(member_id.into()),
        update: Default::default(),
    }
}

pub(super) async fn a_batch_commits_as_its_writes_one_by_one(store: Store) {
    let acme = TenantScope::new(acme_id());
    let creations: Vec<Write> = (0..6).map(|n| create(n, 100)).collect();
    let applied = commit(&store.write, store.backend, creations.iter())
        .await
        .expect("create");
    assert_eq!(applied, vec![true; 6]);
    let claimed = store
        .claim_operations("w", 200, 60_000, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 6);

    let batch = [
        finish("op-0", "w", active("m-0")),
        // Not the lease's owner: refused, nothing changes.
        finish("op-1", "intruder", active("m-1")),
        // The same outcome twice in one batch: once only.
        finish("op-2", "w", active("m-2")),
        finish("op-2", "w", active("m-2-again")),
        finish(
            "op-3",
            "w",
            Finish::Failed(serde_json::json!({"title": "no"})),
        ),
        finish(
            "op-4",
            "w",
            Finish::Refused(serde_json::json!({"title": "no"})),
        ),
        // An operation that does not exist.
        finish("op-404", "w", active("m-404")),
        create(6, 1_900),
    ];
    let applied = commit(&store.write, store.backend, batch.iter())
        .await
        .expect("batch");
    assert_eq!(
        applied,
        vec![true, false, true, false, true, true, false, true]
    );

    let resource = |id: &'static str| {
        let (store, acme) = (&store, &acme);
        async move {
            store
                .resource(acme, ResourceType::Bucket, id)
                .await
                .expect("read")
                .expect("exists")
        }
    };
    let op_status = |id: &'static str| {
        let (store, acme) = (&store, &acme);
        async move {
            store
                .operation(acme, id)
                .await
                .expect("read")
                .expect("exists")
                .status
        }
    };
    let zero = resource("bkt-0").await;
    assert_eq!(zero.status, ResourceStatus::Active);
    assert_eq!(zero.member_resource_id.as_deref(), Some("m-0"));
    assert_eq!(zero.updated_at, 2_000);
    let one = resource("bkt-1").await;
    assert_eq!(one.status, ResourceStatus::Provisioning);
    assert_eq!(one.member_resource_id, None);
    assert_eq!(op_status("op-1").await, OperationStatus::Running);
    // The first of the two outcomes is the one that counts.
    assert_eq!(
        resource("bkt-2").await.member_resource_id.as_deref(),
        Some("m-2")
    );
    assert_eq!(resource("bkt-3").await.status, ResourceStatus::Failed);
    assert_eq!(op_status("op-3").await, OperationStatus::Failed);
    assert_eq!(resource("bkt-4").await.status, ResourceStatus::Active);
    assert_eq!(op_status("op-5").await, OperationStatus::Running);
    assert_eq!(resource("bkt-6").await.status, ResourceStatus::Provisioning);
    assert_eq!(op_status("op-6").await, OperationStatus::Pending);
    // Usage starts for bkt-0 and bkt-2, once each (a refused change starts nothing).
    assert_eq!(
        store.usage_event_counts().await.expect("usage"),
        std::collections::BTreeMap::from([("start".to_owned(), 2)])
    );
    // The audit chain holds the events of the writes that applied, in their order.
    let actions: Vec<String> = store
        .audit_events(&AuditFilter::default(), 0, 100)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.action)
        .collect();
    let mut expected = vec!["bucket.create"; 6];
    expected.extend(["bucket.finish"; 4]);
    expected.push("bucket.create");
    assert_eq!(actions, expected);
    assert!(store.verify_audit_chain().await.expect("verify").is_ok());
}

pub(super) async fn a_creation_placed_on_an_older_tenant_writes_nothing(store: Store) {
    let acme = TenantScope::new(acme_id());
    let eur = alliance_core::rates::Currency::eur();
    assert!(store
        .insert_tenant(&policy("acme"), "ACME", &eur, 100, None)
        .await
        .expect("tenant"));
    let placed_on = store
        .tenant_for_placement(&acme_id())
        .await
        .expect("read")
        .expect("tenant")
        .updated_at;
    assert_eq!(placed_on, 100);
    // Changed in the same millisecond: the version moves all the same.
    let mut wider = policy("acme");
    wider
        .allowed_jurisdictions
        .insert(alliance_core::Jurisdiction::parse("BE").expect("BE"));
    assert!(store
        .update_tenant(&wider, "ACME", &eur, 100, None)
        .await
        .expect("update"));
    let now = store
        .tenant_for_placement(&acme_id())
        .await
        .expect("read")
        .expect("tenant");
    assert_eq!(now.updated_at, 101, "this replica forgets what it changed");
    assert_eq!(now.policy, wider);

    // One batch: a creation placed on the old version, one on the new, one unchecked.
    let batch = [
        create_on(0, 200, Some(placed_on)),
        create_on(1, 200, Some(now.updated_at)),
        create_on(2, 200, None),
    ];
    let applied = commit(&store.write, store.backend, batch.iter())
        .await
        .expect("batch");
    assert_eq!(applied, vec![false, true, true]);
    // Alone (the one-by-one path), the stale one is refused too.
    let alone = commit(&store.write, store.backend, batch[..1].iter())
        .await
        .expect("alone");
    assert_eq!(alone, vec![false]);
    let journal = Journal {
        tenant_version: Some(placed_on),
        ..Journal::default()
    };
    let Write::Create {
        resource,
        operation,
        ..
    } = &batch[0]
    else {
        unreachable!()
    };
    assert!(!store
        .create_resource(resource, operation, 10_000, &journal)
        .await
        .expect("create"));
    // Nothing of the refused creation was written: no resource, no operation, no event.
    assert!(store
        .resource(&acme, ResourceType::Bucket, "bkt-0")
        .await
        .expect("read")
        .is_none());
    assert!(store
        .operation(&acme, "op-0")
        .await
        .expect("read")
        .is_none());
    assert!(store
        .resource(&acme, ResourceType::Bucket, "bkt-1")
        .await
        .expect("read")
        .is_some());
    let events = store
        .audit_events(&AuditFilter::default(), 0, 100)
        .await
        .expect("audit");
    assert_eq!(events.len(), 2);
}
