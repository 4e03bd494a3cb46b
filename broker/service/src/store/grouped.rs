//! PostgreSQL: a batch's creations in one statement, and its plain outcomes in another.
//!
//! Each statement sent to PostgreSQL costs a round trip and its per-statement overhead in
//! the server, and the committer of `batch.rs` sends them one after the other; with two
//! replicas that bound the throughput (`docs/benchmarks.md`). So the rows of a batch travel
//! as one JSON array (`jsonb_to_recordset`, a single text parameter that the `Any` driver
//! can bind), and one data-modifying statement writes them all, in the batch's transaction.
//! The result is the same as writing them one by one:
//! - creations touch nothing but their own new rows;
//! - outcomes are grouped only when each one is the batch's only outcome for its
//!   resource; the others are left to the one-by-one path, which runs after, in order.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};
use sqlx::{AnyConnection, Row};

use super::batch::{Outcome, Write};
use super::idempotency;
use super::{StoreError, StoreResult};

/// The creations of a batch (`Write::Create`): every resource and its pending operation,
/// each only if its tenant is still at the version it was placed with (when given); returns
/// the resources created.
/// Planned each time, like `FINISH_ALL` (see there): its tenant check is a lookup too.
const CREATE_ALL: &str = "WITH input AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(\
     id text, tenant_id text, resource_type text, name text, jurisdiction text, member_id text, \
     data_class text, spec text, placement text, settings text, op_id text, op_tenant_id text, \
     op_resource_id text, op_resource_type text, kind text, at bigint, deadline_at bigint, traceparent text, params text, \
     tenant_version bigint)), \
     resource AS (INSERT INTO resources (id, tenant_id, resource_type, name, jurisdiction, member_id, status, data_class, spec, placement, settings, created_at, updated_at) \
     SELECT id, tenant_id, resource_type, name, jurisdiction, member_id, 'provisioning', data_class, spec, placement, settings, at, at FROM input \
     WHERE tenant_version IS NULL OR EXISTS (SELECT 1 FROM tenants t WHERE t.id = input.tenant_id AND t.updated_at = input.tenant_version) \
     RETURNING id), \
     op AS (INSERT INTO operations (id, tenant_id, resource_id, resource_type, kind, status, step, attempts, next_attempt_at, deadline_at, traceparent, params, created_at, updated_at) \
     SELECT op_id, op_tenant_id, op_resource_id, op_resource_type, kind, 'pending', 'submit', 0, at, deadline_at, traceparent, params, at, at FROM input \
     WHERE id IN (SELECT id FROM resource) RETURNING resource_id) \
     SELECT resource_id FROM op";

/// The plain outcomes of a batch (nothing reshaped or attached): for each, the fenced
/// operation update, the resource's new status and the usage ledger's event. Returns
/// `(id, 'applied')` for each operation updated (the others had lost their lease, and
/// nothing changed for them) and `(id, 'alone')` for each outcome that shares its
/// resource (or its operation) with another of the batch, or names no operation: those
/// were not touched, and go one by one.
///
/// PostgreSQL estimates any `jsonb_to_recordset` at 100 rows, so a plain join of the input
/// with `operations` or `resources` is planned as a hash join over a sequential scan of the
/// table once it holds a few thousand rows (seen in a two-replica run: 12 M tuples read for
/// 30 k outcomes). Each lookup therefore also says `id = ANY(ARRAY(...))`, which the planner
/// answers from the primary key; and the statement is planned afresh each time
/// (`persistent(false)`), so a plan made while the tables were nearly empty is not kept.
const FINISH_ALL: &str = "WITH input AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(\
     id text, owner text, status text, error text, now bigint, resource_status text, \
     member_resource_id text, has_observed bigint, observed text, event text, member_time bigint)), \
     target AS (SELECT i.*, o.resource_id FROM input i JOIN operations o ON o.id = i.id WHERE o.id = ANY(ARRAY(SELECT id FROM input))), \
     single AS (SELECT * FROM target t WHERE (SELECT count(*) FROM target u WHERE u.resource_id = t.resource_id) = 1), \
     op AS (\
     UPDATE operations o SET status = s.status, step = 'done', error = s.error, lease_owner = NULL, lease_until = NULL, updated_at = s.now \
     FROM single s WHERE o.id = ANY(ARRAY(SELECT id FROM single)) AND o.id = s.id AND o.lease_owner = s.owner AND o.status = 'running' \
     RETURNING o.id, o.resource_id, o.created_at), \
     res AS (\
     UPDATE resources r SET status = s.resource_status, member_resource_id = COALESCE(s.member_resource_id, r.member_resource_id), \
     updated_at = s.now, observed = CASE WHEN s.has_observed = 1 THEN s.observed ELSE r.observed END \
     FROM op JOIN single s ON s.id = op.id WHERE r.id = ANY(ARRAY(SELECT resource_id FROM op)) AND r.id = op.resource_id \
     RETURNING r.id, r.tenant_id, r.member_id, r.resource_type, r.jurisdiction, r.name, r.spec, \
     op.created_at AS asked_at, s.event, s.member_time, s.now), \
     ledger AS (\
     INSERT INTO usage_events (resource_id, event, at, tenant_id, member_id, resource_type, jurisdiction, name, spec) \
     SELECT res.id, res.event, CASE WHEN res.member_time < res.asked_at THEN res.asked_at WHEN res.member_time < res.now THEN res.member_time ELSE res.now END, \
     res.tenant_id, res.member_id, res.resource_type, res.jurisdiction, res.name, res.spec FROM res \
     WHERE res.event IS NOT NULL AND NOT EXISTS (SELECT 1 FROM usage_events u WHERE u.resource_id = res.id AND u.event = res.event)) \
     SELECT id, 'applied' AS outcome FROM op \
     UNION ALL SELECT id, 'alone' FROM input WHERE id NOT IN (SELECT id FROM single)";

/// Writes what it can of `writes` in two statements; `results[i]` is set for each write
/// done (`false`: a fenced outcome whose lease was lost), and left `None` for the ones the
/// caller must apply one by one.
pub(super) async fn apply_all(
    conn: &mut AnyConnection,
    writes: &[&Write],
    results: &mut [Option<bool>],
) -> StoreResult<()> {
    // Which writes each statement carries, and their rows.
    let (mut creations, mut creation_rows) = (Vec::new(), Vec::new());
    let (mut outcomes, mut outcome_rows) = (Vec::new(), Vec::new());
    for (i, write) in writes.iter().enumerate() {
        match write {
            Write::Create { .. } => {
                creations.push(i);
                creation_rows.push(creation_row(write)?);
            }
            Write::Finish {
                id,
                owner,
                finish,
                now,
                ..
            } => {
                let outcome = Outcome::of(finish)?;
                if outcome.plain {
                    outcomes.push((i, id.as_str()));
                    outcome_rows.push(outcome_row(id, owner, *now, outcome));
                }
            }
        }
    }
    if !creations.is_empty() {
        let created: HashSet<String> = sqlx::query_scalar(CREATE_ALL)
            .bind(Value::Array(creation_rows).to_string())
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
        for &i in &creations {
            let Write::Create {
                resource,
                idempotency,
                ..
            } = writes[i]
            else {
                continue;
            };
            let applied = created.contains(&resource.id);
            if let (true, Some((key, response))) = (applied, idempotency) {
                idempotency::complete(conn, key, response).await?;
            }
            results[i] = Some(applied);
        }
    }
    if !outcomes.is_empty() {
        let answered = sqlx::query(FINISH_ALL)
            .bind(Value::Array(outcome_rows).to_string())
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?;
        let mut by_id: HashMap<String, String> = HashMap::new();
        for row in &answered {
            by_id.insert(row.try_get("id")?, row.try_get("outcome")?);
        }
        for (i, id) in outcomes {
            results[i] = match by_id.get(id).map(String::as_str) {
                Some("applied") => Some(true),
                Some(_) => None,
                None => Some(false),
            };
        }
    }
    Ok(())
}

/// A creation as one element of `CREATE_ALL`'s input.
fn creation_row(write: &Write) -> StoreResult<Value> {
    let Write::Create {
        resource,
        operation,
        deadline_at,
        traceparent,
        tenant_version,
        ..
    } = write
    else {
        return Err(StoreError::Corrupt("not a creation".into()));
    };
    Ok(json!({
        "id": resource.id,
        "tenant_id": resource.tenant.as_str(),
        "resource_type": resource.resource_type.as_str(),
        "name": resource.name,
        "jurisdiction": resource.jurisdiction.as_str(),
        "member_id": resource.member_id.as_str(),
        "data_class": resource.data_class.as_str(),
        "spec": serde_json::to_string(&resource.shape)
            .map_err(|e| StoreError::Corrupt(format!("spec: {e}")))?,
        "placement": resource.placement.to_string(),
        "settings": super::changes::json_or_null(&resource.settings, "settings")?,
        "op_id": operation.id,
        "op_tenant_id": operation.tenant_id.as_str(),
        "op_resource_id": operation.resource_id,
        "op_resource_type": operation.resource_type.as_str(),
        "kind": operation.kind.as_str(),
        "at": operation.created_at,
        "deadline_at": deadline_at,
        "traceparent": traceparent,
        "params": super::changes::json_or_null(&operation.params, "params")?,
        "tenant_version": tenant_version,
    }))
}

/// A plain outcome as one element of `FINISH_ALL`'s input.
fn outcome_row(id: &str, owner: &str, now: i64, outcome: Outcome) -> Value {
    json!({
        "id": id,
        "owner": owner,
        "status": outcome.status.as_str(),
        "error": outcome.error,
        "now": now,
        "resource_status": outcome.resource_status.as_str(),
        "member_resource_id": outcome.member_resource_id,
        "has_observed": i64::from(outcome.observed.is_some()),
        "observed": outcome.observed.flatten(),
        "event": outcome.event,
        "member_time": outcome.member_time.unwrap_or(now),
    })
}
