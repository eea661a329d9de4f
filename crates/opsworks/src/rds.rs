//! `opsworks rds import`: adds a database that runs elsewhere to a running server's RDS catalog
//! through the server's API (`POST /api/rds/import`, SigV4-signed for service `rds`), so the
//! server checks that it answers, authorizes and audits the call, and every server sharing the
//! store sees it. The data dir cannot serve for this: a running server holds it locked.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};

use opsworks_api::sigv4::{RequestParts, sign_for};

use crate::cli::RdsImportArgs;

/// A key pair.
struct Credentials {
    access_key_id: String,
    secret_access_key: String,
}

/// The `[default]` profile of an AWS shared-credentials file.
fn from_file(path: &Path) -> anyhow::Result<Credentials> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the credentials file {}", path.display()))?;
    let mut in_default = false;
    let (mut id, mut secret) = (None, None);
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_default = line == "[default]";
            continue;
        }
        if !in_default {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            match k.trim() {
                "aws_access_key_id" => id = Some(v.trim().to_string()),
                "aws_secret_access_key" => secret = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    match (id, secret) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(Credentials {
            access_key_id,
            secret_access_key,
        }),
        _ => anyhow::bail!(
            "{} has no [default] profile with aws_access_key_id and aws_secret_access_key",
            path.display()
        ),
    }
}

/// `--credentials`, else `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, else the root credentials
/// in the default data dir (what `opsworks up` wrote).
fn credentials(given: Option<&PathBuf>) -> anyhow::Result<Credentials> {
    if let Some(path) = given {
        return from_file(path);
    }
    let id = std::env::var("AWS_ACCESS_KEY_ID").ok();
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").ok();
    if let (Some(access_key_id), Some(secret_access_key)) = (id, secret) {
        return Ok(Credentials {
            access_key_id,
            secret_access_key,
        });
    }
    let file = crate::cli::default_data_dir()?.join("root-credentials");
    from_file(&file).context(
        "no credentials: pass --credentials FILE, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    )
}

/// Runs `opsworks rds import`.
pub fn import(args: RdsImportArgs) -> anyhow::Result<ExitCode> {
    let creds = credentials(args.credentials.as_ref())?;
    let endpoint = args.endpoint.trim_end_matches('/').to_string();
    let url = format!("{endpoint}/api/rds/import");
    let parsed = reqwest::Url::parse(&url).with_context(|| format!("the endpoint {endpoint}"))?;
    let host = match parsed.port() {
        Some(p) => format!("{}:{p}", parsed.host_str().unwrap_or_default()),
        None => parsed.host_str().unwrap_or_default().to_string(),
    };
    let body = json!({
        "DBInstanceIdentifier": args.id,
        "Engine": args.engine,
        "Address": args.address,
        "Port": args.port,
    })
    .to_string();
    let headers = [
        ("content-type", "application/json"),
        ("host", host.as_str()),
    ];
    let (amz_date, authorization) = sign_for(
        &RequestParts {
            method: "POST",
            path: parsed.path(),
            query: "",
            headers: &headers,
            body: body.as_bytes(),
        },
        &creds.access_key_id,
        &creds.secret_access_key,
        &args.region,
        "rds",
        jiff::Timestamp::now().as_second(),
    );
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let (status, text) = runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(parsed)
            .header("content-type", "application/json")
            .header("x-amz-date", amz_date)
            .header("authorization", authorization)
            .body(body)
            .send()
            .await
            .with_context(|| format!("reaching the server at {endpoint}"))?;
        let status = response.status();
        let text = response.text().await.context("reading the answer")?;
        anyhow::Ok((status, text))
    })?;
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if status.is_success() {
        println!("{}", serde_json::to_string_pretty(&value)?);
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "An error occurred ({}): {}",
            value["__type"].as_str().unwrap_or(status.as_str()),
            value["message"]
                .as_str()
                .unwrap_or("the server refused the import")
        );
        Ok(ExitCode::from(1))
    }
}
