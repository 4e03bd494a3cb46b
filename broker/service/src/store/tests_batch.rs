//! One batch of the group committer holding every kind of write at once gives what the
//! writes would have given one by one: on SQLite they are applied one by one, on
//! PostgreSQL most of them in two statements (`grouped.rs`).

use alliance_core::{OperationKind, OperationStatus, ResourceStatus, ResourceType};

use super::batch::{commit, Write};
use super::operations::new_operation;
use super::tests::{acme_id, entry, new_resource};
use super::*;

fn create(n: usize, at: i64) -> Write {
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

    let batch = vec![
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
