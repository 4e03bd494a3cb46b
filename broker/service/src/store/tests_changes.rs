//! Changes to live resources on both backends: one change at a time, a refused change
//! leaves the resource active, a resize splits the usage ledger once, an attached volume
//! cannot be deleted.

use alliance_core::{
    OperationKind, OperationStatus, ResourceShape, ResourceStatus, ResourceType, SizeName, TenantId,
};

use super::tests::{changes_entry, new_instance};
use super::*;

fn size(name: &str) -> SizeName {
    SizeName::parse(name).expect("size")
}

/// Claims and finishes the one due operation as `finish` says.
async fn run_one(store: &Store, now: i64, finish: &Finish) {
    let claimed = store
        .claim_operations("w", now, 1000, 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert!(store
        .finish_operation(
            &claimed[0].operation.id,
            "w",
            finish,
            &[changes_entry()],
            now
        )
        .await
        .expect("finish"));
}

fn active(update: ResourceUpdate) -> Finish {
    Finish::Succeeded {
        resource_status: ResourceStatus::Active,
        member_resource_id: Some("m-1".into()),
        update,
    }
}

pub(super) async fn changes_keep_one_at_a_time_and_split_usage_at_a_resize(store: Store) {
    let tenant = TenantId::parse("acme").expect("tenant");
    let scope = TenantScope::new(tenant.clone());
    let journal = Journal::default();
    let create = new_operation(
        "op-c",
        &tenant,
        "ins-1",
        ResourceType::Instance,
        OperationKind::Create,
        1_000,
    );
    store
        .create_resource(&new_instance("ins-1"), &create, 1_000_000, &journal)
        .await
        .expect("create");
    run_one(&store, 1_000, &active(ResourceUpdate::default())).await;

    let mut resize = new_operation(
        "op-r",
        &tenant,
        "ins-1",
        ResourceType::Instance,
        OperationKind::Resize,
        2_000,
    );
    resize.params.size = Some(size("medium"));
    let started = store
        .begin_change(
            &scope,
            ResourceType::Instance,
            "ins-1",
            &resize,
            1_000_000,
            &journal,
        )
        .await
        .expect("begin");
    assert!(matches!(started, ChangeStart::Started(_)));
    // One change at a time, and no delete meanwhile.
    let stop = new_operation(
        "op-s",
        &tenant,
        "ins-1",
        ResourceType::Instance,
        OperationKind::Stop,
        2_100,
    );
    assert!(matches!(
        store
            .begin_change(
                &scope,
                ResourceType::Instance,
                "ins-1",
                &stop,
                1_000_000,
                &journal
            )
            .await
            .expect("busy"),
        ChangeStart::Busy(_)
    ));
    let other = TenantScope::new(TenantId::parse("other").expect("tenant"));
    assert!(matches!(
        store
            .begin_change(
                &other,
                ResourceType::Instance,
                "ins-1",
                &stop,
                1_000_000,
                &journal
            )
            .await
            .expect("other"),
        ChangeStart::NotFound
    ));
    let claimed = store
        .claim_operations("w", 3_000, 1000, 10)
        .await
        .expect("claim");
    assert_eq!(claimed[0].operation.params.size, Some(size("medium")));
    let reshaped = ResourceShape {
        size: Some(size("medium")),
        ..claimed[0].resource.shape.clone()
    };
    let done = active(ResourceUpdate {
        reshaped: Some(reshaped),
        ..ResourceUpdate::default()
    });
    assert!(store
        .finish_operation("op-r", "w", &done, &[], 3_000)
        .await
        .expect("finish"));
    let row = store
        .resource(&scope, ResourceType::Instance, "ins-1")
        .await
        .expect("read")
        .expect("row");
    assert_eq!(row.status, ResourceStatus::Active);
    assert_eq!(row.shape.size, Some(size("medium")));

    // The ledger: small until the resize, medium from it.
    let period = alliance_core::billing::Period::parse("1970-01").expect("period");
    let mut spans = store.usage_spans(period, None, None).await.expect("spans");
    spans.sort_by_key(|s| s.start_ms);
    let cut: Vec<(&str, i64, Option<i64>)> = spans
        .iter()
        .map(|s| (s.sku.as_str(), s.start_ms, s.end_ms))
        .collect();
    assert_eq!(
        cut,
        vec![
            ("instance.small", 1_000, Some(3_000)),
            ("instance.medium", 3_000, None)
        ]
    );

    // A refused change leaves the resource active, its operation failed.
    let stop = new_operation(
        "op-s2",
        &tenant,
        "ins-1",
        ResourceType::Instance,
        OperationKind::Stop,
        4_000,
    );
    store
        .begin_change(
            &scope,
            ResourceType::Instance,
            "ins-1",
            &stop,
            1_000_000,
            &journal,
        )
        .await
        .expect("begin");
    run_one(
        &store,
        4_000,
        &Finish::Refused(serde_json::json!({"code": "member.rejected"})),
    )
    .await;
    let row = store
        .resource(&scope, ResourceType::Instance, "ins-1")
        .await
        .expect("read")
        .expect("row");
    assert_eq!(row.status, ResourceStatus::Active);
    assert_eq!(
        store
            .operation(&scope, "op-s2")
            .await
            .expect("op")
            .expect("op")
            .status,
        OperationStatus::Failed
    );

    // An instance with an attached volume is not deleted until the volume is detached.
    let attach = new_operation(
        "op-a",
        &tenant,
        "ins-1",
        ResourceType::Instance,
        OperationKind::Start,
        5_000,
    );
    store
        .begin_change(
            &scope,
            ResourceType::Instance,
            "ins-1",
            &attach,
            1_000_000,
            &journal,
        )
        .await
        .expect("begin");
    run_one(
        &store,
        5_000,
        &active(ResourceUpdate {
            attached_to: Some(Some("ins-1".into())),
            ..ResourceUpdate::default()
        }),
    )
    .await;
    let delete = new_operation(
        "op-d",
        &tenant,
        "ins-1",
        ResourceType::Instance,
        OperationKind::Delete,
        6_000,
    );
    assert!(matches!(
        store
            .begin_delete(
                &scope,
                ResourceType::Instance,
                "ins-1",
                &delete,
                1_000_000,
                &journal
            )
            .await
            .expect("delete"),
        DeleteStart::Busy(_)
    ));
    assert_eq!(
        store
            .attached_volumes(&scope, "ins-1")
            .await
            .expect("attached"),
        vec!["ins-1".to_owned()]
    );
}
