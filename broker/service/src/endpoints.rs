//! Outbound URLs that come from outside the config file (partner endpoints) are checked
//! against `[security] allowed_member_networks` before the broker ever connects to them:
//! every address the host resolves to must fall in an allowed network, or the host name
//! itself must be listed. No SSRF into the operator's network.

use std::net::IpAddr;

use ipnet::IpNet;

/// Checks `url`; the reason when refused.
pub async fn check_member_endpoint(url: &str, allowed: &[String]) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "`{url}`: only http and https endpoints are allowed"
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("the endpoint must not carry credentials; send them in `credentials`".into());
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("`{url}` has no host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(host)) {
        return Ok(());
    }
    let networks: Vec<IpNet> = allowed
        .iter()
        .filter_map(|a| {
            a.parse()
                .ok()
                .or_else(|| a.parse::<IpAddr>().ok().map(IpNet::from))
        })
        .collect();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("cannot resolve `{host}`: {e}"))?
            .map(|a| a.ip())
            .collect(),
    };
    if addresses.is_empty() {
        return Err(format!("`{host}` resolves to no address"));
    }
    for ip in addresses {
        if !networks.iter().any(|n| n.contains(&ip)) {
            return Err(format!(
                "`{host}` resolves to {ip}, outside [security] allowed_member_networks"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_allowed_networks_pass() {
        let allowed = vec![
            "127.0.0.0/8".to_owned(),
            "::1/128".to_owned(),
            "partner.example".to_owned(),
        ];
        assert!(check_member_endpoint("http://127.0.0.1:8710", &allowed)
            .await
            .is_ok());
        assert!(check_member_endpoint("http://[::1]:8710", &allowed)
            .await
            .is_ok());
        assert!(check_member_endpoint("https://partner.example/x", &allowed)
            .await
            .is_ok());
        for refused in [
            "http://10.0.0.5:80",
            "http://169.254.169.254/latest",
            "ftp://127.0.0.1",
            "http://user:pw@127.0.0.1",
            "not a url",
            "http://192.168.1.1",
        ] {
            assert!(
                check_member_endpoint(refused, &allowed).await.is_err(),
                "{refused} must be refused"
            );
        }
    }
}
