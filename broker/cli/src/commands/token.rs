//! `alliance token`: mint a development token.

use std::process::ExitCode;
use std::time::Duration;

use alliance_service::auth::{DevIssuer, Role};

use crate::Common;

/// `token` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// Role (repeatable): tenant-user, tenant-admin, partner, billing, operator.
    #[arg(long = "role", required = true)]
    roles: Vec<String>,
    /// Tenant, for tenant roles.
    #[arg(long)]
    tenant: Option<String>,
    /// Member, for the partner role.
    #[arg(long)]
    member: Option<String>,
    /// Subject; derived from the roles when absent.
    #[arg(long)]
    subject: Option<String>,
    /// Lifetime: e.g. 30m, 1h, 12h, 7d.
    #[arg(long, default_value = "1h")]
    ttl: String,
}

fn parse_ttl(text: &str) -> anyhow::Result<Duration> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("--ttl `{text}`: expected a number and a unit, e.g. 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" | "" => n * 3600,
        "d" => n * 86_400,
        _ => anyhow::bail!("--ttl `{text}`: the unit must be s, m, h or d"),
    };
    if secs == 0 || secs > 30 * 86_400 {
        anyhow::bail!("--ttl `{text}`: must be between 1s and 30d");
    }
    Ok(Duration::from_secs(secs))
}

/// Prints the token alone on stdout.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&args.common)?;
    if !config.auth.dev_issuer.enabled {
        anyhow::bail!(
            "the development issuer is disabled in this config ([auth.dev_issuer] enabled = false)"
        );
    }
    for role in &args.roles {
        let parsed = Role::parse(role).ok_or_else(|| {
            anyhow::anyhow!(
                "--role `{role}`: expected tenant-user, tenant-admin, partner, billing or operator"
            )
        })?;
        if parsed.is_tenant_role() && args.tenant.is_none() {
            anyhow::bail!("--role {role} needs --tenant");
        }
        if parsed == Role::Partner && args.member.is_none() {
            anyhow::bail!("--role partner needs --member");
        }
    }
    if let Some(t) = &args.tenant {
        alliance_core::TenantId::parse(t).map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
    }
    if let Some(m) = &args.member {
        alliance_core::MemberId::parse(m).map_err(|e| anyhow::anyhow!("--member: {e}"))?;
    }
    let ttl = parse_ttl(&args.ttl)?;
    let issuer = DevIssuer::load_or_create(&args.common.data_dir)?;
    let subject = args.subject.clone().unwrap_or_else(|| {
        format!(
            "dev:{}{}",
            args.roles.join("+"),
            args.tenant
                .as_ref()
                .or(args.member.as_ref())
                .map(|t| format!("@{t}"))
                .unwrap_or_default()
        )
    });
    let token = issuer.mint(
        &config.auth.audience,
        &subject,
        &args.roles,
        args.tenant.as_deref(),
        args.member.as_deref(),
        ttl,
    )?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}
