//! `alliance conformance`: run the adapter conformance suite against a member cloud.
//!
//! With only an endpoint and the standard credential variables, the command discovers what
//! the suite needs from the member itself: for `federation` its capabilities document; for
//! `ec2` which of the EC2 and S3 APIs answer, an available image and a small instance type;
//! for `openstack` the services of the Keystone catalogue, a flavour, an image and a
//! network. Services the member does not offer are skipped, saying why.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use alliance_adapter_api::{CallContext, ErrorKind, MemberAdapter};
use alliance_adapter_ec2::{Ec2Adapter, Ec2Config, Mapping, Signer};
use alliance_adapter_federation::FederationAdapter;
use alliance_conformance::{Check, Options, Outcome};
use alliance_core::{ImageName, Jurisdiction, ResourceType, SizeName, TenantId};

/// Which protocol the member speaks.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum AdapterKind {
    /// The federation protocol (`/federation/v1`).
    Federation,
    /// EC2 Query API and S3 REST, signed with SigV4.
    Ec2,
    /// Keystone v3, Nova, Cinder and Swift.
    Openstack,
}

/// Report format.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Readable lines.
    Text,
    /// One JSON document.
    Json,
}

/// `conformance` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The member's base URL: the federation endpoint, the EC2 (and S3) endpoint, or the
    /// Keystone v3 URL (`OS_AUTH_URL` when absent, for `openstack`).
    #[arg(long)]
    member_endpoint: Option<String>,
    /// The adapter to drive it with.
    #[arg(long, value_enum, default_value = "federation")]
    adapter: AdapterKind,
    /// federation: environment variable holding the member's bearer token.
    #[arg(long)]
    token_env: Option<String>,
    /// ec2/openstack: the region (ec2: `AWS_REGION`/`AWS_DEFAULT_REGION`, else us-east-1;
    /// openstack: `OS_REGION_NAME`, else the catalogue's first).
    #[arg(long)]
    region: Option<String>,
    /// ec2: a separate S3 endpoint.
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// ec2: environment variable holding the access key id.
    #[arg(long, default_value = "AWS_ACCESS_KEY_ID")]
    access_key_env: String,
    /// ec2: environment variable holding the secret access key.
    #[arg(long, default_value = "AWS_SECRET_ACCESS_KEY")]
    secret_key_env: String,
    /// openstack: prefix of the credential variables (`OS_USERNAME`, `OS_PASSWORD`, ...).
    #[arg(long, default_value = "OS_")]
    env_prefix: String,
    /// The member's instance type or flavour to use (discovered when absent).
    #[arg(long)]
    size: Option<String>,
    /// The member's image id to use (discovered when absent).
    #[arg(long)]
    image: Option<String>,
    /// ec2/openstack: a second instance type or flavour, to check a resize (skipped when
    /// absent).
    #[arg(long)]
    resize_size: Option<String>,
    /// openstack: the network id to attach instances to (discovered when absent).
    #[arg(long)]
    network: Option<String>,
    /// openstack: keep the sandbox tenant's resources in a project of its own in this
    /// domain (the `tenant_project_domain` member setting).
    #[arg(long)]
    tenant_project_domain: Option<String>,
    /// ec2/openstack: the jurisdiction the sandbox resources are labelled with.
    #[arg(long, default_value = "FR")]
    jurisdiction: String,
    /// Report format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// How long a resource may take to become active or gone, in seconds.
    #[arg(long, default_value_t = 60)]
    settle_timeout: u64,
}

fn progress_line(check: &Check) -> String {
    let service = check.service.map(|s| format!("[{s}] ")).unwrap_or_default();
    match &check.outcome {
        Outcome::Passed => format!("  ok    {service}{}", check.name),
        Outcome::Failed(why) => format!("  FAIL  {service}{}: {why}", check.name),
        Outcome::Skipped(why) => format!("  skip  {service}{}: {why}", check.name),
    }
}

/// What the suite runs against, found out from the member.
struct Target {
    adapter: Box<dyn MemberAdapter>,
    bad_credentials: Option<Box<dyn MemberAdapter>>,
    options: Options,
    title: String,
}

fn base_options(args: &Args, jurisdiction: Jurisdiction) -> anyhow::Result<Options> {
    Ok(Options {
        tenant: TenantId::parse("conformance-sandbox").map_err(|e| anyhow::anyhow!(e))?,
        jurisdiction,
        services: Vec::new(),
        not_offered: BTreeMap::new(),
        size: None,
        image: None,
        resize_to: None,
        settle_timeout: Duration::from_secs(args.settle_timeout),
        call_timeout: Duration::from_secs(20),
    })
}

fn endpoint(args: &Args) -> anyhow::Result<String> {
    args.member_endpoint
        .clone()
        .ok_or_else(|| anyhow::anyhow!("--member-endpoint is required for this adapter"))
}

fn ctx(what: &str) -> CallContext {
    CallContext::new(None, format!("conformance-{what}"), Duration::from_secs(30))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

async fn federation(args: &Args) -> anyhow::Result<Target> {
    let url = endpoint(args)?;
    let token = match &args.token_env {
        Some(name) => Some(
            env(name)
                .ok_or_else(|| anyhow::anyhow!("--token-env: the variable {name} is not set"))?,
        ),
        None => None,
    };
    let adapter =
        FederationAdapter::new("candidate", &url, token.clone()).map_err(|e| anyhow::anyhow!(e))?;
    let bad = match token {
        Some(_) => Some(Box::new(
            FederationAdapter::new(
                "candidate",
                &url,
                Some("alliance-conformance-wrong-token".into()),
            )
            .map_err(|e| anyhow::anyhow!(e))?,
        ) as Box<dyn MemberAdapter>),
        None => None,
    };
    let capabilities = adapter
        .capabilities(&ctx("capabilities"))
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the member's capabilities at {url}: {e}"))?;
    let jurisdiction = capabilities
        .jurisdictions
        .iter()
        .find_map(|j| Jurisdiction::parse(j).ok())
        .ok_or_else(|| anyhow::anyhow!("the member declares no valid jurisdiction"))?;
    let mut options = base_options(args, jurisdiction)?;
    options.services = capabilities.services.clone();
    let mut sizes = capabilities
        .sizes
        .keys()
        .filter_map(|s| SizeName::parse(s).ok());
    options.size = sizes.next();
    options.resize_to = sizes.next();
    options.image = capabilities
        .images
        .keys()
        .find_map(|i| ImageName::parse(i).ok());
    Ok(Target {
        adapter: Box::new(adapter),
        bad_credentials: bad,
        options,
        title: format!("{} ({url}, {jurisdiction})", capabilities.member_id),
    })
}

async fn ec2(args: &Args) -> anyhow::Result<Target> {
    let url = endpoint(args)?;
    let region = args
        .region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".into());
    let mut config = Ec2Config::new(&url, &region);
    config.s3_endpoint.clone_from(&args.s3_endpoint);
    config.access_key_env.clone_from(&args.access_key_env);
    config.secret_key_env.clone_from(&args.secret_key_env);
    let probe = Ec2Adapter::from_config("candidate", &config, Mapping::default(), &env)
        .map_err(|e| anyhow::anyhow!(e))?;
    let jurisdiction = Jurisdiction::parse(&args.jurisdiction)
        .map_err(|e| anyhow::anyhow!("--jurisdiction: {e}"))?;
    let mut options = base_options(args, jurisdiction)?;
    let mut mapping = Mapping::default();
    // Which APIs answer: a refusal of the credentials is an error, anything else means the
    // API is not offered at this endpoint.
    let offered = |r: Result<(), alliance_adapter_api::AdapterError>, api: &str| match r {
        Ok(()) => Ok(None),
        Err(e) if e.kind == ErrorKind::AuthFailed => {
            Err(anyhow::anyhow!("the member refuses the credentials: {e}"))
        }
        Err(e) => Ok(Some(format!(
            "the {api} API does not answer at this endpoint ({})",
            e.message
        ))),
    };
    match offered(probe.ec2_health(&ctx("discover-ec2")).await, "EC2")? {
        None => {
            mapping
                .services
                .extend([ResourceType::Instance, ResourceType::Volume]);
            let size = match &args.size {
                Some(s) => Some(s.clone()),
                None => probe.discover_size(&ctx("discover-size")).await?,
            };
            let image = match &args.image {
                Some(i) => Some(i.clone()),
                None => probe.discover_image(&ctx("discover-image")).await?,
            };
            if let (Some(size), Some(image)) = (size, image) {
                mapping.sizes.insert("small".into(), size);
                mapping.images.insert("default".into(), image);
                options.size = SizeName::parse("small").ok();
                options.image = ImageName::parse("default").ok();
                if let Some(resize) = &args.resize_size {
                    mapping.sizes.insert("medium".into(), resize.clone());
                    options.resize_to = SizeName::parse("medium").ok();
                }
            } else {
                mapping.services.remove(&ResourceType::Instance);
                options.not_offered.insert(
                    ResourceType::Instance,
                    "no instance type or image found (pass --size and --image)".into(),
                );
            }
        }
        Some(why) => {
            options
                .not_offered
                .insert(ResourceType::Instance, why.clone());
            options.not_offered.insert(ResourceType::Volume, why);
        }
    }
    match offered(probe.s3_health(&ctx("discover-s3")).await, "S3")? {
        None => {
            mapping.services.insert(ResourceType::Bucket);
        }
        Some(why) => {
            options.not_offered.insert(ResourceType::Bucket, why);
        }
    }
    options.services = mapping.services.iter().copied().collect();
    let adapter = Ec2Adapter::from_config("candidate", &config, mapping.clone(), &env)
        .map_err(|e| anyhow::anyhow!(e))?;
    let access = env(&config.access_key_env).unwrap_or_default();
    let bad = Ec2Adapter::new(
        "candidate",
        config.clone(),
        Signer::new(
            access,
            "alliance-conformance-wrong-secret".into(),
            None,
            &region,
        ),
        mapping,
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    Ok(Target {
        adapter: Box::new(adapter),
        bad_credentials: Some(Box::new(bad)),
        options,
        title: format!("{url} (ec2, {region})"),
    })
}

async fn openstack(args: &Args) -> anyhow::Result<Target> {
    let discovered = alliance_adapter_openstack::discover(
        args.member_endpoint.as_deref(),
        args.region.as_deref(),
        &args.env_prefix,
        &env,
        alliance_adapter_openstack::Overrides {
            flavour: args.size.clone(),
            image: args.image.clone(),
            network: args.network.clone(),
            resize_flavour: args.resize_size.clone(),
            tenant_project_domain: args.tenant_project_domain.clone(),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!(e))?;
    let jurisdiction = Jurisdiction::parse(&args.jurisdiction)
        .map_err(|e| anyhow::anyhow!("--jurisdiction: {e}"))?;
    let mut options = base_options(args, jurisdiction)?;
    options.services = discovered.services.iter().copied().collect();
    options.not_offered = discovered.not_offered;
    if discovered.services.contains(&ResourceType::Instance) {
        options.size = SizeName::parse("small").ok();
        options.image = ImageName::parse("default").ok();
        if args.resize_size.is_some() {
            options.resize_to = SizeName::parse("medium").ok();
        }
    }
    Ok(Target {
        title: format!("{} (openstack, {})", discovered.auth_url, discovered.region),
        adapter: Box::new(discovered.adapter),
        bad_credentials: Some(Box::new(discovered.bad_credentials)),
        options,
    })
}

/// Exit 0 when every check passes, 1 when one fails, 2 when the member cannot be described.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let interactive = std::io::stderr().is_terminal();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        let target = match args.adapter {
            AdapterKind::Federation => federation(&args).await?,
            AdapterKind::Ec2 => ec2(&args).await?,
            AdapterKind::Openstack => openstack(&args).await?,
        };
        if interactive {
            eprintln!("conformance of {}:", target.title);
        }
        let mut progress = |check: &Check| {
            if interactive {
                eprintln!("{}", progress_line(check));
            }
        };
        let report = alliance_conformance::run(
            target.adapter.as_ref(),
            target.bad_credentials.as_deref(),
            &target.options,
            &mut progress,
        )
        .await;
        Ok::<_, anyhow::Error>(report)
    })?;
    match args.format {
        Format::Text => print!("{}", report.to_text()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
